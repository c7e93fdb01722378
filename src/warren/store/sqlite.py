"""The SQLite store: one WAL-mode file in the data directory, group commit on one thread.

Layout and guarantees are in docs/storage.md. In short:

- **One writer thread** owns the connection after recovery. ``submit`` appends to a
  queue and returns; the thread wakes, takes *everything queued* (up to
  ``max_batch`` mutations, never splitting a submission), applies it in one
  transaction, commits, and only then completes those submissions: one commit, and
  with ``synchronous="full"`` one fsync, serves every publisher that was waiting.
  Submission order is commit order, so per-queue order is kept.
- **Integer keys, clustered tables.** Queue entries and session deliveries are
  ``WITHOUT ROWID`` tables keyed ``(queue_id, id)``, so recovery is one ordered scan
  per table, and a message body is stored once in ``messages`` however many entries
  refer to it. The writer counts references in memory and deletes a body with its
  last reference, in the same transaction.
- **Failures refuse.** Any SQLite error while writing (disk full, read-only file,
  corruption) fails the batch and everything queued behind it with a
  :class:`StorageError`, and every later submission too: nothing unkept is ever
  acknowledged. Reopening the store is the way back.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import gc
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from warren.store.base import (
    Done,
    StoreStats,
    Waiter,
    decode_record,
    encode_record,
    fire,
    future_done,
    waiter,
)
from warren.store.errors import SchemaVersionError, StorageError, StoreClosedError
from warren.store.records import (
    RUNTIME_KINDS,
    AddQueueSubscription,
    BindingRecord,
    DeleteBinding,
    DeleteExchange,
    DeleteIncomingQos2,
    DeleteObject,
    DeleteQueue,
    DeleteRetained,
    DeleteSession,
    DeleteSessionDelivery,
    DeleteSessionSubscription,
    Dequeue,
    Enqueue,
    ExchangeRecord,
    IncomingQos2Record,
    Mutation,
    ObjectRecord,
    PurgeQueue,
    PutBinding,
    PutExchange,
    PutIncomingQos2,
    PutObject,
    PutQueue,
    PutSession,
    PutSessionDelivery,
    PutSessionSubscription,
    QueueRecord,
    QueueSubscriptionRecord,
    Recovered,
    Redeliver,
    RemoveQueueSubscription,
    RetainedRecord,
    RuntimeRecord,
    SessionDelivery,
    SessionRecord,
    SessionSubscriptionRecord,
    SetRetained,
    StoredEntry,
    StoredEntryRows,
    StoredMessage,
    UpdateSessionDelivery,
)
from warren.store.sqlite_batch import RowBuffer
from warren.store.sqlite_recovery import (
    ENTRY_MESSAGE,
    ENTRY_QUEUE,
    MESSAGE_PAYLOAD,
    EntryRows,
    decode_message,
    load_messages,
    scan_entries,
    shared_ids,
)

__all__ = ["DEFAULT_FILENAME", "SCHEMA_VERSION", "SqliteStore"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

SCHEMA_VERSION: Final = 1
DEFAULT_FILENAME: Final = "warren.db"
APPLICATION_ID: Final = 0x5741524E  # "WARN": marks the file as Warren's (PRAGMA application_id)

# Schema version 1. Hot tables have integer keys and typed columns; runtime objects
# are JSON bodies in ``records`` (see records.py). WITHOUT ROWID makes the primary
# key the storage order: one sequential scan returns a queue's entries in order.
_SCHEMA: Final = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value ANY
) WITHOUT ROWID;
CREATE TABLE messages (
    id                INTEGER PRIMARY KEY,
    topic             TEXT NOT NULL,
    payload           BLOB NOT NULL,
    flags             INTEGER NOT NULL,  -- qos | retain << 2 | payload_format_utf8 << 3
    content_type      TEXT,
    correlation_data  BLOB,
    response_topic    TEXT,
    user_properties   TEXT,              -- JSON [[name, value], ...], NULL if none
    expires_at        REAL,              -- wall clock
    priority          INTEGER,
    message_id        TEXT,
    sender_id         TEXT,
    extra             BLOB
);
CREATE TABLE queue_entries (
    queue_id      INTEGER NOT NULL,
    id            INTEGER NOT NULL,
    message       INTEGER NOT NULL,
    source        TEXT,
    key           TEXT,
    expires_at    REAL,
    priority      INTEGER NOT NULL,
    redeliveries  INTEGER NOT NULL,
    PRIMARY KEY (queue_id, id)
) WITHOUT ROWID;
CREATE TABLE session_deliveries (
    session_id        INTEGER NOT NULL,
    id                INTEGER NOT NULL,
    message           INTEGER NOT NULL,
    qos               INTEGER NOT NULL,
    retain            INTEGER NOT NULL,
    subscription_ids  TEXT,              -- JSON [id, ...], NULL if none
    packet_id         INTEGER NOT NULL,
    state             INTEGER NOT NULL,
    PRIMARY KEY (session_id, id)
) WITHOUT ROWID;
CREATE TABLE retained (
    vpn      TEXT NOT NULL,
    topic    TEXT NOT NULL,
    message  INTEGER NOT NULL,
    PRIMARY KEY (vpn, topic)
) WITHOUT ROWID;
CREATE TABLE records (
    kind   TEXT NOT NULL,
    owner  INTEGER NOT NULL,
    key    TEXT NOT NULL,
    body   TEXT NOT NULL,               -- the record as JSON (base.encode_record)
    PRIMARY KEY (kind, owner, key)
) WITHOUT ROWID;
"""

