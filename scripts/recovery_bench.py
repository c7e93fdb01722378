"""Broker recovery measurement for docs/storage.md ("Broker recovery").

    python scripts/recovery_bench.py --messages 1000000            # fill + time start-up
    python scripts/recovery_bench.py --messages 1000000 --profile  # + cProfile of _recover

Fills a fresh data dir with N persistent messages in one durable queue ``q1`` of
VPN ``default`` (through the store API directly, 100-byte payloads; ``--queues``
spreads them over more, ``--amqp`` gives them properties and routing), then times
``warren serve --data-dir DIR --ready-file F`` from exec until the ready file
appears (with the broker's CPU time by then), and prints the broker's own
"recovered ... in X s" log line.
``--profile`` then runs ``Broker.open_store()`` in-process under cProfile.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
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


def fill(
    path: Path, count: int, payload: int = 100, queues: int = 1, amqp: bool = False
) -> None:
    """``count`` messages, round robin over durable queues q1..qN; with ``amqp``, each
    message carries a content type, correlation id, message id and a header, and
    each entry the exchange and routing key it came through."""
    store = SqliteStore(path, synchronous="normal", max_batch=100_000)
    list(store.recover())
    body = os.urandom(payload)
    write_sync(store, [PutQueue(QueueRecord(q, "default", f"q{q}")) for q in range(1, queues + 1)])
    batch: list[Mutation] = []
    for i in range(count):
        mid = store.next_id()
        queue = i % queues + 1
        if amqp:
            message = StoredMessage(
                mid, "sensors/temp", body, qos=1, content_type="application/json",
                correlation_data=b"c-%d" % i, user_properties=(("x-source", "bench"),),
                message_id=f"m-{i}",
            )
            entry = StoredEntry(queue, store.next_id(), message, "amq.direct", f"q{queue}")
        else:
            entry = StoredEntry(
                queue, store.next_id(), StoredMessage(mid, "sensors/temp", body, qos=1)
            )
        batch.append(Enqueue(entry))
        if len(batch) == 100_000:
            write_sync(store, batch)
            batch = []
    if batch:
        write_sync(store, batch)
    store.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve(data_dir: Path) -> tuple[float, float, float]:
    """Seconds from exec to the ready file, the broker's CPU seconds by then (less
    sensitive than wall time to other load on the machine) and its RSS in MiB."""
    ready = data_dir / "ready.json"
    ready.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", "from warren.cli.main import main; main()", "serve",
           "--data-dir", str(data_dir), "--ready-file", str(ready), "--host", "127.0.0.1",
           "--mqtt-port", "0", "--ws-port", "0", "--native-port", "0", "--amqp-port", "0"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while not ready.exists():
            if proc.poll() is not None:
                raise SystemExit(f"warren serve exited {proc.returncode}:\n{proc.stdout.read()}")  # type: ignore[union-attr]
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid)
        rss = rss_mib(proc.pid)
        json.loads(ready.read_text() or "{}")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    for line in out.splitlines():
        if "recovered" in line:
            print("  broker:", line.strip())
    return elapsed, cpu, rss


def profile(data_dir: Path) -> None:
    """cProfile of ``Broker._recover`` inside a real ``warren serve`` start-up."""
    import cProfile
    import pstats

    import warren.server as server
    from warren.cli.main import main

    prof = cProfile.Profile()
    original = server.Broker._recover

    def wrapped(self, store):  # type: ignore[no-untyped-def]
        prof.enable()
        try:
            return original(self, store)
        finally:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
            os.kill(os.getpid(), signal.SIGTERM)

    server.Broker._recover = wrapped  # type: ignore[method-assign]
    sys.argv = ["warren", "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
                "--mqtt-port", "0", "--ws-port", "0", "--native-port", "0", "--amqp-port", "0"]
    with contextlib.suppress(SystemExit):
        main()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--queues", type=int, default=1, help="spread over q1..qN")
    parser.add_argument("--amqp", action="store_true",
                        help="messages with AMQP-style properties and routing")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dir", default=None, help="where the temporary data dir goes")
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep this data dir")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        data_dir = args.keep or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        if not (data_dir / "warren.db").exists():
            t0 = time.perf_counter()
            fill(data_dir / "warren.db", args.messages, queues=args.queues, amqp=args.amqp)
            print(f"filled {args.messages} messages in {time.perf_counter() - t0:.1f} s")
        for _ in range(args.repeat):
            elapsed, cpu, rss = serve(data_dir)
            print(f"warren serve ready after {elapsed:.2f} s (broker CPU {cpu:.2f} s,"
                  f" RSS {rss:.0f} MiB)")
        if args.profile:
            profile(data_dir)


if __name__ == "__main__":
    main()
