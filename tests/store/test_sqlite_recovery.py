"""SQLite recovery of a damaged or untidy file: references to missing messages are
skipped (and not counted), bodies nothing refers to are deleted, and the writer's
reference counts (``_refs``) come out exact either way, compact or not."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from warren.store import (
    Dequeue,
    Enqueue,
    SqliteStore,
    StoredEntry,
    StoredEntryRows,
    StoredMessage,
    write_sync,
)


def fill(path: Path) -> list[StoredEntry]:
    store = SqliteStore(path, synchronous="normal")
    list(store.recover())
    entries = []
    for queue_id in (1, 2):
        for i in range(5):
            message = StoredMessage(store.next_id(), f"t/{i}", b"m%d" % i, qos=1)
            entries.append(StoredEntry(queue_id, store.next_id(), message))
    write_sync(store, [Enqueue(e) for e in entries])
    store.close()
    return entries


def raw(path: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, args)
    conn.close()


def recovered(store: SqliteStore, compact: bool) -> list[StoredEntry]:
    out: list[StoredEntry] = []
    for item in store.recover(compact=compact):
        if isinstance(item, StoredEntryRows):
            out.extend(item.codec.entry(row) for row in item.rows)
        elif isinstance(item, StoredEntry):
            out.append(item)
    return out


@pytest.mark.parametrize("compact", [False, True])
def test_entries_whose_message_is_missing_are_skipped(
    tmp_path: Path, compact: bool, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "w.db"
    entries = fill(path)
    gone = [entries[0], entries[6], entries[9]]  # first of q1, inside and last of q2
    for entry in gone:
        raw(path, "DELETE FROM messages WHERE id = ?", entry.message.id)
    store = SqliteStore(path, synchronous="normal")
    try:
        with caplog.at_level(logging.WARNING, logger="warren.store.sqlite"):
            got = recovered(store, compact)
        assert got == [e for e in entries if e not in gone]
        assert "3 stored references point at missing messages" in caplog.text
        assert store._refs == {e.message.id: 1 for e in got}
        # The writer works from those counts: the last reference deletes the body.
        write_sync(store, [Dequeue(e.queue_id, e.id, e.message.id) for e in got])
        stats = store.stats()
        assert (stats.messages, stats.entries) == (0, 3)  # the three orphaned entries
    finally:
        store.close()


@pytest.mark.parametrize("compact", [False, True])
def test_bodies_nothing_refers_to_are_deleted(tmp_path: Path, compact: bool) -> None:
    path = tmp_path / "w.db"
    entries = fill(path)
    raw(path, "DELETE FROM queue_entries WHERE id = ?", entries[3].id)
    store = SqliteStore(path, synchronous="normal")
    try:
        got = recovered(store, compact)
        assert got == [e for e in entries if e is not entries[3]]
        assert entries[3].message.id not in store._refs
        assert len(store._refs) == 9
        assert store.stats().messages == 9
    finally:
        store.close()
