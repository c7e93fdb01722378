"""Crash-test child: publish persistent entries forever, print each acknowledged id.

    python -m tests.store.crash_writer PATH SYNCHRONOUS

Fifty asyncio publishers each write one entry at a time and print ``ack <id>`` only
once its commit completed: exactly what a broker acknowledges. The parent kills
this process with SIGKILL mid-stream.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Literal, cast

from warren.store import Enqueue, PutQueue, QueueRecord, SqliteStore, StoredEntry, StoredMessage


async def main(path: str, synchronous: Literal["normal", "full"]) -> None:
    store = SqliteStore(path, synchronous=synchronous)
    list(store.recover())
    await store.write([PutQueue(QueueRecord(1, "default", "crash"))])
    print("ready", flush=True)

    async def publisher() -> None:
        while True:
            message = StoredMessage(store.next_id(), "crash/test", b"p" * 200, qos=1)
            entry = StoredEntry(1, store.next_id(), message)
            await store.write([Enqueue(entry)])
            sys.stdout.write(f"ack {entry.id}\n")
            sys.stdout.flush()

    await asyncio.gather(*(publisher() for _ in range(50)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], cast(Literal["normal", "full"], sys.argv[2])))
