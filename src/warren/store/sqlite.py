"""The SQLite store: one WAL-mode file in the data directory, written by its own process.

Layout and guarantees are in docs/storage.md. In short:

- **The broker reads, a writer process writes.** The broker opens the file, checks
  it and streams everything back (:meth:`SqliteStore.recover`); then it hands the
  file to a writer process (sqlite_writer.py) over a socket pair. ``submit``
  appends to a queue and returns; a sender thread encodes what is queued and sends
  it in one frame; the writer applies *everything that has arrived* (up to
  ``max_batch`` mutations, never splitting a submission) in one transaction,
  commits, and answers with the last sequence number committed; a receiver thread
  then completes those submissions on their event loops. One commit, and with
  ``synchronous="full"`` one fsync, serves every publisher that was waiting, and
  SQLite's work runs on another core, off the broker's GIL. Submission order is
  commit order, so per-queue order is kept.
- **Integer keys, clustered tables.** Queue entries and session deliveries are
  ``WITHOUT ROWID`` tables keyed ``(queue_id, id)``, so recovery is one ordered scan
  per table, and a message body is stored once in ``messages`` however many entries
  refer to it. The writer counts references in memory and deletes a body with its
  last reference, in the same transaction.
- **Failures refuse.** Any SQLite error while writing (disk full, read-only file,
  corruption), or the writer process dying, fails the batch and everything queued
  behind it with a :class:`StorageError`, and every later submission too: nothing
  unkept is ever acknowledged. Reopening the store is the way back.
- **One broker per file**: the broker holds an exclusive ``flock`` on the file for
  its lifetime and passes it to its writer, so a restarted broker waits for a
  previous writer (still committing after a kill -9) to finish.
"""

from __future__ import annotations

import array
import asyncio
import bisect
import collections
import contextlib
import fcntl
import gc
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import warren
from warren.store.base import (
    Done,
    StoreStats,
    Waiter,
    decode_record,
    fire,
    future_done,
    waiter,
)
from warren.store.errors import StorageError, StoreClosedError
from warren.store.records import (
    RUNTIME_KINDS,
    Mutation,
    Recovered,
    RetainedRecord,
    SessionDelivery,
    StoredEntry,
    StoredEntryRows,
    StoredMessage,
)
from warren.store.sqlite_file import (
    DEFAULT_FILENAME,
    SCHEMA_VERSION,
    Synchronous,
    classify,
    count_rows,
    open_file,
)
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
from warren.store.sqlite_writer import (
    CLOSE,
    COMMITTED,
    FAILED,
    PRAGMA,
    READY,
    REFS,
    STATS,
    STATS_REPLY,
    SUBMIT,
    FrameReader,
    encode_frame,
    encode_items,
)

