"""Recovery's side of the SQLite store: decoding the rows its scans return.

``SqliteStore.recover(compact=True)`` hands each queue's entries over as the
``queue_entries`` rows it scanned (:class:`~warren.store.records.StoredEntryRows`);
:class:`EntryRows` is their codec, building an entry and its message from the
rows only when the core needs that entry (docs/storage.md, "Broker recovery").
Nothing here touches the connection: the rows were read before it is handed to
the writer.
"""

from __future__ import annotations

import json
from collections.abc import Container
from operator import itemgetter
from typing import Any, Final

from warren.store.records import StoredEntry, StoredMessage

__all__ = [
    "ENTRY_MESSAGE",
    "ENTRY_QUEUE",
    "MESSAGE_ID",
    "MESSAGE_PAYLOAD",
    "EntryRows",
    "decode_message",
    "shared_ids",
]

# flags -> (qos, retain, payload_format_utf8): decoding a message row is then one
# tuple lookup instead of three bit operations and two bool() calls.
_FLAGS: Final = tuple(
    (flags & 3, bool(flags & 4), bool(flags & 8)) for flags in range(16)
)
# Columns of the recovery scans' rows, for map() at C speed.
MESSAGE_ID: Final = itemgetter(0)  # messages: id
MESSAGE_PAYLOAD: Final = itemgetter(2)  # messages: payload
ENTRY_QUEUE: Final = itemgetter(0)  # queue_entries: queue_id
ENTRY_MESSAGE: Final = itemgetter(2)  # queue_entries: message


def decode_message(row: tuple[Any, ...]) -> StoredMessage:
    """A ``messages`` row (recovery's column order) as a :class:`StoredMessage`."""
    (mid, topic, payload, flags, content_type, correlation_data, response_topic, props,
     expires_at, priority, message_id, sender_id, extra) = row
    qos, retain, utf8 = _FLAGS[flags & 15]
    # tuple.__new__, not StoredMessage(...): a NamedTuple's own __new__ is Python-level.
    return tuple.__new__(StoredMessage, (
        mid, topic, payload, qos, retain, utf8, content_type, correlation_data,
        response_topic, tuple(tuple(p) for p in json.loads(props)) if props else (),
        expires_at, priority, message_id, sender_id, extra,
    ))


def shared_ids(refs: dict[int, int]) -> Container[int]:
    """The message ids referenced more than once."""
    if sum(refs.values()) == len(refs):  # the common case, checked at C speed
        return frozenset()
    return {mid for mid, count in refs.items() if count > 1}


class EntryRows:
    """The :class:`~warren.store.records.EntryRowCodec` of recovered queue entries.

    A row is a ``queue_entries`` row as scanned (queue_id, id, message, source, key,
    expires_at, priority, redeliveries); its message is the ``messages`` row of that
    id, kept in ``messages`` until the entry is built or dropped. Once recovery has
    finished (:meth:`release`), a message row referenced only by that entry goes
    with it, so memory shrinks as the recovered queues drain.
    """

    __slots__ = ("_messages", "_shared")

    def __init__(self, messages: dict[int, tuple[Any, ...]]) -> None:
        self._messages = messages
        self._shared: Container[int] | None = None  # None: the recovery stream runs

    def release(self, shared: Container[int]) -> None:
        """Recovery is over: rows of messages not in ``shared`` may go."""
        self._shared = shared

    def _message_row(self, mid: int) -> tuple[Any, ...]:
        shared = self._shared
        if shared is None or mid in shared:
            return self._messages[mid]
        return self._messages.pop(mid)

    def entry(self, row: Any) -> StoredEntry:
        queue_id, entry_id, mid, source, key, expires_at, priority, redeliveries = row
        return tuple.__new__(StoredEntry, (
            queue_id, entry_id, decode_message(self._message_row(mid)), source, key,
            expires_at, priority, redeliveries,
        ))

    def drop(self, row: Any) -> tuple[int, int]:
        self._message_row(row[2])
        return row[1], row[2]

    def priority(self, row: Any) -> int:
        return row[6]  # type: ignore[no-any-return]
