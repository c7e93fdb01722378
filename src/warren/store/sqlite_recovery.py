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
import sqlite3
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
    "entry_fields",
    "load_messages",
    "scan_entries",
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


# Reading the messages table. Most messages set none of the optional columns (MQTT
# 3.1.1, most MQTT 5 and plenty of AMQP publishes), and turning a column into a
# Python object costs about as much per row as SQLite reading it, NULL or not. So
# the scan returns one column for all eight optional ones: NULL when they all
# are, else a JSON array of them (blobs in hex; iif() because hex(NULL) is '').
# That saves ~0.3 s per million plain messages and costs some for messages that
# carry options; when a sample of the table says they are the majority, the scan
# reads every column instead. expires_at stays a column of its own: JSON would
# round the REAL.
_OPTIONAL_NULL: Final = (
    "content_type IS NULL AND correlation_data IS NULL AND response_topic IS NULL AND"
    " user_properties IS NULL AND priority IS NULL AND message_id IS NULL AND"
    " sender_id IS NULL AND extra IS NULL"
)
_SELECT_PACKED: Final = (
    "SELECT id, topic, payload, flags, expires_at,"
    f" CASE WHEN {_OPTIONAL_NULL} THEN NULL ELSE json_array("
    "content_type, iif(correlation_data IS NULL, NULL, hex(correlation_data)),"
    " response_topic, json(user_properties), priority, message_id, sender_id,"
    " iif(extra IS NULL, NULL, hex(extra))) END FROM messages"
)
_SELECT_FULL: Final = (
    "SELECT id, topic, payload, flags, content_type, correlation_data, response_topic,"
    " user_properties, expires_at, priority, message_id, sender_id, extra FROM messages"
)
_SAMPLE: Final = (
    f"SELECT count(*), total({_OPTIONAL_NULL}) FROM (SELECT * FROM messages LIMIT ?)"
)
SAMPLE_ROWS: Final = 1000

# The same for queue entries: source, key (how AMQP routed it) and redeliveries
# as one column, NULL for an entry that came through a topic subscription and was
# never requeued; priority and expires_at stay columns (priority sorts rows into
# levels before any entry is built).
_ENTRY_PLAIN: Final = "source IS NULL AND key IS NULL AND redeliveries = 0"
_SELECT_ENTRIES_PACKED: Final = (
    "SELECT queue_id, id, message, expires_at, priority,"
    f" CASE WHEN {_ENTRY_PLAIN} THEN NULL ELSE json_array(source, key, redeliveries) END"
    " FROM queue_entries ORDER BY queue_id, id"
)
_SELECT_ENTRIES_FULL: Final = (
    "SELECT queue_id, id, message, source, key, expires_at, priority, redeliveries"
    " FROM queue_entries ORDER BY queue_id, id"
)
_SAMPLE_ENTRIES: Final = (
    f"SELECT count(*), total({_ENTRY_PLAIN}) FROM (SELECT * FROM queue_entries LIMIT ?)"
)


def load_messages(
    conn: sqlite3.Connection, batch: int, *, packed: bool | None = None, decoded: bool = False
) -> dict[int, tuple[Any, ...]]:
    """Every row of ``messages`` by id, for :func:`decode_message`: one scan, the
    dict filled at C speed; or with ``decoded``, every message decoded already.
    ``packed``: the scan's form (by default, what the first :data:`SAMPLE_ROWS`
    rows suggest)."""
    if packed is None:
        rows_seen, plain = conn.execute(_SAMPLE, (SAMPLE_ROWS,)).fetchone()
        packed = plain * 2 >= rows_seen
    select = _SELECT_PACKED if packed else _SELECT_FULL
    try:
        cursor = conn.execute(select)
    except sqlite3.OperationalError:  # an SQLite without JSON functions
        cursor = conn.execute(_SELECT_FULL)
    messages: dict[int, tuple[Any, ...]] = {}
    if decoded:
        new = tuple.__new__
        flags_table = _FLAGS
        while rows := cursor.fetchmany(batch):
            for row in rows:
                if len(row) == 6 and row[5] is None:  # the common case, inline
                    mid, topic, payload, flags, expires_at, _ = row
                    qos, retain, utf8 = flags_table[flags & 15]
                    messages[mid] = new(StoredMessage, (
                        mid, topic, payload, qos, retain, utf8, None, None, None, (),
                        expires_at, None, None, None, None,
                    ))
                else:
                    messages[row[0]] = decode_message(row)
        return messages
    fill = messages.update
    while rows := cursor.fetchmany(batch):
        fill(zip(map(MESSAGE_ID, rows), rows, strict=True))
    return messages


