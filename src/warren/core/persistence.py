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
    return Message(
        stored.topic,
        stored.payload,
        stored.qos,
        stored.retain,
        content_type=stored.content_type,
        correlation_data=stored.correlation_data,
        response_topic=stored.response_topic,
        user_properties=tuple(tuple(p) for p in stored.user_properties),  # type: ignore[misc]
        payload_format_utf8=stored.payload_format_utf8,
        expires_at=wall_to_monotonic(stored.expires_at),
        priority=stored.priority,
        message_id=stored.message_id,
        sender_id=stored.sender_id,
        stored=stored,
    )


class MessageCache:
    """Recovery: one :class:`Message` per stored message, however often referenced."""

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: dict[int, Message] = {}

    def get(self, stored: StoredMessage) -> Message:
        message = self._by_id.get(stored.id)
        if message is None:
            message = self._by_id[stored.id] = message_from_stored(stored)
        return message
