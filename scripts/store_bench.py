"""Storage engine measurements for docs/storage.md.

    python scripts/store_bench.py recovery --entries 1000000
    python scripts/store_bench.py writes --synchronous full --publishers 100
    python scripts/store_bench.py writes --synchronous normal --publishers 100

``recovery`` fills a fresh file with N messages, each in one of 10 durable queues
(100-byte payloads, like a backlog of small events), closes it, then times a cold
open + full ``recover()`` in a new process-like state (new store object, fresh
connection; the OS page cache is warm, as after a broker crash). ``writes`` runs
``--publishers`` asyncio tasks, each publishing persistent messages one at a time
(await the commit, publish the next: a publisher waiting for its acknowledgement),
and reports commits, batch sizes and persistent writes/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from warren.store import (
    Dequeue,
    Enqueue,
    PutQueue,
    QueueRecord,
    SqliteStore,
    StoredEntry,
    StoredMessage,
    write_sync,
)
from warren.store.records import Mutation


def fill(path: Path, count: int, queues: int = 10, payload: int = 100) -> None:
    store = SqliteStore(path, synchronous="normal", max_batch=50_000)
    list(store.recover())
    body = os.urandom(payload)
    write_sync(store, [PutQueue(QueueRecord(q, "default", f"q{q}")) for q in range(1, queues + 1)])
    batch: list[Mutation] = []
    for _ in range(count):
        mid = store.next_id()
        message = StoredMessage(mid, f"sensors/{mid % 1000}/temp", body, qos=1)
        batch.append(Enqueue(StoredEntry(1 + mid % queues, store.next_id(), message)))
        if len(batch) == 50_000:
            write_sync(store, batch)
            batch = []
    if batch:
        write_sync(store, batch)
    store.close()


def recovery(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "warren.db"
        t0 = time.perf_counter()
        fill(path, args.entries)
        print(f"filled {args.entries} entries in {time.perf_counter() - t0:.1f} s,"
              f" file {path.stat().st_size / 1e6:.0f} MB")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            store = SqliteStore(path)
            opened = time.perf_counter()
            entries = queues = 0
            for item in store.recover():
                if isinstance(item, StoredEntry):
                    entries += 1
                else:
                    queues += 1
            done = time.perf_counter()
            store.close()
            print(f"recovered {entries} entries ({queues} queues): open {opened - t0:.2f} s,"
                  f" open + recover {done - t0:.2f} s")


async def _writes(args: argparse.Namespace, path: Path) -> None:
    store = SqliteStore(path, synchronous=args.synchronous)
    list(store.recover())
    await store.write([PutQueue(QueueRecord(1, "default", "bench"))])
    body = os.urandom(args.payload)
    latencies: list[float] = []
    stop = time.perf_counter() + args.seconds

    async def publisher() -> None:
        while time.perf_counter() < stop:
            mid = store.next_id()
            entry = StoredEntry(1, store.next_id(), StoredMessage(mid, "bench", body, qos=1))
            t = time.perf_counter()
            await store.write([Enqueue(entry)])
            latencies.append(time.perf_counter() - t)
            if args.consume:  # the consumer's ack: a second, non-awaited mutation
                store.submit([Dequeue(1, entry.id, mid)])

    before = store.stats()
    t0 = time.perf_counter()
    await asyncio.gather(*(publisher() for _ in range(args.publishers)))
    elapsed = time.perf_counter() - t0
    stats = store.stats()
    store.close()
    commits = stats.commits - before.commits
    latencies.sort()
    print(
        f"synchronous={args.synchronous} publishers={args.publishers} consume={args.consume}:"
        f" {len(latencies) / elapsed:,.0f} persistent writes/s, {commits / elapsed:,.0f}"
        f" commits/s, {stats.submissions / max(1, stats.commits):.1f} submissions/commit,"
        f" p50 {latencies[len(latencies) // 2] * 1e3:.2f} ms,"
        f" p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.2f} ms"
    )
    print("  commits by submissions per commit (power-of-two buckets):",
          dict(sorted(stats.batch_histogram.items())))


def writes(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        asyncio.run(_writes(args, Path(tmp) / "warren.db"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to put the file (default: $TMPDIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("recovery")
    r.add_argument("--entries", type=int, default=1_000_000)
    r.add_argument("--repeat", type=int, default=3)
    w = sub.add_parser("writes")
    w.add_argument("--synchronous", choices=["normal", "full"], default="full")
    w.add_argument("--publishers", type=int, default=100)
    w.add_argument("--seconds", type=float, default=5.0)
    w.add_argument("--payload", type=int, default=100)
    w.add_argument("--consume", action="store_true", help="also dequeue each entry (ack)")
    args = parser.parse_args()
    {"recovery": recovery, "writes": writes}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
