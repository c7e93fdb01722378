"""The SQLite data file: schema, opening checks and error messages (docs/storage.md).

Shared by the broker process (which opens the file, checks it and recovers from it)
and the store's writer process (which writes it afterwards): see sqlite.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final, Literal

from warren.store.errors import SchemaVersionError, StorageError

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_FILENAME",
    "SCHEMA_VERSION",
    "Synchronous",
    "classify",
    "count_rows",
    "open_file",
]

SCHEMA_VERSION: Final = 1
DEFAULT_FILENAME: Final = "warren.db"
APPLICATION_ID: Final = 0x5741524E  # "WARN": marks the file as Warren's (PRAGMA application_id)

# Schema version 1. Hot tables have integer keys and typed columns; runtime objects
# are JSON bodies in ``records`` (see records.py). WITHOUT ROWID makes the primary
# key the storage order: one sequential scan returns a queue's entries in order.
_SCHEMA: Final = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value ANY
) WITHOUT ROWID;
CREATE TABLE messages (
    id                INTEGER PRIMARY KEY,
    topic             TEXT NOT NULL,
    payload           BLOB NOT NULL,
    flags             INTEGER NOT NULL,  -- qos | retain << 2 | payload_format_utf8 << 3
    content_type      TEXT,
    correlation_data  BLOB,
    response_topic    TEXT,
    user_properties   TEXT,              -- JSON [[name, value], ...], NULL if none
    expires_at        REAL,              -- wall clock
    priority          INTEGER,
    message_id        TEXT,
    sender_id         TEXT,
    extra             BLOB
);
CREATE TABLE queue_entries (
    queue_id      INTEGER NOT NULL,
    id            INTEGER NOT NULL,
    message       INTEGER NOT NULL,
    source        TEXT,
    key           TEXT,
    expires_at    REAL,
    priority      INTEGER NOT NULL,
    redeliveries  INTEGER NOT NULL,
    PRIMARY KEY (queue_id, id)
) WITHOUT ROWID;
CREATE TABLE session_deliveries (
    session_id        INTEGER NOT NULL,
    id                INTEGER NOT NULL,
    message           INTEGER NOT NULL,
    qos               INTEGER NOT NULL,
    retain            INTEGER NOT NULL,
    subscription_ids  TEXT,              -- JSON [id, ...], NULL if none
    packet_id         INTEGER NOT NULL,
    state             INTEGER NOT NULL,
    PRIMARY KEY (session_id, id)
) WITHOUT ROWID;
CREATE TABLE retained (
    vpn      TEXT NOT NULL,
    topic    TEXT NOT NULL,
    message  INTEGER NOT NULL,
    PRIMARY KEY (vpn, topic)
) WITHOUT ROWID;
CREATE TABLE records (
    kind   TEXT NOT NULL,
    owner  INTEGER NOT NULL,
    key    TEXT NOT NULL,
    body   TEXT NOT NULL,               -- the record as JSON (base.encode_record)
    PRIMARY KEY (kind, owner, key)
) WITHOUT ROWID;
"""

Synchronous = Literal["normal", "full"]


def open_file(path: Path, synchronous: Synchronous, max_size: int | None) -> sqlite3.Connection:
    """Open (or create) the data file, check its schema, and prove it is writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the data directory {path.parent}: {exc.strerror}; create it, or"
            " set [server] data_dir to a writable directory"
        ) from exc
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (one per batch).
        # check_same_thread=False: the broker opens and recovers on its thread.
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=1.0,
            cached_statements=256,  # sqlite_batch.py's multi-row statements
        )
    except sqlite3.Error as exc:
        raise classify(exc, path, "opening") from exc
    try:
        _configure(conn, path, synchronous, max_size)
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(
    conn: sqlite3.Connection, path: Path, synchronous: Synchronous, max_size: int | None
) -> None:
    try:
        # Exclusive locking: one broker per file (a second one gets "locked"), and
        # WAL needs no shared-memory file.
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        app_id, = conn.execute("PRAGMA application_id").fetchone()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and app_id != APPLICATION_ID:
            raise StorageError(
                f"{path} is an SQLite file but not a Warren data file; point [server] data_dir"
                " elsewhere or move the file away"
            )
        mode, = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal":
            raise StorageError(f"{path}: cannot switch to WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        conn.execute("PRAGMA journal_size_limit = 67108864")  # truncate the WAL to 64 MiB
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB page cache
        if max_size is not None:
            page_size, = conn.execute("PRAGMA page_size").fetchone()
            conn.execute(f"PRAGMA max_page_count = {max(1, max_size // page_size)}")
        conn.execute("BEGIN IMMEDIATE")  # fails now, not at the first publish, if unwritable
        conn.execute("ROLLBACK")
        if tables and "meta" not in tables:
            raise StorageError(
                f"{path}: a Warren data file without its meta table (damaged?): restore it"
                " from a backup or move it away to start with empty storage"
            )
    except sqlite3.Error as exc:
        raise classify(exc, path, "opening") from exc
    if "meta" not in tables:
        _create_schema(conn, path)
    else:
        _check_schema(conn, path)


def _create_schema(conn: sqlite3.Connection, path: Path) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("schema_version", SCHEMA_VERSION), ("next_id", 1)],
        )
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise classify(exc, path, "creating") from exc


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error as exc:
        raise classify(exc, path, "opening") from exc
    version = row[0] if row is not None else None
    if version == SCHEMA_VERSION:
        return
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} has storage schema version {version}, newer than this Warren's"
            f" ({SCHEMA_VERSION}): run the Warren version that wrote it (or newer), or move"
            " the file away to start with empty storage"
        )
    raise SchemaVersionError(
        f"{path} has storage schema version {version!r}, which this Warren"
        f" (schema {SCHEMA_VERSION}) cannot read: restore a backup or move the file away"
    )


def count_rows(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per table, by StoreStats field name."""
    return {
        attr: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table, attr in (
            ("messages", "messages"),
            ("queue_entries", "entries"),
            ("session_deliveries", "deliveries"),
            ("retained", "retained"),
            ("records", "records"),
        )
    }


def classify(exc: sqlite3.Error, path: Path, doing: str) -> StorageError:
    """A StorageError that says what happened to ``path`` and what to do about it."""
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith("SQLITE_FULL") or "full" in text:
        fix = "free disk space (or raise the store's size limit), then restart the broker"
        what = "the disk or the store's size limit is full"
    elif name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        fix = (
            "make the file and its directory writable by the broker's user (and the"
            " file system read-write), then restart"
        )
        what = "the data file is read-only"
    elif name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or (
        "not a database" in text
    ):
        fix = (
            "restore it from a backup, or salvage it with `sqlite3 FILE .recover`, or move it"
            " away to start with empty storage"
        )
        what = "the data file is damaged or not a database"
    elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        fix = "stop the other broker using this data directory, or give this one its own"
        what = "another process holds the data file"
    elif name.startswith(("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM")):
        fix = "check the data directory's permissions, free space and file system"
        what = "the data file cannot be opened or written"
    else:
        fix = "check the data directory's free space, permissions and file system"
        what = "the storage engine failed"
    detail = f"{text}; {name} {code}" if code is not None else text
    return StorageError(f"{path}: {what} while {doing} ({detail}): {fix}")