_SCAN_BATCH: Final = 20_000  # rows per fetchmany during recovery

Synchronous = Literal["normal", "full"]


def _message_row(m: StoredMessage) -> tuple[Any, ...]:
    return (
        m.id,
        m.topic,
        m.payload,
        m.qos | (m.retain << 2) | (m.payload_format_utf8 << 3),
        m.content_type,
        m.correlation_data,
        m.response_topic,
        json.dumps(m.user_properties) if m.user_properties else None,
        m.expires_at,
        m.priority,
        m.message_id,
        m.sender_id,
        m.extra,
    )


class SqliteStore:
    """A durable :class:`~warren.store.base.Store` in one SQLite file.

    ``path`` is the database file (conventionally ``<data_dir>/warren.db``).
    ``synchronous`` "full" fsyncs the WAL at every commit (survives power loss);
    "normal" writes it without fsync (survives a process crash, kill -9, but an OS
    crash or power cut may lose the last commits). ``max_batch`` caps the mutations
    in one commit; ``max_size`` caps the file size in bytes (writes beyond it fail
    like a full disk).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "full",
        max_batch: int = 10_000,
        max_size: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_batch = max_batch
        self._conn = _open(self.path, synchronous, max_size)
        self._next_id = int(self._meta("next_id", 1))
        # Every id written before this open is below the stored next_id.
        self._written_high = self._next_id - 1
        self._refs: dict[int, int] | None = None  # message id -> references
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: collections.deque[tuple[Sequence[Mutation], Waiter | None]] = (
            collections.deque()
        )
        self._probes: list[Callable[[], object]] = []  # run by the writer between commits
        self._failure: StorageError | None = None
        self._closing = False
        self._idle = False  # the writer is (about to be) waiting for work
        self._thread: threading.Thread | None = None
        self._stats = StoreStats()
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            Enqueue: self._enqueue,
            PurgeQueue: self._purge,
            PutQueue: self._put_records,
            DeleteQueue: self._delete_queue,
            AddQueueSubscription: self._put_records,
            RemoveQueueSubscription: self._remove_queue_subscription,
            PutExchange: self._put_records,
            DeleteExchange: self._delete_exchange,
            PutBinding: self._put_records,
            DeleteBinding: self._delete_binding,
            PutSession: self._put_records,
            DeleteSession: self._delete_session,
            PutSessionSubscription: self._put_records,
            DeleteSessionSubscription: self._delete_session_subscription,
            PutSessionDelivery: self._put_delivery,
            PutIncomingQos2: self._put_records,
            DeleteIncomingQos2: self._delete_incoming_qos2,
            SetRetained: self._set_retained,
            DeleteRetained: self._delete_retained,
            PutObject: self._put_records,
            DeleteObject: self._delete_object,
        }
        self._hot: dict[type[Any], Callable[[Any], None]] = {
            Enqueue: self._hot_enqueue,
            Dequeue: self._hot_dequeue,
            Redeliver: self._hot_redeliver,
            PutSessionDelivery: self._hot_put_delivery,
            UpdateSessionDelivery: self._hot_update_delivery,
            DeleteSessionDelivery: self._hot_delete_delivery,
        }
        self._rows = RowBuffer(self._conn, {}, _message_row)  # replaced per commit

    def __repr__(self) -> str:
        return f"<SqliteStore {str(self.path)!r}>"

    @property
    def failure(self) -> StorageError | None:
        return self._failure

    def next_id(self) -> int:
        # Only the event loop thread calls this; the writer reads _next_id to record
        # the high-water mark, and any value it sees covers the ids in its batch.
        value = self._next_id
        self._next_id = value + 1
        return value

    def _meta(self, key: str, default: Any) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    # --- recovery ---------------------------------------------------------------------

    def recover(self, *, compact: bool = False) -> Iterator[Recovered]:
        if self._thread is not None:
            raise StorageError("recover() must run before the first submit()")
        # A million long-lived objects trigger the cyclic collector over and over
        # while nothing here can form a cycle: pausing it halves recovery time.
        collecting = gc.isenabled()
        gc.disable()
        try:
            yield from self._recover(compact)
        except sqlite3.DatabaseError as exc:
            raise _classify(exc, self.path, "reading") from exc
        finally:
            if collecting:
                gc.enable()

    def _recover(self, compact: bool) -> Iterator[Recovered]:
        conn = self._conn
        for cls in RUNTIME_KINDS:
            for (body,) in conn.execute(
                "SELECT body FROM records WHERE kind = ? ORDER BY owner, key", (cls.KIND,)
            ):
                yield decode_record(cls.KIND, body)

        # Without ``compact`` every message is decoded once, up front (as it will all
        # be needed); with it, messages stay rows for the codec, and what the stream
        # decodes itself (deliveries, retained messages) shares one StoredMessage per
        # id through ``built``.
        messages = self._load_messages(decoded=not compact)
        codec = EntryRows(messages)
        refs: dict[int, int] = {}
        missing = 0
        built: dict[int, StoredMessage] = {}

        def stored(mid: int) -> StoredMessage | None:
            if not compact:
                return messages.get(mid)  # type: ignore[return-value]
            message = built.get(mid)
            if message is None:
                row = messages.get(mid)
                if row is None:
                    return None
                message = built[mid] = decode_message(row)
            return message

        # Without ``compact`` the entries are read in full: unpacked straight away.
        cursor = scan_entries(conn, packed=None if compact else False)
        # The hot loop of a big recovery, per batch of rows and at C speed (map,
        # Counter.update, bisect): no Python code runs per entry with ``compact``.
        count_refs = collections.Counter.update
        known = messages.__contains__
        lookup = messages.__getitem__
        new = tuple.__new__
        entry_cls = StoredEntry
        while rows := cursor.fetchmany(_SCAN_BATCH):
            mids = list(map(ENTRY_MESSAGE, rows))
            if not all(map(known, mids)):  # a damaged file: skip what lost its message
                kept = [row for row in rows if row[2] in messages]
                missing += len(rows) - len(kept)
                rows = kept
                mids = list(map(ENTRY_MESSAGE, rows))
            count_refs(refs, mids)  # type: ignore[call-overload]
            start, stop = 0, len(rows)
            while start < stop:  # one run per queue in this batch ((queue, id) order)
                queue_id = rows[start][0]
                end = bisect.bisect_right(rows, queue_id, start, key=ENTRY_QUEUE)
                run = rows if end - start == stop else rows[start:end]
                if compact:
                    size = sum(map(len, map(MESSAGE_PAYLOAD, map(lookup, mids[start:end]))))
                    yield StoredEntryRows(queue_id, run, size, codec)
                else:
                    for queue_id, entry_id, mid, source, key, expires_at, priority, again in run:
                        yield new(entry_cls, (
                            queue_id, entry_id, lookup(mid), source, key, expires_at, priority,
                            again,
                        ))
                start = end

        cursor = conn.execute(
            "SELECT session_id, id, message, qos, retain, subscription_ids, packet_id, state"
            " FROM session_deliveries ORDER BY session_id, id"
        )
        while rows := cursor.fetchmany(_SCAN_BATCH):
            for session_id, delivery_id, mid, qos, retain, sub_ids, packet_id, state in rows:
                message = stored(mid)
                if message is None:
                    missing += 1
                    continue
                refs[mid] = refs.get(mid, 0) + 1
                yield SessionDelivery(
                    session_id,
                    delivery_id,
                    message,
                    qos,
                    bool(retain),
                    tuple(json.loads(sub_ids)) if sub_ids else (),
                    packet_id,
                    state,
                )

        for vpn, topic, mid in conn.execute(
            "SELECT vpn, topic, message FROM retained ORDER BY vpn, topic"
        ):
            message = stored(mid)
            if message is None:
                missing += 1
                continue
            refs[mid] = refs.get(mid, 0) + 1
            yield RetainedRecord(vpn, topic, message)

        if missing:
            log.warning(
                "%s: %d stored references point at missing messages and were skipped;"
                " the file may be damaged (PRAGMA integrity_check)",
                self.path,
                missing,
            )
        # Bodies nothing refers to (a crash can leave none, but be tidy): delete them.
        # Every counted reference found its body, so equal sizes mean no orphan.
        if len(refs) != len(messages):
            orphans = [mid for mid in messages if mid not in refs]
            with conn:
                conn.executemany("DELETE FROM messages WHERE id = ?", [(m,) for m in orphans])
            for mid in orphans:
                del messages[mid]
        if compact:
            # From now on an entry's message row leaves with the entry unless something
            # else refers to it too; what was decoded already needs no row.
            shared = shared_ids(refs)
            for mid in built:
                if mid not in shared:
                    messages.pop(mid, None)
            codec.release(shared)
        self._refs = refs

    def _load_messages(self, *, decoded: bool) -> dict[int, tuple[Any, ...]]:
        """Every stored message by id, as a row or a StoredMessage
        (sqlite_recovery.load_messages)."""
        return load_messages(self._conn, _SCAN_BATCH, decoded=decoded)

    def _count_refs(self) -> dict[int, int]:
        """References per message, when writing starts without a full recover()."""
        refs: dict[int, int] = {}
        for (mid,) in self._conn.execute(
            "SELECT message FROM queue_entries UNION ALL SELECT message FROM session_deliveries"
            " UNION ALL SELECT message FROM retained"
        ):
            refs[mid] = refs.get(mid, 0) + 1
        return refs

    # --- submitting -------------------------------------------------------------------

    def submit(
        self,
        mutations: Sequence[Mutation],
        done: Done | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        item = (mutations, None if done is None else waiter(done, loop))
        error = self._failure
        if error is None and self._closing:
            error = StoreClosedError(f"{self.path}: the store is closed")
        if error is None:
            if self._thread is None:
                with self._lock:
                    if self._thread is None:
                        self._start()
            # No lock on the publish path: deque.append is atomic, and the writer
            # re-checks the queue after raising _idle, so a wake-up is only needed
            # when it may be waiting. Taking the lock here made the event loop wait
            # for the writer thread (and then for the GIL) on every submission.
            self._queue.append(item)
            if self._idle:
                with self._lock:
                    self._wake.notify()
            return
        if item[1] is not None:
            fire([item[1]], error)

    def write(self, mutations: Sequence[Mutation]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.submit(mutations, future_done(future))
        return future

    def stats(self) -> StoreStats:
        """Counts, read from the file: blocks until the writer is between commits
        (for tests, tools and the management API, not for the publish path)."""
        with self._lock:
            stats = replace(self._stats, batch_histogram=dict(self._stats.batch_histogram))
            running = self._thread is not None and not self._closing
            if running:
                counted = threading.Event()

                def probe() -> None:
                    try:
                        self._count(stats)
                    finally:
                        counted.set()

                self._probes.append(probe)
                self._wake.notify()
        if not running:
            if self._thread is None:  # safe to read: no writer
                self._count(stats)
            return stats
        counted.wait()
        return stats

    def _count(self, stats: StoreStats) -> None:
        conn = self._conn
        for table, attr in (
            ("messages", "messages"),
            ("queue_entries", "entries"),
            ("session_deliveries", "deliveries"),
            ("retained", "retained"),
            ("records", "records"),
        ):
            setattr(stats, attr, conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
        # A submission that raced with close() (from another thread) is refused, not lost.
        left = [w for _, w in _drain(self._queue) if w is not None]
        if left:
            fire(left, StoreClosedError(f"{self.path}: the store is closed"))
        try:
            self._conn.close()  # the last connection checkpoints and removes the WAL
        except sqlite3.Error as exc:
            log.warning("%s: closing the store: %s", self.path, exc)

    # --- the writer thread ------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="warren-store", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._refs is None:
            try:
                self._refs = self._count_refs()
            except sqlite3.Error as exc:
                self._fail(_classify(exc, self.path, "reading"), [])
                self._refs = {}
        queue = self._queue
        while True:
            with self._lock:
                self._idle = True  # before looking at the queue: see submit()
                while not queue and not self._closing and not self._probes:
                    self._wake.wait()
                self._idle = False
                probes, self._probes = self._probes, []
            for probe in probes:
                try:
                    probe()
                except Exception:
                    log.exception("%s: reading store statistics", self.path)
            if not queue:
                if self._closing:
                    return  # everything submitted was committed
                continue
            # Only this thread takes from the queue (popleft is atomic).
            batch = [queue.popleft()]
            size = len(batch[0][0])
            while queue and size + len(queue[0][0]) <= self.max_batch:
                item = queue.popleft()
                size += len(item[0])
                batch.append(item)
            stopped = self._failure is not None
            if stopped:
                self._fail(self._failure, batch)
                continue
            try:
                self._commit(batch)
            except sqlite3.Error as exc:
                self._fail(_classify(exc, self.path, "writing"), batch)
                continue
            except Exception as exc:  # a bug: still never acknowledge what was not kept
                log.exception("%s: store writer failed", self.path)
                self._fail(StorageError(f"{self.path}: internal store error: {exc!r}"), batch)
                continue
            with self._lock:
                self._stats.count_batch(len(batch), size)
            fire([w for _, w in batch if w is not None], None)

    def _commit(self, batch: list[tuple[Sequence[Mutation], Waiter | None]]) -> None:
        conn = self._conn
        handlers = self._handlers
        hot = self._hot
        assert self._refs is not None
        rows = self._rows = RowBuffer(conn, self._refs, _message_row)
        conn.execute("BEGIN")
        try:
            for mutations, _ in batch:
                # Hot mutations (entries and deliveries) go to the row buffer; runs of
                # any other type go to their handler together (executemany), after
                # the buffer is written, so the outcome is the sequential one.
                i, n = 0, len(mutations)
                while i < n:
                    kind = type(mutations[i])
                    handle = hot.get(kind)
                    if handle is not None:
                        handle(mutations[i])
                        i += 1
                        continue
                    j = i + 1
                    while j < n and type(mutations[j]) is kind:
                        j += 1
                    rows.flush()
                    handlers[kind](mutations[i:j])
                    i = j
            rows.flush()
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_id', ?)",
                (self._next_id,),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    def _fail(
        self,
        error: StorageError | None,
        batch: list[tuple[Sequence[Mutation], Waiter | None]],
    ) -> None:
        """Enter the refusing state: fail ``batch`` and everything queued behind it."""
        assert error is not None
        with self._lock:
            first = self._failure is None
            if first:
                self._failure = error
            batch = batch + _drain(self._queue)
        if first:
            log.error("%s: storage failed, refusing persistent writes: %s", self.path, error)
        fire([w for _, w in batch if w is not None], error)

    # --- mutation handlers (writer thread; each gets a run of one mutation type) ------

    def _ref(self, message: StoredMessage, new: list[tuple[Any, ...]]) -> None:
        refs = self._refs
        assert refs is not None
        count = refs.get(message.id, 0)
        if not count:
            new.append(_message_row(message))
        refs[message.id] = count + 1

    def _unref(self, message_id: int, dead: list[tuple[int]]) -> None:
        refs = self._refs
        assert refs is not None
        count = refs.get(message_id, 0) - 1
        if count > 0:
            refs[message_id] = count
        else:
            refs.pop(message_id, None)
            dead.append((message_id,))

    def _insert_messages(self, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self._conn.executemany(
                "INSERT OR REPLACE INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )

    def _delete_messages(self, dead: list[tuple[int]]) -> None:
        if dead:
            self._conn.executemany("DELETE FROM messages WHERE id = ?", dead)

    def _delete_returning(self, sql: str, params: Sequence[Any], dead: list[tuple[int]]) -> None:
        """Run a DELETE ... RETURNING message; drop one reference per deleted row."""
        for (mid,) in self._conn.execute(sql, params).fetchall():
            self._unref(mid, dead)

    def _replacing(self, row_id: int) -> bool:
        """Whether ``row_id`` may already be stored (then a put must replace it).

        Ids only grow, so an id above every id written so far is new: the common case
        takes no lookup. One below may be a re-put (or was just allocated earlier).
        """
        if row_id > self._written_high:
            self._written_high = row_id
            return False
        return True

    # Hot handlers: one mutation each, into the row buffer (sqlite_batch.py).

    def _hot_enqueue(self, m: Enqueue) -> None:
        e = m.entry
        if self._replacing(e.id):
            self._rows.flush()
            self._enqueue([m])
            return
        self._rows.put(
            self._rows.entries,
            (e.queue_id, e.id),
            [e.queue_id, e.id, e.message.id, e.source, e.key, e.expires_at, e.priority,
             e.redeliveries],
            e.message,
        )

    def _hot_dequeue(self, m: Dequeue) -> None:
        self._rows.remove(self._rows.entries, (m.queue_id, m.entry_id), m.message_id)

    def _hot_redeliver(self, m: Redeliver) -> None:
        self._rows.update(self._rows.entries, (m.queue_id, m.entry_id), (m.redeliveries,), (7,))

    def _hot_put_delivery(self, m: PutSessionDelivery) -> None:
        d = m.delivery
        if self._replacing(d.id):
            self._rows.flush()
            self._put_delivery([m])
            return
        self._rows.put(
            self._rows.deliveries,
            (d.session_id, d.id),
            [d.session_id, d.id, d.message.id, d.qos, int(d.retain),
             json.dumps(d.subscription_ids) if d.subscription_ids else None,
             d.packet_id, d.state],
            d.message,
        )

    def _hot_update_delivery(self, m: UpdateSessionDelivery) -> None:
        self._rows.update(
            self._rows.deliveries, (m.session_id, m.delivery_id), (m.packet_id, m.state), (6, 7)
        )

    def _hot_delete_delivery(self, m: DeleteSessionDelivery) -> None:
        self._rows.remove(self._rows.deliveries, (m.session_id, m.delivery_id), m.message_id)

    # Run handlers (rare mutations, and re-puts of an id that may be stored).

    def _enqueue(self, run: Sequence[Enqueue]) -> None:
        new: list[tuple[Any, ...]] = []
        dead: list[tuple[int]] = []
        rows = []
        for mutation in run:
            e = mutation.entry
            self._ref(e.message, new)
            self._delete_returning(
                "DELETE FROM queue_entries WHERE queue_id = ? AND id = ? RETURNING message",
                (e.queue_id, e.id),
                dead,
            )
            rows.append(
                (e.queue_id, e.id, e.message.id, e.source, e.key, e.expires_at, e.priority,
                 e.redeliveries)
            )
        self._insert_messages(new)
        self._conn.executemany("INSERT INTO queue_entries VALUES (?,?,?,?,?,?,?,?)", rows)
        self._delete_messages(dead)

    def _purge(self, run: Sequence[PurgeQueue]) -> None:
        dead: list[tuple[int]] = []
        for m in run:
            self._delete_returning(
                "DELETE FROM queue_entries WHERE queue_id = ? RETURNING message",
                (m.queue_id,),
                dead,
            )
        self._delete_messages(dead)

    def _put_records(self, run: Sequence[Any]) -> None:
        records: list[RuntimeRecord] = [
            getattr(m, m.__slots__[0]) for m in run  # each Put* holds one record
        ]
        self._conn.executemany(
            "INSERT OR REPLACE INTO records VALUES (?,?,?,?)",
            [(r.KIND, r.owner, r.key, encode_record(r)) for r in records],
        )

    def _delete_records(self, keys: list[tuple[str, int, str]]) -> None:
        self._conn.executemany(
            "DELETE FROM records WHERE kind = ? AND owner = ? AND key = ?", keys
        )

    def _drop_owned(self, owner: int, kinds: tuple[str, ...]) -> None:
        self._conn.executemany(
            "DELETE FROM records WHERE kind = ? AND owner = ?", [(k, owner) for k in kinds]
        )

    def _delete_queue(self, run: Sequence[DeleteQueue]) -> None:
        self._purge([PurgeQueue(m.queue_id) for m in run])
        for m in run:
            self._drop_owned(
                m.queue_id, (QueueRecord.KIND, QueueSubscriptionRecord.KIND, BindingRecord.KIND)
            )

    def _remove_queue_subscription(self, run: Sequence[RemoveQueueSubscription]) -> None:
        self._delete_records([(QueueSubscriptionRecord.KIND, m.queue_id, m.key) for m in run])

    def _delete_exchange(self, run: Sequence[DeleteExchange]) -> None:
        self._delete_records([(ExchangeRecord.KIND, 0, f"{m.vpn}\x00{m.name}") for m in run])
        for m in run:  # and the bindings from it (key prefix vpn NUL source NUL)
            self._conn.execute(
                "DELETE FROM records WHERE kind = ? AND key >= ? AND key < ?",
                (BindingRecord.KIND, f"{m.vpn}\x00{m.name}\x00", f"{m.vpn}\x00{m.name}\x01"),
            )

    def _delete_binding(self, run: Sequence[DeleteBinding]) -> None:
        self._delete_records([(b.KIND, b.owner, b.key) for b in (m.binding for m in run)])

    def _delete_session(self, run: Sequence[DeleteSession]) -> None:
        dead: list[tuple[int]] = []
        for m in run:
            self._delete_returning(
                "DELETE FROM session_deliveries WHERE session_id = ? RETURNING message",
                (m.session_id,),
                dead,
            )
            self._drop_owned(
                m.session_id,
                (SessionRecord.KIND, SessionSubscriptionRecord.KIND, IncomingQos2Record.KIND),
            )
        self._delete_messages(dead)

    def _delete_session_subscription(self, run: Sequence[DeleteSessionSubscription]) -> None:
        self._delete_records([(SessionSubscriptionRecord.KIND, m.session_id, m.key) for m in run])

    def _put_delivery(self, run: Sequence[PutSessionDelivery]) -> None:
        new: list[tuple[Any, ...]] = []
        dead: list[tuple[int]] = []
        rows = []
        for m in run:
            d = m.delivery
            self._ref(d.message, new)
            self._delete_returning(  # a re-put replaces the delivery and its reference
                "DELETE FROM session_deliveries WHERE session_id = ? AND id = ?"
                " RETURNING message",
                (d.session_id, d.id),
                dead,
            )
            rows.append(
                (d.session_id, d.id, d.message.id, d.qos, int(d.retain),
                 json.dumps(d.subscription_ids) if d.subscription_ids else None,
                 d.packet_id, d.state)
            )
        self._insert_messages(new)
        self._conn.executemany("INSERT INTO session_deliveries VALUES (?,?,?,?,?,?,?,?)", rows)
        self._delete_messages(dead)

    def _delete_incoming_qos2(self, run: Sequence[DeleteIncomingQos2]) -> None:
        self._delete_records(
            [(IncomingQos2Record.KIND, m.session_id, str(m.packet_id)) for m in run]
        )

    def _set_retained(self, run: Sequence[SetRetained]) -> None:
        for m in run:  # rare next to queue traffic: one at a time keeps it simple
            r = m.retained
            new: list[tuple[Any, ...]] = []
            dead: list[tuple[int]] = []
            self._ref(r.message, new)
            self._delete_returning(
                "DELETE FROM retained WHERE vpn = ? AND topic = ? RETURNING message",
                (r.vpn, r.topic),
                dead,
            )
            self._insert_messages(new)
            self._conn.execute(
                "INSERT INTO retained VALUES (?,?,?)", (r.vpn, r.topic, r.message.id)
            )
            self._delete_messages(dead)

    def _delete_retained(self, run: Sequence[DeleteRetained]) -> None:
        dead: list[tuple[int]] = []
        for m in run:
            self._delete_returning(
                "DELETE FROM retained WHERE vpn = ? AND topic = ? RETURNING message",
                (m.vpn, m.topic),
                dead,
            )
        self._delete_messages(dead)

    def _delete_object(self, run: Sequence[DeleteObject]) -> None:
        self._delete_records(
            [(ObjectRecord.KIND, 0, f"{m.kind}\x00{m.vpn}\x00{m.name}") for m in run]
        )


# --- opening the file ----------------------------------------------------------------


def _open(path: Path, synchronous: Synchronous, max_size: int | None) -> sqlite3.Connection:
    """Open (or create) the data file, check its schema, and prove it is writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the data directory {path.parent}: {exc.strerror}; create it, or"
            " set [server] data_dir to a writable directory"
        ) from exc
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (one per batch).
        # check_same_thread=False: recovery runs on the caller's thread, then the
        # writer thread owns the connection; they never overlap (see recover()).
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=1.0,
            cached_statements=256,  # sqlite_batch.py's multi-row statements
        )
    except sqlite3.Error as exc:
        raise _classify(exc, path, "opening") from exc
    try:
        _configure(conn, path, synchronous, max_size)
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(
    conn: sqlite3.Connection, path: Path, synchronous: Synchronous, max_size: int | None
) -> None:
    try:
        # Exclusive locking: one broker per file (a second one gets "locked"), and
        # WAL needs no shared-memory file.
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        app_id, = conn.execute("PRAGMA application_id").fetchone()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and app_id != APPLICATION_ID:
            raise StorageError(
                f"{path} is an SQLite file but not a Warren data file; point [server] data_dir"
                " elsewhere or move the file away"
            )
        mode, = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal":
            raise StorageError(f"{path}: cannot switch to WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        conn.execute("PRAGMA journal_size_limit = 67108864")  # truncate the WAL to 64 MiB
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB page cache
        if max_size is not None:
            page_size, = conn.execute("PRAGMA page_size").fetchone()
            conn.execute(f"PRAGMA max_page_count = {max(1, max_size // page_size)}")
        conn.execute("BEGIN IMMEDIATE")  # fails now, not at the first publish, if unwritable
        conn.execute("ROLLBACK")
        if tables and "meta" not in tables:
            raise StorageError(
                f"{path}: a Warren data file without its meta table (damaged?): restore it"
                " from a backup or move it away to start with empty storage"
            )
    except sqlite3.Error as exc:
        raise _classify(exc, path, "opening") from exc
    if "meta" not in tables:
        _create_schema(conn, path)
    else:
        _check_schema(conn, path)


def _create_schema(conn: sqlite3.Connection, path: Path) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("schema_version", SCHEMA_VERSION), ("next_id", 1)],
        )
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise _classify(exc, path, "creating") from exc


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error as exc:
        raise _classify(exc, path, "opening") from exc
    version = row[0] if row is not None else None
    if version == SCHEMA_VERSION:
        return
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} has storage schema version {version}, newer than this Warren's"
            f" ({SCHEMA_VERSION}): run the Warren version that wrote it (or newer), or move"
            " the file away to start with empty storage"
        )
    raise SchemaVersionError(
        f"{path} has storage schema version {version!r}, which this Warren"
        f" (schema {SCHEMA_VERSION}) cannot read: restore a backup or move the file away"
    )


