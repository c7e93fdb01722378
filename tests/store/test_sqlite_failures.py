"""What a crash can and cannot lose, and how storage failures are reported."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from warren.store import (
    Enqueue,
    ObjectRecord,
    PutObject,
    SchemaVersionError,
    SqliteStore,
    StorageError,
    StoredEntry,
    StoredMessage,
    write_sync,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_kill_9_loses_nothing_acknowledged(tmp_path: Path, synchronous: str) -> None:
    path = tmp_path / "warren.db"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.store.crash_writer", str(path), synchronous],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its process group: it and its store writer
    )
    assert child.stdout is not None
    acked: set[int] = set()
    try:
        assert child.stdout.readline() == "ready\n"
        while len(acked) < 2000:  # mid-stream: wait on output, never on the clock
            line = child.stdout.readline()
            assert line.startswith("ack "), line
            acked.add(int(line.split()[1]))
        os.killpg(child.pid, signal.SIGKILL)  # the process and its writer at once
        child.wait(timeout=30)
        # Everything the child printed before it died was acknowledged too.
        acked.update(int(line.split()[1]) for line in child.stdout if line.startswith("ack "))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    store = SqliteStore(path)
    stored = {e.id for e in store.recover() if isinstance(e, StoredEntry)}
    store.close()
    assert acked <= stored, f"lost {len(acked - stored)} acknowledged entries"


def entry(store: SqliteStore, size: int = 4000) -> Enqueue:
    message = StoredMessage(store.next_id(), "t", os.urandom(size), qos=1)
    return Enqueue(StoredEntry(1, store.next_id(), message))


def test_full_disk_refuses_and_acknowledges_nothing_more(tmp_path: Path) -> None:
    # A size limit stands in for a full disk: SQLite reports SQLITE_FULL for both.
    store = SqliteStore(tmp_path / "warren.db", max_size=256 * 1024)
    list(store.recover())

    async def main() -> tuple[int, list[BaseException | None]]:
        acknowledged = 0
        while True:
            try:
                await store.write([entry(store)])
            except StorageError:
                break
            acknowledged += 1
        # Refusing state: later writes fail too, without touching the file.
        later = [store.write([entry(store)]) for _ in range(3)]
        results = await asyncio.gather(*later, return_exceptions=True)
        return acknowledged, list(results)

    acknowledged, later = asyncio.run(main())
    failure = store.failure
    store.close()
    assert failure is not None and "full" in str(failure) and "free disk space" in str(failure)
    assert all(isinstance(r, StorageError) for r in later)
    assert 10 < acknowledged < 64

    store = SqliteStore(tmp_path / "warren.db")  # no limit now: it recovers and writes
    stored = [e for e in store.recover() if isinstance(e, StoredEntry)]
    assert len(stored) == acknowledged
    write_sync(store, [entry(store)], timeout=10)
    store.close()


def test_read_only_database_refuses(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "warren.db")
    list(store.recover())
    # What a file system remounted read-only looks like to SQLite: SQLITE_READONLY.
    store._pragma("query_only = 1")
    with pytest.raises(StorageError, match=r"read-only.*writable"):
        write_sync(store, [PutObject(ObjectRecord("k", "v", "n"))], timeout=10)
    assert store.failure is not None
    store.close()


def test_unusable_data_directory_is_reported_at_open(tmp_path: Path) -> None:
    # (A read-only directory would not do: tests run as root, which writes anyway.)
    (tmp_path / "data").write_text("a file where the data directory should be")
    with pytest.raises(StorageError, match="writable directory"):
        SqliteStore(tmp_path / "data" / "warren.db")


def test_newer_schema_is_refused_with_the_fix(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "warren.db").close()
    conn = sqlite3.connect(tmp_path / "warren.db")
    conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaVersionError, match=r"version 99, newer than this Warren's \(1\)"):
        SqliteStore(tmp_path / "warren.db")


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "warren.db").write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StorageError, match=r"damaged or not a database.*move it"):
        SqliteStore(tmp_path / "warren.db")


def test_someone_elses_sqlite_file(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "warren.db")
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(StorageError, match="not a Warren data file"):
        SqliteStore(tmp_path / "warren.db")


def test_one_broker_per_file(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "warren.db")
    try:
        with pytest.raises(StorageError, match="another process"):
            SqliteStore(tmp_path / "warren.db")
    finally:
        first.close()
