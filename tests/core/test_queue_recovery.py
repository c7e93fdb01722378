"""Queues restored at start-up: lazily from store rows (``Queue.restore_rows``) they
behave exactly like queues restored eagerly (``Queue.restore_many``) — order, fields,
priorities, TTL expiry, length limits, purge, browse, requeue, dead-lettering and
byte accounting — and every removal is journalled with the right ids.

Each test runs three ways: ``eager`` (one QueueEntry per stored entry up front),
``lazy`` (StoredEntryRows of StoredEntry records, split into two runs) and
``sqlite`` (the entries written to a SqliteStore, then recovered with
``compact=True``, so the store's own rows and codec are used).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from warren.core.message import Message
from warren.core.persistence import MessageCache
from warren.core.queues import Consumer, Overflow, Queue, QueueEntry, QueueLimits
from warren.core.stats import BrokerStats
from warren.core.vpn import Vpn
from warren.core.watermark import MemoryWatermark
from warren.store import (
    DeleteRetained,
    Dequeue,
    Enqueue,
    Mutation,
    Redeliver,
    RetainedRecord,
    SetRetained,
    SqliteStore,
    StoredEntry,
    StoredEntryRows,
    StoredMessage,
    write_sync,
)

QUEUE_ID = 1
MODES = ["eager", "lazy", "sqlite"]


@dataclass
class FakeStore:
    """What a queue asks of ``journal.store``: ids."""

    next: int = 10_000

    def next_id(self) -> int:
        self.next += 1
        return self.next


@dataclass
class FakeJournal:
    """Records what the queue journals (no loop, no store behind it)."""

    store: FakeStore = field(default_factory=FakeStore)
    pending: list[Mutation] = field(default_factory=list)

    def append(self, mutation: Mutation) -> None:
        self.pending.append(mutation)

    def dequeued(self) -> list[tuple[int, int]]:
        return [(m.entry_id, m.message_id) for m in self.pending if isinstance(m, Dequeue)]


@dataclass
class Sink:
    got: list[QueueEntry] = field(default_factory=list)

    def ready(self, consumer: Consumer) -> bool:
        return True

    def send(self, consumer: Consumer, entry: QueueEntry) -> None:
        self.got.append(entry)

    def cancelled(self, consumer: Consumer) -> None:
        pass


def sample(count: int = 12, expires: dict[int, float] | None = None) -> list[StoredEntry]:
    """Entries 0..count-1 of queue QUEUE_ID (entry id 200+i, message id 100+i):
    priorities cycle 0..3, odd ones routed by exchange, entry 5 redelivered."""
    expires = expires or {}
    out = []
    for i in range(count):
        message = StoredMessage(
            100 + i,
            f"t/{i}",
            b"payload-%02d" % i + b"x" * i,
            qos=1,
            content_type="text/plain" if i % 3 == 0 else None,
            user_properties=(("k", str(i)),) if i % 4 == 0 else (),
            message_id=f"m{i}" if i % 5 == 0 else None,
        )
        out.append(StoredEntry(
            QUEUE_ID, 200 + i, message,
            "amq.direct" if i % 2 else None, "rk" if i % 2 else None,
            expires.get(i), i % 4, 1 if i == 5 else 0,
        ))
    return out


def payload(i: int) -> bytes:
    return b"payload-%02d" % i + b"x" * i


@dataclass
class Restored:
    queue: Queue
    journal: FakeJournal
    memory: MemoryWatermark
    dead: list[tuple[bytes, str]]
    wakeups: list[float]


@pytest.fixture(params=MODES)
def restore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    stores: list[SqliteStore] = []

    def restore_(entries: list[StoredEntry], limits: QueueLimits | None = None) -> Restored:
        vpn = Vpn("test", BrokerStats())
        journal = FakeJournal()
        vpn.queues.journal = journal  # type: ignore[assignment]
        memory = vpn.queues.memory = MemoryWatermark(1 << 40, 1 << 39)
        dead: list[tuple[bytes, str]] = []
        wakeups: list[float] = []
        vpn.queues.timer = lambda deadline, callback: wakeups.append(deadline)
        vpn.queues.dead_letter = lambda queue, entry, reason: dead.append(
            (entry.message.payload, reason)
        )
        queue = vpn.queues.declare("q", durable=True, limits=limits, store_id=QUEUE_ID)
        if request.param == "eager":
            queue.restore_many(entries, MessageCache())
        elif request.param == "lazy":
            half = len(entries) // 2
            queue.restore_rows([
                StoredEntryRows(QUEUE_ID, part, sum(len(e.message.payload) for e in part))
                for part in (entries[:half], entries[half:])
            ])
        else:
            store = SqliteStore(tmp_path / f"{len(stores)}.db", synchronous="normal")
            stores.append(store)
            list(store.recover())
            write_sync(store, [Enqueue(e) for e in entries])
            store.close()
            store = SqliteStore(tmp_path / f"{len(stores) - 1}.db", synchronous="normal")
            stores.append(store)
            runs = [r for r in store.recover(compact=True) if isinstance(r, StoredEntryRows)]
            assert all(run.queue_id == QUEUE_ID for run in runs)
            queue.restore_rows(runs)
        return Restored(queue, journal, memory, dead, wakeups)

    yield restore_
    for store in stores:
        store.close()


def fields(entry: QueueEntry) -> tuple[object, ...]:
    m = entry.message
    assert m.stored is not None
    return (m.topic, m.payload, m.qos, m.content_type, m.user_properties, m.message_id,
            entry.source, entry.key, entry.redelivered, entry.size, entry.store_id,
            m.stored.id, entry.priority)


def expected_fields(entry: StoredEntry, priority: int = 0) -> tuple[object, ...]:
    m = entry.message
    return (m.topic, m.payload, m.qos, m.content_type, m.user_properties, m.message_id,
            entry.source, entry.key, entry.redeliveries > 0, len(m.payload), entry.id,
            m.id, priority)


def take_all(queue: Queue) -> list[QueueEntry]:
    out = []
    while (entry := queue.get()) is not None:
        out.append(entry)
    return out


def test_entries_come_back_in_order_with_their_fields(restore) -> None:  # type: ignore[no-untyped-def]
    entries = sample()
    r = restore(entries)
    total = sum(len(e.message.payload) for e in entries)
    assert (r.queue.ready_count, r.queue.ready_bytes, r.memory.used) == (12, total, total)
    got = take_all(r.queue)
    assert [fields(e) for e in got] == [expected_fields(e) for e in entries]
    assert (r.queue.ready_count, r.queue.ready_bytes, r.memory.used) == (0, 0, 0)
    assert r.journal.pending == []  # get() journals nothing until the ack
    r.queue.took(got[0], None)
    r.queue.ack(got[0], None)
    assert r.journal.dequeued() == [(200, 100)]


def test_consumers_get_recovered_entries_then_new_ones(restore) -> None:  # type: ignore[no-untyped-def]
    r = restore(sample(4))
    r.queue.publish(Message("t/new", b"new", qos=1))
    sink = Sink()
    r.queue.add_consumer(Consumer("c", sink))
    assert [e.message.payload for e in sink.got] == [payload(i) for i in range(4)] + [b"new"]
    assert r.queue.unacked_count == 5


def test_priorities_and_clamping(restore) -> None:  # type: ignore[no-untyped-def]
    entries = sample()
    r = restore(entries, QueueLimits(max_priority=2))
    got = take_all(r.queue)
    # priority 3 is clamped to 2; within a level, id order
    order = [i for p in (2, 1, 0) for i in range(12) if min(i % 4, 2) == p]
    assert [fields(e) for e in got] == [
        expected_fields(entries[i], min(i % 4, 2)) for i in order
    ]


def test_ttl_expires_heads_only_as_they_reach_the_head(restore) -> None:  # type: ignore[no-untyped-def]
    past, future = time.time() - 5, time.time() + 3600
    # 0 and 1 expired at the head; 3 expired behind 2 (no TTL): it waits for the head.
    r = restore(sample(6, {0: past, 1: past, 3: past, 4: future}))
    deadline = r.queue.next_deadline()
    assert deadline is not None and deadline <= time.monotonic()
    assert r.wakeups == [deadline]  # the queue's timer is armed by the restore
    r.queue.expire()
    assert r.dead == [] and r.journal.dequeued() == [(200, 100), (201, 101)]
    assert r.queue.ready_count == 4
    assert r.queue.next_deadline() is None  # head (2) has no TTL
    got = r.queue.get()  # 2 goes; 3 is expired at the head: dropped on the way to 4
    assert got is not None and got.message.payload == payload(2)
    nxt = r.queue.get()
    assert nxt is not None and nxt.message.payload == payload(4)
    assert nxt.expires_at is not None
    assert abs(nxt.expires_at - (time.monotonic() + 3600)) < 5
    assert r.journal.dequeued() == [(200, 100), (201, 101), (203, 103)]
    assert r.queue.ready_count == 1 and r.queue.ready_bytes == len(payload(5))


def test_a_future_ttl_arms_the_timer_at_its_deadline(restore) -> None:  # type: ignore[no-untyped-def]
    r = restore(sample(3, {0: time.time() + 60}))
    assert len(r.wakeups) == 1
    assert abs(r.wakeups[0] - (time.monotonic() + 60)) < 5
    r.queue.expire()  # not due yet
    assert r.queue.ready_count == 3 and r.journal.pending == []


def test_no_ttl_arms_no_timer(restore) -> None:  # type: ignore[no-untyped-def]
    r = restore(sample(3))
    assert r.wakeups == [] and r.queue.next_deadline() is None


def test_expired_entries_are_dead_lettered_with_their_message(restore) -> None:  # type: ignore[no-untyped-def]
    past = time.time() - 5
    r = restore(sample(3, {0: past, 1: past}), QueueLimits(dead_letter_exchange="dlx"))
    r.queue.expire()
    assert r.dead == [(payload(0), "expired"), (payload(1), "expired")]
    assert r.queue.ready_count == 1


def test_max_length_drop_head_drops_the_oldest_recovered(restore) -> None:  # type: ignore[no-untyped-def]
    r = restore(sample(4), QueueLimits(max_length=4, dead_letter_exchange="dlx"))
    assert r.queue.publish(Message("t/new", b"new", qos=1))
    assert r.dead == [(payload(0), "maxlen")]
    assert r.journal.dequeued() == [(200, 100)]
    assert [e.message.payload for e in r.queue.iter_ready()] == [
        payload(1), payload(2), payload(3), b"new"
    ]
    assert r.queue.ready_bytes == sum(len(payload(i)) for i in (1, 2, 3)) + 3


def test_max_length_bytes_and_reject_publish(restore) -> None:  # type: ignore[no-untyped-def]
    entries = sample(4)
    total = sum(len(e.message.payload) for e in entries)
    r = restore(entries, QueueLimits(max_length_bytes=total + 2,
                                     overflow=Overflow.REJECT_PUBLISH))
    assert not r.queue.publish(Message("t/new", b"new", qos=1))
    assert r.queue.publish(Message("t/new", b"ne", qos=1))
    assert r.queue.ready_count == 5 and r.queue.ready_bytes == total + 2
    assert r.journal.dequeued() == []


def test_purge_journals_every_entry_built_or_not(restore) -> None:  # type: ignore[no-untyped-def]
    r = restore(sample())
    first = r.queue.get()  # taken: not ready, not purged
    assert first is not None
    browsed = list(itertools.islice(r.queue.iter_ready(), 3))  # built by browsing
    assert [e.message.payload for e in browsed] == [payload(1), payload(2), payload(3)]
    assert r.queue.purge() == 11
    assert sorted(r.journal.dequeued()) == [(200 + i, 100 + i) for i in range(1, 12)]
    assert (r.queue.ready_count, r.queue.ready_bytes, r.memory.used) == (0, 0, 0)
    assert r.queue.get() is None and list(r.queue.iter_ready()) == []


def test_deleting_the_queue_journals_no_dequeues(restore) -> None:  # type: ignore[no-untyped-def]
    r = restore(sample())
    r.queue.registry.delete(r.queue)
    assert r.journal.dequeued() == []  # DeleteQueue covers them
    assert r.memory.used == 0


def test_browse_builds_in_place_and_keeps_identity(restore) -> None:  # type: ignore[no-untyped-def]
    entries = sample()
    r = restore(entries)
    head = r.queue.get()
    assert head is not None
    browsed = list(r.queue.iter_ready())
    assert [fields(e) for e in browsed] == [expected_fields(e) for e in entries[1:]]
    assert list(r.queue.iter_ready()) == browsed  # the same objects, not rebuilt
    assert r.queue.remove_ready(browsed[2])  # a browser took entry 3
    assert not r.queue.remove_ready(browsed[2])
    assert not r.queue.remove_ready(head)  # not ready: it was taken
    assert r.queue.ready_count == 10
    assert r.queue.ready_bytes == sum(len(payload(i)) for i in range(1, 12) if i != 3)
    got = take_all(r.queue)
    assert got == [e for e in browsed if e is not browsed[2]]


def test_browse_part_of_a_queue_then_consume(restore) -> None:  # type: ignore[no-untyped-def]
    r = restore(sample())
    peek = []
    for entry in r.queue.iter_ready():  # what the management API does: stop early
        peek.append(entry)
        if len(peek) == 3:
            break
    got = take_all(r.queue)
    assert got[:3] == peek
    assert [e.message.payload for e in got] == [payload(i) for i in range(12)]


def test_requeue_goes_back_before_the_rest_in_publish_order(restore) -> None:  # type: ignore[no-untyped-def]
    r = restore(sample(6))
    taken = [r.queue.get() for _ in range(3)]
    r.queue.publish(Message("t/new", b"new", qos=1))
    for index in (2, 0, 1):
        entry = taken[index]
        assert entry is not None
        r.queue.took(entry, None)
        r.queue.reject(entry, None, requeue=True)
    ready = list(r.queue.iter_ready())
    assert [e.message.payload for e in ready] == [payload(i) for i in range(6)] + [b"new"]
    assert [e.redelivered for e in ready[:6]] == [True, True, True, False, False, True]
    assert [(m.entry_id, m.redeliveries) for m in r.journal.pending
            if isinstance(m, Redeliver)] == [(202, 1), (200, 1), (201, 1)]


def test_requeue_in_a_priority_level_behind_nothing_else(restore) -> None:  # type: ignore[no-untyped-def]
    r = restore(sample(8), QueueLimits(max_priority=3))
    top = r.queue.get()  # priority 3: entry 3 first
    assert top is not None and top.message.payload == payload(3)
    r.queue.took(top, None)
    r.queue.reject(top, None, requeue=True)
    assert [e.message.payload for e in take_all(r.queue)] == [
        payload(i) for i in (3, 7, 2, 6, 1, 5, 0, 4)
    ]


def test_reject_without_requeue_dead_letters(restore) -> None:  # type: ignore[no-untyped-def]
    r = restore(sample(2), QueueLimits(dead_letter_exchange="dlx"))
    entry = r.queue.get()
    assert entry is not None
    r.queue.took(entry, None)
    r.queue.reject(entry, None, requeue=False)
    assert r.dead == [(payload(0), "rejected")]
    assert r.journal.dequeued() == [(200, 100)]


def test_sqlite_rows_go_with_their_entries(tmp_path: Path) -> None:
    """A message row is dropped once its only entry is built or purged; one also
    referenced elsewhere (another queue, a retained topic) stays until the end."""
    store = SqliteStore(tmp_path / "w.db", synchronous="normal")
    list(store.recover())
    entries = sample(4)
    shared = entries[0].message
    write_sync(store, [
        *(Enqueue(e) for e in entries),
        Enqueue(StoredEntry(2, 300, shared)),  # message 100 in queue 2 too
        SetRetained(RetainedRecord("default", "r", entries[1].message)),  # and 101
    ])
    store.close()
    store = SqliteStore(tmp_path / "w.db", synchronous="normal")
    try:
        items = list(store.recover(compact=True))
        runs = [r for r in items if isinstance(r, StoredEntryRows)]
        assert [(r.queue_id, len(r.rows)) for r in runs] == [(1, 4), (2, 1)]
        assert runs[0].size == sum(len(e.message.payload) for e in entries)
        assert [i for i in items if isinstance(i, RetainedRecord)] == [
            RetainedRecord("default", "r", entries[1].message)
        ]
        codec = runs[0].codec
        rows = codec._messages  # type: ignore[attr-defined]
        assert sorted(rows) == [100, 101, 102, 103]  # 101 is retained too: shared, kept
        assert codec.entry(runs[0].rows[2]) == entries[2]
        assert codec.drop(runs[0].rows[3]) == (203, 103)
        assert sorted(rows) == [100, 101]
        assert codec.entry(runs[0].rows[0]) == entries[0]
        assert codec.entry(runs[1].rows[0]) == StoredEntry(2, 300, shared)
        assert codec.entry(runs[0].rows[1]) == entries[1]
        assert sorted(rows) == [100, 101]
        # The writer's counts: one more removal leaves 100 stored (queue 2 has it),
        # and dropping queue 2's entry and the retained topic then deletes both bodies.
        write_sync(store, [Dequeue(1, e.id, e.message.id) for e in entries])
        assert store.stats().messages == 2
        write_sync(store, [Dequeue(2, 300, 100), DeleteRetained("default", "r")])
        assert store.stats().messages == 0
    finally:
        store.close()
