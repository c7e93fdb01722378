"""SQLite recovery of a damaged or untidy file: references to missing messages are
skipped (and not counted), bodies nothing refers to are deleted, and the writer's
reference counts come out exact either way, compact or not (checked through what
the writer then deletes)."""

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
from warren.store.sqlite_recovery import (
    decode_message,
    entry_fields,
    load_messages,
    scan_entries,
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
        # The writer works from recovery's counts: the last reference deletes the body.
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
        assert store.stats().messages == 9
        # And the writer's counts agree: removing every entry leaves no body behind.
        write_sync(store, [Dequeue(e.queue_id, e.id, e.message.id) for e in got])
        assert (store.stats().messages, store.stats().entries) == (0, 0)
    finally:
        store.close()


def every_option_combination(first_id: int) -> list[StoredMessage]:
    """One message per subset of the eight optional fields (empty values included)."""
    values = {
        "content_type": ["text/plain; charset=\u00e9", ""],
        "correlation_data": [b"\x00\xffcorr", b""],
        "response_topic": ["reply/\u263a", ""],
        "user_properties": [(("k", "v"), ("k", "v2"), ("\u00fc", "\"quoted\"")), ()],
        "priority": [9, 0],
        "message_id": ["m-1", ""],
        "sender_id": ["client-\u00df", ""],
        "extra": [b"\x01\x02", b""],
    }
    names = list(values)
    out = []
    for mask in range(1 << len(names)):
        fields: dict[str, object] = {}
        for bit, name in enumerate(names):
            if mask >> bit & 1:
                fields[name] = values[name][mask % 2 if bit % 3 else 0]
        out.append(StoredMessage(
            first_id + mask, f"t/{mask}", bytes([mask % 256]) * (mask % 7), qos=mask % 3,
            retain=bool(mask & 2), payload_format_utf8=bool(mask & 4),
            expires_at=None if mask % 5 else 1_900_000_000.123456789 + mask,
            **fields,  # type: ignore[arg-type]
        ))
    return out


@pytest.mark.parametrize("decoded", [False, True], ids=["rows", "decoded"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "full"])
def test_every_message_field_round_trips_in_both_scan_forms(
    tmp_path: Path, packed: bool, decoded: bool
) -> None:
    store = SqliteStore(tmp_path / "w.db", synchronous="normal")
    list(store.recover())
    messages = every_option_combination(store.next_id())
    for _ in messages:
        store.next_id()
    write_sync(store, [
        Enqueue(StoredEntry(1, store.next_id(), m)) for m in messages
    ])
    store.close()
    store = SqliteStore(tmp_path / "w.db", synchronous="normal")
    try:
        rows = load_messages(store._conn, 100, packed=packed, decoded=decoded)
        if decoded:
            assert [rows[m.id] for m in messages] == messages
            assert all(type(rows[m.id]) is StoredMessage for m in messages)
        else:
            assert {len(row) for row in rows.values()} == ({6} if packed else {13})
            assert [decode_message(rows[m.id]) for m in messages] == messages
    finally:
        store.close()


@pytest.mark.parametrize("plain", [0, 400, 600, 1000])
def test_the_scan_form_follows_a_sample_of_the_table(tmp_path: Path, plain: int) -> None:
    """Packed when at least half the sampled messages set no optional field."""
    store = SqliteStore(tmp_path / "w.db", synchronous="normal")
    list(store.recover())
    write_sync(store, [
        Enqueue(StoredEntry(1, store.next_id(), StoredMessage(
            store.next_id(), "t", b"x", content_type=None if i < plain else "text/plain"
        )))
        for i in range(1000)
    ])
    store.close()
    store = SqliteStore(tmp_path / "w.db", synchronous="normal")
    try:
        rows = load_messages(store._conn, 100)
        assert {len(row) for row in rows.values()} == ({6} if plain >= 500 else {13})
        got = [decode_message(row) for row in rows.values()]
        assert [m.content_type for m in got] == [None] * plain + ["text/plain"] * (1000 - plain)
    finally:
        store.close()


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "full"])
def test_every_entry_field_round_trips_in_both_scan_forms(tmp_path: Path, packed: bool) -> None:
    store = SqliteStore(tmp_path / "w.db", synchronous="normal")
    list(store.recover())
    message = StoredMessage(store.next_id(), "t", b"x")
    entries = []
    for i, (source, key) in enumerate(
        [(None, None), ("", ""), ("amq.direct", "a.b"), ("\u00e9x", None), (None, "k\"")]
    ):
        for redeliveries in (0, 3):
            entries.append(StoredEntry(
                1 + i % 2, store.next_id(), message, source, key,
                None if redeliveries else 1_900_000_000.987654321 + i, i * 3, redeliveries,
            ))
    write_sync(store, [Enqueue(e) for e in entries])
    store.close()
    store = SqliteStore(tmp_path / "w.db", synchronous="normal")
    try:
        rows = scan_entries(store._conn, packed=packed).fetchall()
        assert {len(row) for row in rows} == ({6} if packed else {8})
        expected = sorted(entries, key=lambda e: (e.queue_id, e.id))
        assert [entry_fields(row) for row in rows] == [
            (e.queue_id, e.id, e.message.id, e.source, e.key, e.expires_at, e.priority,
             e.redeliveries)
            for e in expected
        ]
    finally:
        store.close()


@pytest.mark.parametrize("plain", [0, 499, 500, 1000])
def test_the_entry_scan_form_follows_a_sample(tmp_path: Path, plain: int) -> None:
    store = SqliteStore(tmp_path / "w.db", synchronous="normal")
    list(store.recover())
    message = StoredMessage(store.next_id(), "t", b"x")
    write_sync(store, [
        Enqueue(StoredEntry(1, store.next_id(), message, None if i < plain else "ex"))
        for i in range(1000)
    ])
    store.close()
    store = SqliteStore(tmp_path / "w.db", synchronous="normal")
    try:
        rows = scan_entries(store._conn).fetchall()
        assert {len(row) for row in rows} == ({6} if plain >= 500 else {8})
        assert [entry_fields(row)[3] for row in rows] == [None] * plain + ["ex"] * (1000 - plain)
    finally:
        store.close()
