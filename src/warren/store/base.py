"""The one storage interface (DESIGN.md, "Storage"; docs/storage.md).

The core keeps all live state in memory and tells the store what changed: at each
``# STORE:`` point it builds :mod:`~warren.store.records` mutations and submits
them. A store applies submissions in submission order, each atomically, and reports
completion only once they are durable; the broker acknowledges a publisher from that
completion, never before. At start-up :meth:`Store.recover` streams everything back.

Completions are plain callbacks, ``done(None)`` on success or ``done(error)``. A
callback submitted from a running event loop is called on that loop (through
``call_soon_threadsafe``, one wake-up per loop per commit); without a running loop
it is called on the store's own thread. :meth:`Store.write` wraps that in an
``asyncio.Future`` for coroutines.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from warren.store.errors import StorageError
from warren.store.records import RUNTIME_KINDS, Mutation, Recovered, RuntimeRecord

__all__ = ["Done", "Store", "StoreStats", "write_sync"]

Done = Callable[[StorageError | None], None]
"""A completion: called once with None (durable) or the error that refused the write."""


@dataclass(slots=True)
class StoreStats:
    """Counts a store keeps about itself (for tests, metrics and benchmarks)."""

    messages: int = 0  # stored message bodies (one per message, however many references)
    entries: int = 0  # queue entries
    deliveries: int = 0  # session deliveries
    retained: int = 0
    records: int = 0  # runtime objects
    commits: int = 0
    mutations: int = 0  # committed mutations
    submissions: int = 0  # committed submissions
    # Commits by number of submissions they contained, bucketed by powers of two:
    # {1: commits of 1, 2: of 2-3, 4: of 4-7, ...}.
    batch_histogram: dict[int, int] = field(default_factory=dict)

    def count_batch(self, submissions: int, mutations: int) -> None:
        self.commits += 1
        self.submissions += submissions
        self.mutations += mutations
        bucket = 1 << (submissions.bit_length() - 1) if submissions else 0
        self.batch_histogram[bucket] = self.batch_histogram.get(bucket, 0) + 1


class Store(Protocol):
    """Durable state behind one interface: memory (tests) or SQLite (the default)."""

    @property
    def failure(self) -> StorageError | None:
        """The error that put the store in its refusing state, or None while healthy.

        The core checks it before accepting a persistent message, so a publisher is
        refused up front rather than after routing.
        """
        ...

    def next_id(self) -> int:
        """A new id, unique in this store for ever (messages, entries, queues, ...).

        Ids increase: entries submitted in id order come back in id order.
        """
        ...

    def recover(self, *, compact: bool = False) -> Iterator[Recovered]:
        """Stream everything stored, once, before the first :meth:`submit`.

        Order: runtime objects (:data:`~warren.store.records.RUNTIME_KINDS` order,
        so whatever a record refers to comes first), then queue entries by queue and
        id, then session deliveries by session and id, then retained messages.
        Entries, deliveries and retained records carry their message; one message
        referenced many times is one shared :class:`StoredMessage` object.

        With ``compact``, queue entries may come as
        :class:`~warren.store.records.StoredEntryRows` (runs of one queue, in the
        same order) for the caller to decode one at a time, after the stream ends.
        """
        ...

    def submit(
        self,
        mutations: Sequence[Mutation],
        done: Done | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Queue ``mutations`` to be committed together, after everything submitted
        before; ``done`` is called once they are durable, or with the error that
        refused them. Never blocks and never raises for a storage failure.

        ``done`` runs on ``loop``, by default the running loop (if any). Callers on a
        hot path pass it: looking the running loop up costs a getpid() system call."""
        ...

    def flush(self) -> None:
        """Hand what was submitted to storage now, not at the end of this loop turn
        (a hint from a caller that batches by itself, such as the Journal)."""
        ...

    def write(self, mutations: Sequence[Mutation]) -> asyncio.Future[None]:
        """:meth:`submit` for coroutines: a future of the running loop, set on commit."""
        ...

    def stats(self) -> StoreStats:
        """Current counts (a copy)."""
        ...

    def close(self) -> None:
        """Commit what was submitted, then release the file. Idempotent."""
        ...


# --- shared by the implementations -----------------------------------------------------

Waiter = tuple[asyncio.AbstractEventLoop | None, Done]


def waiter(done: Done, loop: asyncio.AbstractEventLoop | None = None) -> Waiter:
    """Pair ``done`` with ``loop``, by default the loop running now (None outside one)."""
    if loop is not None:
        return (loop, done)
    try:
        return (asyncio.get_running_loop(), done)
    except RuntimeError:
        return (None, done)


def fire(waiters: Sequence[Waiter], error: StorageError | None) -> None:
    """Call every completion with ``error``: on its loop, one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Done]] = {}
    for loop, done in waiters:
        if loop is None:
            done(error)
        else:
            by_loop.setdefault(loop, []).append(done)
    for loop, dones in by_loop.items():
        # A closed loop raises RuntimeError: nobody is waiting there any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_call_all, dones, error)


def _call_all(dones: list[Done], error: StorageError | None) -> None:
    for done in dones:
        done(error)


def future_done(future: asyncio.Future[None]) -> Done:
    """A completion that settles ``future`` (call it on the future's loop)."""

    def done(error: StorageError | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    return done


def write_sync(store: Store, mutations: Sequence[Mutation], timeout: float | None = None) -> None:
    """Submit and wait, for code without an event loop (scripts, offline tools).

    Raises the :class:`StorageError` that refused the write, or ``TimeoutError``.
    """
    committed = threading.Event()
    outcome: list[StorageError | None] = []

    def done(error: StorageError | None) -> None:
        outcome.append(error)
        committed.set()

    store.submit(mutations, done)
    if not committed.wait(timeout):
        raise TimeoutError("the store did not commit in time")
    if outcome[0] is not None:
        raise outcome[0]


# --- runtime records as JSON -----------------------------------------------------------

RUNTIME_BY_KIND: dict[str, type[RuntimeRecord]] = {cls.KIND: cls for cls in RUNTIME_KINDS}


def encode_record(record: RuntimeRecord) -> str:
    """A runtime record's JSON body (bytes fields as ``{"$b64": ...}``)."""
    body: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, bytes):
            value = {"$b64": base64.b64encode(value).decode("ascii")}
        body[f.name] = value
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def decode_record(kind: str, text: str) -> RuntimeRecord:
    """The record of ``kind`` from its JSON body; unknown fields are ignored, missing
    ones take their defaults (records only ever gain fields with defaults)."""
    cls = RUNTIME_BY_KIND.get(kind)
    if cls is None:
        raise StorageError(f"unknown record kind {kind!r} in the data file")
    body = json.loads(text)
    known = {f.name for f in fields(cls)}
    args: dict[str, Any] = {}
    for name, value in body.items():
        if name not in known:
            continue
        if isinstance(value, dict) and "$b64" in value:
            value = base64.b64decode(value["$b64"])
        args[name] = value
    return cls(**args)
