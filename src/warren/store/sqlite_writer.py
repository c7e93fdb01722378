"""The store's writer process: applies submissions to the SQLite file, group commit.

The broker process opens and recovers the data file (sqlite.py), then hands it to
this process, started as ``python -m warren.store.writer_main`` with one end of a
socket pair. Writing in another process keeps SQLite's work (and its GIL hand-offs
at every ``sqlite3_step``) off the broker's event loop and on the second core.

Wire (both ways): frames of a 4-byte little-endian length and a MessagePack array.

Broker -> writer:
    ``[SUBMIT, first_seq, next_id, [items, items, ...]]``  submissions first_seq, +1, ...
    ``[STATS]``  answer with counts once everything before it is committed
    ``[REFS, ids, counts]``  message reference counts from recovery (int64 arrays)
    ``[PRAGMA, text]``  run ``PRAGMA text`` on the writer's connection (tests)
    ``[CLOSE]``  commit everything, close the file, exit
Writer -> broker:
    ``[COMMITTED, seq]``  every submission up to ``seq`` is durable
    ``[FAILED, seq, message]``  submissions up to ``seq`` were refused; so will be
    every later one (the refusing state)
    ``[STATS, {...}]``
    ``[READY, error]``  once, first: the file is open (error None) or could not be

Items: the hot mutations travel as plain arrays, e.g. ``[ENQUEUE, entry]`` (a
StoredEntry named tuple encodes as an array with its message nested), the others
pickled (``[COLD, bytes]``: rare, and their records keep their own classes).

The writer takes everything that has arrived when it is free (up to ``max_batch``
mutations, never splitting a submission), applies it in one transaction (hot
mutations through :class:`~warren.store.sqlite_batch.RowBuffer`), commits, answers,
and reads again: while one commit (and its fsync) runs, the next batch queues in the
socket. At end of input (the broker exited, even by kill -9) it commits what it has
and exits: those submissions were never acknowledged, keeping them is harmless.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import logging
import pickle
import signal
import socket
import sqlite3
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from warren.store.base import encode_record
from warren.store.errors import StorageError
from warren.store.records import (
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
    Redeliver,
    RemoveQueueSubscription,
    RetainedRecord,
    RuntimeRecord,
    SessionDelivery,
    SessionRecord,
    SessionSubscriptionRecord,
    SetRetained,
    StoredEntry,
    StoredMessage,
    UpdateSessionDelivery,
)
from warren.store.sqlite_batch import RowBuffer
from warren.store.sqlite_file import Synchronous, classify, count_rows, open_file

__all__ = ["FrameReader", "Writer", "encode_frame", "encode_items", "main"]

log = logging.getLogger(__name__)

# Frame kinds, broker -> writer, and writer -> broker.
SUBMIT, STATS, CLOSE, REFS, PRAGMA = range(5)
COMMITTED, FAILED, STATS_REPLY, READY = range(4)
# Item tags (the first element of each item in a SUBMIT frame).
_COLD, _ENQUEUE, _DEQUEUE, _REDELIVER, _PUT_DELIVERY, _UPDATE_DELIVERY, _DELETE_DELIVERY, \
    _SET_RETAINED = range(8)

_LENGTH: Final = struct.Struct("<I")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


# --- the wire ----------------------------------------------------------------------------


def encode_frame(body: Any) -> bytes:
    data = _encode(body)
    return _LENGTH.pack(len(data)) + data


def _encode_cold(m: Mutation) -> tuple[Any, ...]:
    return (_COLD, pickle.dumps(m, pickle.HIGHEST_PROTOCOL))


# One small function per hot type: a tuple build, no per-field Python work (the named
# tuples inside are arrays to MessagePack, encoded in C).
_ENCODERS: Final[dict[type[Any], Callable[[Any], tuple[Any, ...]]]] = {
    Enqueue: lambda m: (_ENQUEUE, m.entry),
    Dequeue: lambda m: (_DEQUEUE, m.queue_id, m.entry_id, m.message_id),
    Redeliver: lambda m: (_REDELIVER, m.queue_id, m.entry_id, m.redeliveries),
    PutSessionDelivery: lambda m: (_PUT_DELIVERY, m.delivery),
    UpdateSessionDelivery: lambda m: (
        _UPDATE_DELIVERY, m.session_id, m.delivery_id, m.packet_id, m.state
    ),
    DeleteSessionDelivery: lambda m: (
        _DELETE_DELIVERY, m.session_id, m.delivery_id, m.message_id
    ),
    SetRetained: lambda m: (_SET_RETAINED, m.retained),
}


def encode_items(mutations: Sequence[Mutation]) -> list[tuple[Any, ...]]:
    """One submission's mutations as wire items."""
    get = _ENCODERS.get
    return [(get(type(m)) or _encode_cold)(m) for m in mutations]


