"""Persistence behind one interface (DESIGN.md, "Storage"; docs/storage.md).

- :class:`Store` (base.py): submit mutations, get a completion after the commit;
  recover everything at start-up.
- :class:`MemoryStore` (memory.py): non-durable, for tests.
- :class:`SqliteStore` (sqlite.py): one WAL-mode SQLite file, group commit on one
  writer process; the embedded default.
- records.py: the typed records and mutations; errors.py: :class:`StorageError`.
"""

from warren.store.base import Done, Store, StoreStats, write_sync
from warren.store.errors import SchemaVersionError, StorageError, StoreClosedError
from warren.store.memory import MemoryImage, MemoryStore
from warren.store.records import *  # noqa: F403 - records.__all__ is the public list
from warren.store.records import __all__ as _records_all
from warren.store.sqlite import DEFAULT_FILENAME, SCHEMA_VERSION, SqliteStore

__all__ = [
    "DEFAULT_FILENAME",
    "SCHEMA_VERSION",
    "Done",
    "MemoryImage",
    "MemoryStore",
    "SchemaVersionError",
    "StorageError",
    "StoreClosedError",
    "SqliteStore",
    "Store",
    "StoreStats",
    "write_sync",
    *_records_all,
]