def scan_entries(conn: sqlite3.Connection, *, packed: bool | None = None) -> sqlite3.Cursor:
    """A cursor over every queue entry in (queue, id) order, for :func:`entry_fields`;
    ``packed`` as for :func:`load_messages`."""
    if packed is None:
        rows_seen, plain = conn.execute(_SAMPLE_ENTRIES, (SAMPLE_ROWS,)).fetchone()
        packed = plain * 2 >= rows_seen
    try:
        return conn.execute(_SELECT_ENTRIES_PACKED if packed else _SELECT_ENTRIES_FULL)
    except sqlite3.OperationalError:  # an SQLite without JSON functions
        return conn.execute(_SELECT_ENTRIES_FULL)


def entry_fields(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row of :func:`scan_entries` (either form) as (queue_id, id, message id,
    source, key, expires_at, priority, redeliveries)."""
    if len(row) == 8:
        return row
    queue_id, entry_id, mid, expires_at, priority, options = row
    if options is None:
        return queue_id, entry_id, mid, None, None, expires_at, priority, 0
    source, key, redeliveries = json.loads(options)
    return queue_id, entry_id, mid, source, key, expires_at, priority, redeliveries


def decode_message(row: tuple[Any, ...]) -> StoredMessage:
    """A row of :func:`load_messages` (either form) as a :class:`StoredMessage`."""
    # tuple.__new__, not StoredMessage(...): a NamedTuple's own __new__ is Python-level.
    if len(row) == 6:
        mid, topic, payload, flags, expires_at, options = row
        qos, retain, utf8 = _FLAGS[flags & 15]
        if options is None:
            return tuple.__new__(StoredMessage, (
                mid, topic, payload, qos, retain, utf8, None, None, None, (), expires_at,
                None, None, None, None,
            ))
        (content_type, correlation_data, response_topic, props, priority, message_id,
         sender_id, extra) = json.loads(options)
        return tuple.__new__(StoredMessage, (
            mid, topic, payload, qos, retain, utf8, content_type,
            None if correlation_data is None else bytes.fromhex(correlation_data),
            response_topic, tuple(tuple(p) for p in props) if props else (), expires_at,
            priority, message_id, sender_id, None if extra is None else bytes.fromhex(extra),
        ))
    (mid, topic, payload, flags, content_type, correlation_data, response_topic, props,
     expires_at, priority, message_id, sender_id, extra) = row
    qos, retain, utf8 = _FLAGS[flags & 15]
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

    A row is a ``queue_entries`` row as scanned (:func:`scan_entries`); its message
    is the ``messages`` row of that id, kept in ``messages`` until the entry is
    built or dropped. Once recovery has
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
        queue_id, entry_id, mid, source, key, expires_at, priority, redeliveries = (
            entry_fields(row)
        )
        return tuple.__new__(StoredEntry, (
            queue_id, entry_id, decode_message(self._message_row(mid)), source, key,
            expires_at, priority, redeliveries,
        ))

    def drop(self, row: Any) -> tuple[int, int]:
        self._message_row(row[2])
        return row[1], row[2]

    def priority(self, row: Any) -> int:
        return row[6] if len(row) == 8 else row[4]  # type: ignore[no-any-return]
