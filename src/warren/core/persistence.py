"""Between :class:`~warren.core.message.Message` and what the store keeps.

A message is converted once, however many sessions it is owed to: the
:class:`~warren.store.records.StoredMessage` is cached on the message (``stored``),
so the store writes one body with N references (docs/storage.md). Recovery goes
the other way, one :class:`Message` per stored message (:class:`MessageCache`).
Expiry deadlines are monotonic in memory and wall clock in the store.
"""

from __future__ import annotations

from warren.core.message import Message
from warren.store.journal import Journal
from warren.store.records import StoredMessage, monotonic_to_wall, wall_to_monotonic

__all__ = ["MessageCache", "message_from_stored", "stored_message"]


def stored_message(message: Message, journal: Journal) -> StoredMessage:
    """``message`` as the store keeps it (built once, then cached on the message)."""
    stored = message.stored
    if stored is None:
        stored = message.stored = StoredMessage(
            journal.store.next_id(),
            message.topic,
            message.payload,
            message.qos,
            message.retain,
            message.payload_format_utf8,
            message.content_type,
            message.correlation_data,
            message.response_topic,
            message.user_properties,
            monotonic_to_wall(message.expires_at),
            message.priority,
            message.message_id,
            message.sender_id,
        )
    return stored


def message_from_stored(stored: StoredMessage) -> Message:
    """A live message for a stored one (keeps the link, so it is not stored again)."""
    # Positional arguments, and no work for absent properties: this runs once per
    # stored message at recovery (docs/storage.md, "Broker recovery").
    (_, topic, payload, qos, retain, utf8, content_type, correlation_data,
     response_topic, user_properties, expires_at, priority, message_id, sender_id,
     _extra) = stored
    return Message(
        topic, payload, qos, retain, content_type, correlation_data, response_topic,
        tuple(tuple(p) for p in user_properties) if user_properties else (),  # type: ignore[misc]
        utf8,
        None if expires_at is None else wall_to_monotonic(expires_at),
        priority, message_id, sender_id, None, stored,
    )


class MessageCache:
    """Recovery: one :class:`Message` per stored message, however often referenced."""

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: dict[int, Message] = {}

    @property
    def by_id(self) -> dict[int, Message]:
        """The live messages built so far, by stored id (Queue.restore_many)."""
        return self._by_id

    def get(self, stored: StoredMessage) -> Message:
        by_id = self._by_id
        mid = stored[0]
        message = by_id.get(mid)
        if message is None:
            message = by_id[mid] = message_from_stored(stored)
        return message