class FrameReader:
    """Splits a byte stream into decoded frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buffer = self._buffer
        buffer += data
        frames = []
        at, end = 0, len(buffer)
        while end - at >= 4:
            (length,) = _LENGTH.unpack_from(buffer, at)
            if end - at - 4 < length:
                break
            frames.append(_decode(memoryview(buffer)[at + 4:at + 4 + length]))
            at += 4 + length
        if at:
            del buffer[:at]
        return frames


def message_row(m: Sequence[Any]) -> tuple[Any, ...]:
    """A ``messages`` row from a StoredMessage or its wire array (same positions)."""
    return (
        m[0], m[1], m[2], m[3] | (m[4] << 2) | (m[5] << 3), m[6], m[7], m[8],
        json.dumps(m[9]) if m[9] else None,
        m[10], m[11], m[12], m[13], m[14],
    )


def _message(m: Sequence[Any]) -> StoredMessage:
    """A StoredMessage from its wire array (rare paths only)."""
    fields = list(m)
    fields[9] = tuple(tuple(p) for p in m[9])
    return StoredMessage._make(fields)


# --- applying mutations ------------------------------------------------------------------


class Writer:
    """Applies wire items to the file, one transaction per batch."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.path = path
        self._conn = conn
        self.next_id = int(self._meta("next_id", 1))
        # Every id written before this open is below the stored next_id.
        self._written_high = self.next_id - 1
        self._refs: dict[int, int] | None = None  # message id -> references
        self._rows = RowBuffer(conn, {}, message_row)  # replaced per commit
        self._hot: dict[int, Callable[[Any], None]] = {
            _ENQUEUE: self._hot_enqueue,
            _DEQUEUE: self._hot_dequeue,
            _REDELIVER: self._hot_redeliver,
            _PUT_DELIVERY: self._hot_put_delivery,
            _UPDATE_DELIVERY: self._hot_update_delivery,
            _DELETE_DELIVERY: self._hot_delete_delivery,
            _SET_RETAINED: self._hot_set_retained,
            _COLD: self._cold,
        }
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
        # Counters for StoreStats (the file's counts are read on request).
        self.commits = 0
        self.mutations = 0
        self.submissions = 0
        self.batch_histogram: dict[int, int] = {}

    def _meta(self, key: str, default: Any) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_refs(self, refs: dict[int, int]) -> None:
        self._refs = refs

    def _ensure_refs(self) -> dict[int, int]:
        if self._refs is None:  # the broker did not recover (a fresh or unused file)
            refs: dict[int, int] = {}
            for (mid,) in self._conn.execute(
                "SELECT message FROM queue_entries UNION ALL SELECT message FROM"
                " session_deliveries UNION ALL SELECT message FROM retained"
            ):
                refs[mid] = refs.get(mid, 0) + 1
            self._refs = refs
        return self._refs

    def commit(self, batch: list[list[Any]]) -> None:
        """Apply ``batch`` (a list of submissions, each a list of items) atomically."""
        conn = self._conn
        refs = self._ensure_refs()
        rows = self._rows = RowBuffer(conn, refs, message_row)
        hot = self._hot
        size = 0
        conn.execute("BEGIN")
        try:
            for items in batch:
                size += len(items)
                for item in items:
                    hot[item[0]](item)
            rows.flush()
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_id', ?)",
                (self.next_id,),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        self.commits += 1
        self.submissions += len(batch)
        self.mutations += size
        bucket = 1 << (len(batch).bit_length() - 1) if batch else 0
        self.batch_histogram[bucket] = self.batch_histogram.get(bucket, 0) + 1

    def counts(self) -> dict[str, Any]:
        result: dict[str, Any] = count_rows(self._conn)
        result.update(
            commits=self.commits, mutations=self.mutations, submissions=self.submissions,
            batch_histogram=self.batch_histogram,
        )
        return result

    # --- reference counting for the run handlers ----------------------------------------

    def _ref(self, message: StoredMessage, new: list[tuple[Any, ...]]) -> None:
        refs = self._refs
        assert refs is not None
        count = refs.get(message.id, 0)
        if not count:
            new.append(message_row(message))
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

    # --- hot items: one each, into the row buffer (sqlite_batch.py) ----------------------

    def _hot_enqueue(self, item: list[Any]) -> None:
        e = item[1]  # [queue_id, id, message, source, key, expires_at, priority, redeliveries]
        if self._replacing(e[1]):
            self._rows.flush()
            self._enqueue([Enqueue(StoredEntry(e[0], e[1], _message(e[2]), *e[3:]))])
            return
        message = e[2]
        e[2] = message[0]
        self._rows.put(self._rows.entries, (e[0], e[1]), e, message[0], message)

    def _hot_dequeue(self, item: list[Any]) -> None:
        self._rows.remove(self._rows.entries, (item[1], item[2]), item[3])

    def _hot_redeliver(self, item: list[Any]) -> None:
        self._rows.update(self._rows.entries, (item[1], item[2]), (item[3],), (7,))

    def _hot_put_delivery(self, item: list[Any]) -> None:
        d = item[1]  # [session_id, id, message, qos, retain, subscription_ids, packet_id, state]
        if self._replacing(d[1]):
            self._rows.flush()
            self._put_delivery([PutSessionDelivery(SessionDelivery(
                d[0], d[1], _message(d[2]), d[3], d[4], tuple(d[5]), d[6], d[7]
            ))])
            return
        message = d[2]
        row = [d[0], d[1], message[0], d[3], int(d[4]), json.dumps(d[5]) if d[5] else None,
               d[6], d[7]]
        self._rows.put(self._rows.deliveries, (d[0], d[1]), row, message[0], message)

    def _hot_update_delivery(self, item: list[Any]) -> None:
        self._rows.update(self._rows.deliveries, (item[1], item[2]), (item[3], item[4]), (6, 7))

    def _hot_delete_delivery(self, item: list[Any]) -> None:
        self._rows.remove(self._rows.deliveries, (item[1], item[2]), item[3])

    def _hot_set_retained(self, item: list[Any]) -> None:
        vpn, topic, message = item[1]
        self._rows.flush()
        self._set_retained([SetRetained(RetainedRecord(vpn, topic, _message(message)))])

    def _cold(self, item: list[Any]) -> None:
        mutation = pickle.loads(item[1])
        self._rows.flush()
        self._handlers[type(mutation)]([mutation])

    # --- run handlers (rare mutations, and re-puts of an id that may be stored) ----------

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


