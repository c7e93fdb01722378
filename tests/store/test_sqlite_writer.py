"""The SQLite store's writer: group commit, ordering, recovery at size."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warren.store import (
    DeleteSessionDelivery,
    Dequeue,
    Enqueue,
    MemoryStore,
    PutQueue,
    PutSessionDelivery,
    QueueRecord,
    Redeliver,
    SessionDelivery,
    SqliteStore,
    StorageError,
    Store,
    StoredEntry,
    StoredMessage,
    StoreStats,
    UpdateSessionDelivery,
    write_sync,
)
from warren.store.records import Mutation


def test_group_commit_completes_every_submitter_in_order(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "warren.db", synchronous="full", max_batch=64)
    list(store.recover())
    publishers, each = 200, 10
    completed: list[tuple[int, int]] = []  # (publisher, n) in completion order
    submitted: list[tuple[int, int]] = []

    async def publisher(p: int) -> None:
        for n in range(each):
            message = StoredMessage(store.next_id(), f"t/{p}", b"x", qos=1)
            entry = StoredEntry(p % 4, store.next_id(), message)
            submitted.append((p, n))
            future = store.write([Enqueue(entry)])
            future.add_done_callback(lambda _f, key=(p, n): completed.append(key))
            await future

    async def main() -> None:
        await asyncio.gather(*(publisher(p) for p in range(publishers)))

    asyncio.run(main())
    stats = store.stats()
    store.close()
    assert sorted(completed) == sorted(submitted)
    # Submission order is commit order, and completions fire in it.
    assert completed == submitted
    assert stats.submissions == publishers * each
    assert stats.commits < stats.submissions  # submissions shared commits
    assert max(stats.batch_histogram) <= 64  # max_batch holds

    store = SqliteStore(tmp_path / "warren.db")
    entries = [e for e in store.recover() if isinstance(e, StoredEntry)]
    store.close()
    assert len(entries) == publishers * each
    for queue in range(4):  # per queue: the order the publishers were acknowledged in
        ids = [e.id for e in entries if e.queue_id == queue]
        assert ids == sorted(ids)


def test_recovery_of_20k_entries(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "warren.db", synchronous="normal")
    list(store.recover())
    write_sync(store, [PutQueue(QueueRecord(q, "default", f"q{q}")) for q in (1, 2)])
    batch: list[Mutation] = []
    for i in range(20_000):
        message = StoredMessage(store.next_id(), f"t/{i}", i.to_bytes(4, "big"), qos=1)
        batch.append(Enqueue(StoredEntry(1 + i % 2, store.next_id(), message)))
    write_sync(store, batch, timeout=30)
    store.close()

    store = SqliteStore(tmp_path / "warren.db")
    items = list(store.recover())
    store.close()
    entries = [e for e in items if isinstance(e, StoredEntry)]
    assert len(entries) == 20_000
    assert [e.queue_id for e in entries] == [1] * 10_000 + [2] * 10_000
    payloads = [int.from_bytes(e.message.payload, "big") for e in entries]
    assert payloads == list(range(0, 20_000, 2)) + list(range(1, 20_000, 2))


# --- the writer process ----------------------------------------------------------------


def message(store: SqliteStore, n: int) -> StoredMessage:
    return StoredMessage(store.next_id(), f"t/{n}", n.to_bytes(4, "big"), qos=1)


def test_on_the_broker_loop_completions_and_stats_need_no_thread(tmp_path: Path) -> None:
    """Loop mode (as in the broker): writes complete on the loop, stats() and close()
    called from the loop itself do not deadlock, and everything is kept."""

    async def main() -> tuple[int, StoreStats]:
        loop = asyncio.get_running_loop()
        store = SqliteStore(tmp_path / "warren.db", loop=loop)
        list(store.recover())
        seen: list[bool] = []

        async def one(n: int) -> None:
            entry = StoredEntry(1, store.next_id(), message(store, n))
            await store.write([Enqueue(entry)])
            seen.append(threading.get_ident() == threading.main_thread().ident)

        await asyncio.gather(*(one(n) for n in range(500)))
        stats = store.stats()  # blocking on the loop's own thread
        store.close()
        return len(seen), stats

    count, stats = asyncio.run(main())
    assert count == 500
    assert (stats.entries, stats.messages, stats.submissions) == (500, 500, 500)
    assert stats.commits < 500  # group commit
    store = SqliteStore(tmp_path / "warren.db")
    assert len([e for e in store.recover() if isinstance(e, StoredEntry)]) == 500
    store.close()


@pytest.mark.parametrize("mode", ["threads", "loop"])
def test_a_dead_writer_refuses_everything_after(tmp_path: Path, mode: str) -> None:
    async def main() -> tuple[int, list[BaseException | None]]:
        loop = asyncio.get_running_loop() if mode == "loop" else None
        store = SqliteStore(tmp_path / "warren.db", loop=loop)
        list(store.recover())
        await store.write([Enqueue(StoredEntry(1, store.next_id(), message(store, 0)))])
        assert store._proc is not None
        store._proc.kill()  # what the OOM killer would do
        store._proc.wait()
        results = await asyncio.gather(
            *(store.write([Enqueue(StoredEntry(1, store.next_id(), message(store, n)))])
              for n in range(1, 4)),
            return_exceptions=True,
        )
        failure = store.failure
        store.close()
        assert failure is not None and "writer process stopped" in str(failure)
        return 1, results

    kept, results = asyncio.run(main())
    assert all(isinstance(r, StorageError) for r in results), results
    store = SqliteStore(tmp_path / "warren.db")
    entries = [e for e in store.recover() if isinstance(e, StoredEntry)]
    store.close()
    assert len(entries) == kept  # the acknowledged one, and nothing refused


def test_a_message_published_and_acked_in_one_commit_never_reaches_the_file(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "warren.db")
    list(store.recover())
    kept = StoredEntry(1, store.next_id(), message(store, 1))
    gone = StoredEntry(1, store.next_id(), message(store, 2))
    write_sync(store, [Enqueue(kept), Enqueue(gone), Dequeue(1, gone.id, gone.message.id)])
    stats = store.stats()
    store.close()
    assert (stats.entries, stats.messages) == (1, 1)


# Random histories applied to the SQLite store (grouped into commits at random) and to
# the memory store (the reference semantics) must recover the same state: this is
# what checks the writer's coalescing (cancelled pairs, updates of buffered rows,
# bodies shared between entries and deliveries, re-puts, double removals).

_OPS = st.lists(
    st.tuples(st.sampled_from(["enqueue", "move", "dequeue", "redeliver", "deliver",
                               "update", "undeliver", "reput", "commit"]),
              st.integers(0, 1_000)),
    max_size=120,
)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_random_histories_recover_as_the_reference_store_does(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int]]
) -> None:
    path = tmp_path_factory.mktemp("history") / "warren.db"
    sqlite = SqliteStore(path)
    list(sqlite.recover())
    memory = MemoryStore()
    list(memory.recover())
    entries: list[StoredEntry] = []
    deliveries: list[SessionDelivery] = []
    pending: list[Mutation] = []
    ids = iter(range(1, 10**9))
    for op, n in ops:
        if op == "enqueue" or (not entries and op in ("move", "dequeue", "redeliver")):
            body = StoredMessage(next(ids), f"t/{n}", bytes([n % 256]), qos=1)
            entries.append(StoredEntry(1 + n % 3, next(ids), body))
            pending.append(Enqueue(entries[-1]))
        elif op == "move":  # dead-lettering: out of one queue, into another, same body
            old = entries.pop(n % len(entries))
            entries.append(StoredEntry(9, next(ids), old.message, redeliveries=1))
            pending += [Dequeue(old.queue_id, old.id, old.message.id), Enqueue(entries[-1])]
        elif op == "dequeue":
            old = entries.pop(n % len(entries))
            pending.append(Dequeue(old.queue_id, old.id, old.message.id))
            if n % 5 == 0:  # removed twice: the second is a no-op
                pending.append(Dequeue(old.queue_id, old.id, old.message.id))
        elif op == "redeliver":
            i = n % len(entries)
            entries[i] = entries[i]._replace(redeliveries=entries[i].redeliveries + 1)
            pending.append(Redeliver(entries[i].queue_id, entries[i].id,
                                     entries[i].redeliveries))
        elif op == "deliver":  # an MQTT session owed a message a queue also holds
            body = entries[n % len(entries)].message if entries else StoredMessage(
                next(ids), "s", b"s", qos=1)
            deliveries.append(SessionDelivery(7, next(ids), body, 1, False, (n,)))
            pending.append(PutSessionDelivery(deliveries[-1]))
        elif op == "update" and deliveries:
            i = n % len(deliveries)
            deliveries[i] = deliveries[i]._replace(packet_id=n % 65535 + 1, state=1)
            d = deliveries[i]
            pending.append(UpdateSessionDelivery(d.session_id, d.id, d.packet_id, d.state))
        elif op == "undeliver" and deliveries:
            d = deliveries.pop(n % len(deliveries))
            pending.append(DeleteSessionDelivery(d.session_id, d.id, d.message.id))
        elif op == "reput" and entries:  # a put of an id that may be stored already
            i = n % len(entries)
            entries[i] = entries[i]._replace(redeliveries=entries[i].redeliveries + 10)
            pending.append(Enqueue(entries[i]))
        elif op == "commit" and pending:
            memory.submit(pending)
            sqlite.submit(pending)
            pending = []
    memory.submit(pending)
    write_sync(sqlite, pending, timeout=30)
    sqlite.close()

    def state(store: Store) -> tuple[set[Any], set[Any], int]:
        items = list(store.recover())
        got_entries = {e for e in items if isinstance(e, StoredEntry)}
        got_deliveries = {d for d in items if isinstance(d, SessionDelivery)}
        return got_entries, got_deliveries, store.stats().messages

    memory_state = state(MemoryStore(memory.image))
    reopened = SqliteStore(path)
    try:
        sqlite_state = state(reopened)
    finally:
        reopened.close()
    assert sqlite_state[0] == memory_state[0] == set(entries)
    assert sqlite_state[1] == memory_state[1] == set(deliveries)
    assert sqlite_state[2] == memory_state[2]  # bodies: one per message still referred to
