"""The SQLite store's writer: group commit, ordering, recovery at size."""

from __future__ import annotations

import asyncio
from pathlib import Path

from warren.store import (
    Enqueue,
    PutQueue,
    QueueRecord,
    SqliteStore,
    StoredEntry,
    StoredMessage,
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