# --- the process -------------------------------------------------------------------------


class _Serve:
    """The writer process's loop (see the module docstring)."""

    def __init__(self, sock: socket.socket, writer: Writer | None, failure: str | None,
                 max_batch: int) -> None:
        self.sock = sock
        self.writer = writer
        self.failure = failure  # set: the refusing state
        self.max_batch = max_batch
        self.batch: list[list[Any]] = []
        self.size = 0
        self.last_seq = -1

    def run(self) -> None:
        reader = FrameReader()
        sock = self.sock
        while True:
            data = sock.recv(1 << 20)  # blocks while there is nothing to do
            eof = not data
            if not eof:  # take whatever else has arrived: the batch grows with load
                sock.setblocking(False)
                try:
                    while more := sock.recv(1 << 20):
                        data += more
                    eof = True
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
            for frame in reader.feed(data):
                if self.handle(frame):
                    return
            self.commit()
            if eof:  # the broker is gone: keep what arrived (never acknowledged)
                return

    def handle(self, frame: list[Any]) -> bool:
        """Take one frame; True when the writer must stop."""
        kind = frame[0]
        if kind == SUBMIT:
            seq = frame[1]
            if self.writer is not None:
                self.writer.next_id = max(self.writer.next_id, frame[2])
            for items in frame[3]:
                if self.batch and self.size + len(items) > self.max_batch:
                    self.commit()
                self.batch.append(items)
                self.size += len(items)
                self.last_seq = seq
                seq += 1
        elif kind == STATS:
            self.commit()
            counts = self.writer.counts() if self.writer is not None else {}
            self.sock.sendall(encode_frame([STATS_REPLY, counts]))
        elif kind == REFS:
            if self.writer is not None:
                ids = array.array("q", frame[1])
                refs = array.array("q", frame[2])
                self.writer.set_refs(dict(zip(ids, refs, strict=True)))
        elif kind == PRAGMA:
            if self.writer is not None:
                self.writer._conn.execute(f"PRAGMA {frame[1]}")
        elif kind == CLOSE:
            self.commit()
            return True
        return False

    def commit(self) -> None:
        if not self.batch:
            return
        batch, self.batch, self.size = self.batch, [], 0
        if self.failure is None:
            assert self.writer is not None
            try:
                self.writer.commit(batch)
            except sqlite3.Error as exc:
                self.failure = str(classify(exc, self.writer.path, "writing"))
            except Exception as exc:  # a bug: still never acknowledge what was not kept
                log.exception("%s: store writer failed", self.writer.path)
                self.failure = f"{self.writer.path}: internal store error: {exc!r}"
        reply: list[Any] = [COMMITTED, self.last_seq]
        if self.failure is not None:
            reply = [FAILED, self.last_seq, self.failure]
        self.sock.sendall(encode_frame(reply))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m warren.store.writer_main",
        description="Warren's store writer process (started by the broker, not by hand).",
    )
    parser.add_argument("path", type=Path)
    parser.add_argument("--fd", type=int, required=True, help="the socket to the broker")
    parser.add_argument("--synchronous", choices=("normal", "full"), default="full")
    parser.add_argument("--max-size", type=int, default=None)
    parser.add_argument("--max-batch", type=int, default=10_000)
    args = parser.parse_args(argv)
    # Ctrl-C or SIGTERM to the broker's process group is the broker's to handle: the
    # writer stops when the broker closes the store (or dies: end of input).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s store writer: %(message)s"
    )
    sock = socket.socket(fileno=args.fd)
    synchronous: Synchronous = args.synchronous
    writer: Writer | None = None
    failure: str | None = None
    conn: sqlite3.Connection | None = None
    try:
        conn = open_file(args.path, synchronous, args.max_size)
        writer = Writer(conn, args.path)
    except (StorageError, sqlite3.Error) as exc:
        failure = str(exc)
    try:
        sock.sendall(encode_frame([READY, failure]))
        _Serve(sock, writer, failure, args.max_batch).run()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the broker is gone; what was committed stays
    finally:
        if conn is not None:
            try:
                conn.close()  # the last connection checkpoints and removes the WAL
            except sqlite3.Error as exc:
                log.warning("%s: closing the store: %s", args.path, exc)
        sock.close()
    return 0