__all__ = ["DEFAULT_FILENAME", "SCHEMA_VERSION", "SqliteStore"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_SCAN_BATCH: Final = 20_000  # rows per fetchmany during recovery
_LOCK_WAIT: Final = 10.0  # seconds to wait for a previous writer to let go of the file
_Control = tuple[None, bytes]  # a queued control frame (stats, pragma, refs)


class SqliteStore:
    """A durable :class:`~warren.store.base.Store` in one SQLite file.

    ``path`` is the database file (conventionally ``<data_dir>/warren.db``).
    ``synchronous`` "full" fsyncs the WAL at every commit (survives power loss);
    "normal" writes it without fsync (survives a process crash, kill -9, but an OS
    crash or power cut may lose the last commits). ``max_batch`` caps the mutations
    in one commit; ``max_size`` caps the file size in bytes (writes beyond it fail
    like a full disk). ``loop``: do the store's I/O on this event loop (the broker's;
    construct the store on that loop's thread and submit from it): submissions are
    sent once per loop turn and completions arrive without thread hand-offs. Without
    it, two threads do the I/O (tools, tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "full",
        max_batch: int = 10_000,
        max_size: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_batch = max_batch
        self.synchronous: Synchronous = synchronous
        self.max_size = max_size
        self._conn: sqlite3.Connection | None = open_file(self.path, synchronous, max_size)
        try:
            self._lock_fd = _lock(self.path)
        except BaseException:
            self._conn.close()
            raise
        self._next_id = int(self._meta("next_id", 1))
        self._refs: dict[int, int] | None = None  # message id -> references, from recovery
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: collections.deque[tuple[Sequence[Mutation], Waiter | None] | _Control] = (
            collections.deque()
        )
        self._waiting: collections.deque[tuple[int, Waiter]] = collections.deque()
        self._seq = 0  # the next submission's sequence number (sender thread)
        self._stats_replies: collections.deque[tuple[threading.Event, list[Any]]] = (
            collections.deque()
        )
        self._failure: StorageError | None = None
        self._closing = False
        self._idle = False  # the sender is (about to be) waiting for work
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._last_stats: dict[str, Any] = {}
        self._reader = FrameReader()
        self._ready = threading.Event()  # the writer has the file open (READY)
        self._ready_futures: list[asyncio.Future[None]] = []
        # With a loop (the broker's), the store's I/O runs on it: call the store from
        # that loop's thread. Without one, a sender and a receiver thread do it.
        self._loop = loop
        self._loop_thread = threading.get_ident() if loop is not None else None
        self._flush_scheduled = False
        self._out = bytearray()  # loop mode: bytes the socket did not take yet

    def __repr__(self) -> str:
        return f"<SqliteStore {str(self.path)!r}>"

    @property
    def failure(self) -> StorageError | None:
        return self._failure

    def next_id(self) -> int:
        # Only the event loop thread calls this; the sender reads _next_id to record
        # the high-water mark, and any value it sees covers the ids it sends.
        value = self._next_id
        self._next_id = value + 1
        return value

    def _meta(self, key: str, default: Any) -> Any:
        assert self._conn is not None
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    # --- recovery ---------------------------------------------------------------------

    def recover(self, *, compact: bool = False) -> Iterator[Recovered]:
        if self._conn is None:
            raise StorageError("recover() must run before the first submit()")
        # A million long-lived objects trigger the cyclic collector over and over
        # while nothing here can form a cycle: pausing it halves recovery time.
        collecting = gc.isenabled()
        gc.disable()
        try:
            yield from self._recover(compact)
        except sqlite3.DatabaseError as exc:
            raise classify(exc, self.path, "reading") from exc
        finally:
            if collecting:
                gc.enable()
        self._start()  # the file is the writer's from now on

    def _recover(self, compact: bool) -> Iterator[Recovered]:
        conn = self._conn
        assert conn is not None
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
        assert self._conn is not None
        return load_messages(self._conn, _SCAN_BATCH, decoded=decoded)

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
            if self._proc is None:
                self._start()
            # deque.append is atomic: no lock on the publish path.
            self._queue.append(item)
            self._kick()
            return
        if item[1] is not None:
            fire([item[1]], error)

    def write(self, mutations: Sequence[Mutation]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.submit(mutations, future_done(future))
        return future

    def flush(self) -> None:
        """On the store's loop: send what is queued now (the Journal calls this at the
        end of its turn, saving a loop iteration). Elsewhere the sender thread sends."""
        if self._loop is not None and threading.get_ident() == self._loop_thread:
            self._flush()

    def _kick(self) -> None:
        """Have what is queued sent: at the end of this loop turn (on the store's loop),
        or by the sender thread (which re-checks the queue after raising _idle, so a
        wake-up is only needed when it may be waiting)."""
        if self._loop is not None:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                if threading.get_ident() == self._loop_thread:
                    self._loop.call_soon(self._flush)
                else:
                    self._loop.call_soon_threadsafe(self._flush)
        elif self._idle:
            with self._lock:
                self._wake.notify()

    def _control(self, frame: list[Any]) -> None:
        """Queue a control frame behind everything submitted so far."""
        self._queue.append((None, encode_frame(frame)))
        self._kick()

    def _pragma(self, text: str) -> None:
        """Run ``PRAGMA text`` in the writer (tests: ``query_only = 1`` stands in for
        a file system remounted read-only)."""
        if self._proc is None:
            self._start()
        self._control([PRAGMA, text])

    def stats(self) -> StoreStats:
        """Counts, read from the file: blocks until everything submitted before is
        committed (for tests, tools and the management API, not the publish path)."""
        if self._proc is None and self._conn is not None:
            return self._stats_from(dict(count_rows(self._conn)))
        if self._failure is not None or self._closing:
            return self._stats_from(self._last_stats)
        event = threading.Event()
        slot: list[Any] = []
        self._stats_replies.append((event, slot))
        self._control([STATS])
        if self._loop is not None and threading.get_ident() == self._loop_thread:
            # On the store's own loop, which cannot read the reply while we wait.
            self._exchange(lambda: event.is_set())
        else:
            while not event.wait(1.0):
                if self._failure is not None or self._proc is None or (
                    self._proc.poll() is not None
                ):
                    break
        if slot:
            self._last_stats = slot[0]
        return self._stats_from(self._last_stats)

    async def ready(self) -> None:
        """Wait until the writer process has the file open (or failed to open it:
        then :attr:`failure` says why). The broker writes its ready file after this,
        so "ready" means persistent messages are accepted at once."""
        if self._proc is None:
            self._start()
        if self._ready.is_set() or self._failure is not None:
            return
        if self._loop is None:
            await asyncio.get_running_loop().run_in_executor(None, self._ready.wait)
            return
        future = self._loop.create_future()
        self._ready_futures.append(future)
        await future

    def _stats_from(self, counts: dict[str, Any]) -> StoreStats:
        stats = StoreStats()
        for name, value in counts.items():
            if name == "batch_histogram":
                value = {int(k): v for k, v in value.items()}
            setattr(stats, name, value)
        return stats

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._wake.notify()
        if self._loop is not None and self._sock is not None:
            self._control([CLOSE])
            self._exchange(lambda: False)  # until the writer has committed all and gone
        for thread in self._threads:  # the sender sends CLOSE; the receiver sees the end
            thread.join()
        if self._proc is not None:
            try:
                self._proc.wait(60)
            except subprocess.TimeoutExpired:
                log.error("%s: the store writer did not exit; killing it", self.path)
                self._proc.kill()
                self._proc.wait()
        if self._sock is not None:
            self._sock.close()
        # A submission that raced with close() (from another thread) is refused, not lost.
        left = [w for _, w in self._drain_submissions() if w is not None]
        left += [w for _, w in _drain(self._waiting)]
        if left:
            fire(left, StoreClosedError(f"{self.path}: the store is closed"))
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error as exc:
                log.warning("%s: closing the store: %s", self.path, exc)
            self._conn = None
        os.close(self._lock_fd)

    def _drain_submissions(self) -> list[tuple[Sequence[Mutation], Waiter | None]]:
        return [item for item in _drain(self._queue) if item[0] is not None]

    # --- the writer process -------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._proc is not None:
                return
            if self._conn is not None:
                self._conn.close()  # the writer opens the file (exclusive locking)
                self._conn = None
            ours, theirs = socket.socketpair()
            command = [
                sys.executable, "-m", "warren.store.writer_main", str(self.path),
                "--fd", str(theirs.fileno()), "--synchronous", self.synchronous,
                "--max-batch", str(self.max_batch),
            ]
            if self.max_size is not None:
                command += ["--max-size", str(self.max_size)]
            # The writer imports this very warren, wherever it was imported from.
            env = dict(os.environ)
            root = str(Path(warren.__file__).resolve().parents[1])
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
            try:
                self._proc = subprocess.Popen(
                    command, pass_fds=(theirs.fileno(), self._lock_fd),
                    stdin=subprocess.DEVNULL, env=env,
                )
            finally:
                theirs.close()
            self._sock = ours
            if self._refs is not None:  # what recovery counted; the writer counts otherwise
                refs = self._refs
                self._queue.appendleft((None, encode_frame([
                    REFS,
                    array.array("q", refs.keys()).tobytes(),
                    array.array("q", refs.values()).tobytes(),
                ])))
                self._refs = None
            if self._loop is None:
                self._threads = [
                    threading.Thread(target=self._send_loop, name="warren-store-send",
                                     daemon=True),
                    threading.Thread(target=self._recv_loop, name="warren-store-recv",
                                     daemon=True),
                ]
        if self._loop is not None:
            ours.setblocking(False)
            if threading.get_ident() == self._loop_thread:
                self._loop.add_reader(ours.fileno(), self._on_readable)
            else:
                self._loop.call_soon_threadsafe(
                    self._loop.add_reader, ours.fileno(), self._on_readable
                )
            self._kick()
        for thread in self._threads:
            thread.start()

    def _take_queued(self) -> bytes:
        """Encode everything queued as frames (one SUBMIT frame per run of submissions)
        and note the waiters; submissions made after a failure are refused here."""
        out = bytearray()
        subs: list[Any] = []
        first = self._seq
        failure = self._failure
        waiting = self._waiting
        for mutations, item in _drain(self._queue):
            if mutations is None:  # a control frame: after what was queued before it
                if subs:
                    out += encode_frame([SUBMIT, first, self._next_id, subs])
                    subs, first = [], self._seq
                assert isinstance(item, bytes)
                out += item
                continue
            if failure is not None:
                if item is not None:
                    fire([item], failure)  # type: ignore[list-item]
                continue
            if item is not None:
                waiting.append((self._seq, item))  # type: ignore[arg-type]
            subs.append(encode_items(mutations))
            self._seq += 1
        if subs:
            out += encode_frame([SUBMIT, first, self._next_id, subs])
        return bytes(out)

    def _on_frame(self, frame: list[Any]) -> None:
        kind = frame[0]
        if kind in (COMMITTED, FAILED):
            seq = frame[1]
            waiting = self._waiting
            done = []
            while waiting and waiting[0][0] <= seq:
                done.append(waiting.popleft()[1])
            error = None
            if kind == FAILED:
                error = self._fail(StorageError(frame[2]))
            if done:
                self._complete(done, error)
        elif kind == READY:
            if frame[1] is not None:
                self._fail(StorageError(frame[1]))
            self._ready.set()
            for future in self._ready_futures:
                if not future.done():
                    future.set_result(None)
            self._ready_futures.clear()
        elif kind == STATS_REPLY and self._stats_replies:
            event, slot = self._stats_replies.popleft()
            slot.append(frame[1])
            event.set()

    def _complete(self, waiters: list[Waiter], error: StorageError | None) -> None:
        """Completions: directly when they belong to the loop running this, else
        through their loop (fire)."""
        own = self._loop
        if own is None or threading.get_ident() != self._loop_thread:
            fire(waiters, error)
            return
        others = []
        for loop, done in waiters:
            if loop is own:
                done(error)
            else:
                others.append((loop, done))
        if others:
            fire(others, error)

    # Loop mode: the store's I/O runs on the broker's loop, no thread, no GIL hand-off.

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._sock is None:
            return
        data = self._take_queued()
        if not data:
            return
        if self._out:
            self._out += data
            return
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._writer_gone(f"sending to it failed ({exc.strerror or exc})")
            return
        if sent < len(data):
            self._out += data[sent:]
            assert self._loop is not None
            self._loop.add_writer(self._sock.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        assert self._sock is not None and self._loop is not None
        try:
            sent = self._sock.send(self._out)
        except BlockingIOError:
            return
        except OSError as exc:
            self._loop.remove_writer(self._sock.fileno())
            self._writer_gone(f"sending to it failed ({exc.strerror or exc})")
            return
        del self._out[:sent]
        if not self._out:
            self._loop.remove_writer(self._sock.fileno())

    def _on_readable(self) -> None:
        assert self._sock is not None and self._loop is not None
        try:
            data = self._sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._loop.remove_reader(self._sock.fileno())
            self._on_end()
            return
        for frame in self._reader.feed(data):
            self._on_frame(frame)

    def _exchange(self, finished: Callable[[], bool]) -> None:
        """Loop mode, on the loop's thread: send what is queued and read replies,
        blocking, until ``finished()`` or the writer's end (stats, close)."""
        sock = self._sock
        assert sock is not None and self._loop is not None
        self._loop.remove_reader(sock.fileno())
        self._loop.remove_writer(sock.fileno())
        sock.setblocking(True)
        try:
            try:
                sock.sendall(bytes(self._out) + self._take_queued())
                self._out.clear()
            except OSError as exc:
                self._writer_gone(f"sending to it failed ({exc.strerror or exc})")
                return
            while not finished():
                try:
                    data = sock.recv(1 << 16)
                except OSError:
                    data = b""
                if not data:
                    self._on_end()
                    return
                for frame in self._reader.feed(data):
                    self._on_frame(frame)
        finally:
            if not self._closing:
                sock.setblocking(False)
                self._loop.add_reader(sock.fileno(), self._on_readable)

    # Thread mode (no loop given): a sender and a receiver thread.

    def _send_loop(self) -> None:
        queue = self._queue
        sock = self._sock
        assert sock is not None
        while True:
            with self._lock:
                self._idle = True  # before looking at the queue: see _kick()
                while not queue and not self._closing:
                    self._wake.wait()
                self._idle = False
                closing = self._closing
            out = self._take_queued()
            if closing:
                out += encode_frame([CLOSE])
            try:
                sock.sendall(out)
            except OSError as exc:
                self._writer_gone(f"sending to it failed ({exc.strerror or exc})")
                return
            if closing:
                return

    def _recv_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            try:
                data = sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            for frame in self._reader.feed(data):
                self._on_frame(frame)
        self._on_end()

    def _on_end(self) -> None:
        """The writer closed its end: after CLOSE, or because it died."""
        if not self._closing or self._waiting or self._queue:
            code = self._proc.wait() if self._proc is not None else None
            self._writer_gone(f"it exited with code {code}")
        for event, _ in _drain(self._stats_replies):
            event.set()
        self._ready.set()
        for future in self._ready_futures:
            if not future.done():
                future.set_result(None)
        self._ready_futures.clear()

    def _fail(self, error: StorageError) -> StorageError:
        """Enter the refusing state (once); returns the error in force."""
        with self._lock:
            if self._failure is None:
                self._failure = error
                log.error("%s: storage failed, refusing persistent writes: %s", self.path, error)
            return self._failure

    def _writer_gone(self, how: str) -> None:
        error = self._fail(StorageError(
            f"{self.path}: the store's writer process stopped ({how}); persistent"
            " messages are refused: see the log above for its error, then restart the broker"
        ))
        left = [w for _, w in _drain(self._waiting)]
        left += [w for _, w in self._drain_submissions() if w is not None]
        if left:
            self._complete(left, error)
        with self._lock:
            self._wake.notify()


def _lock(path: Path) -> int:
    """Hold an exclusive flock on ``path`` (one broker per file); returns the fd.

    A previous broker killed with -9 may leave its writer committing its last frames
    for a moment: wait for it, up to ``_LOCK_WAIT`` seconds."""
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    deadline = time.monotonic() + _LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise StorageError(
                    f"{path}: another process holds the data file (a running Warren broker"
                    " or its store writer): stop the other broker using this data directory,"
                    " or give this one its own"
                ) from None
            time.sleep(0.05)


def _drain(queue: collections.deque[_T]) -> list[_T]:
    """Take everything from ``queue`` while other threads may append (popleft is atomic)."""
    items = []
    with contextlib.suppress(IndexError):
        while True:
            items.append(queue.popleft())
    return items