def _drain(queue: collections.deque[_T]) -> list[_T]:
    """Take everything from ``queue`` while other threads may append (popleft is atomic)."""
    items = []
    with contextlib.suppress(IndexError):
        while True:
            items.append(queue.popleft())
    return items


def _classify(exc: sqlite3.Error, path: Path, doing: str) -> StorageError:
    """A StorageError that says what happened to ``path`` and what to do about it."""
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith("SQLITE_FULL") or "full" in text:
        fix = "free disk space (or raise the store's size limit), then restart the broker"
        what = "the disk or the store's size limit is full"
    elif name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        fix = (
            "make the file and its directory writable by the broker's user (and the"
            " file system read-write), then restart"
        )
        what = "the data file is read-only"
    elif name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or (
        "not a database" in text
    ):
        fix = (
            "restore it from a backup, or salvage it with `sqlite3 FILE .recover`, or move it"
            " away to start with empty storage"
        )
        what = "the data file is damaged or not a database"
    elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        fix = "stop the other broker using this data directory, or give this one its own"
        what = "another process holds the data file"
    elif name.startswith(("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM")):
        fix = "check the data directory's permissions, free space and file system"
        what = "the data file cannot be opened or written"
    else:
        fix = "check the data directory's free space, permissions and file system"
        what = "the storage engine failed"
    detail = f"{text}; {name} {code}" if code is not None else text
    return StorageError(f"{path}: {what} while {doing} ({detail}): {fix}")
