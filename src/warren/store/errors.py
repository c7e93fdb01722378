"""Storage errors.

    WarrenError
    └── StorageError              durable state cannot be written or read; says the fix
        ├── SchemaVersionError    the file was written by another schema version
        └── StoreClosedError      the store was used after close()

Once a write fails the store *refuses*: every pending and later completion fails
with the same :class:`StorageError` (its ``cause`` names the first failure), so
nothing is acknowledged that was not kept. Reopening the store is the way back.
"""

from __future__ import annotations

from warren.errors import WarrenError

__all__ = ["SchemaVersionError", "StorageError", "StoreClosedError"]


class StorageError(WarrenError):
    """Durable state could not be written or read; the message says why and what to do."""


class SchemaVersionError(StorageError):
    """The data file's schema version is not one this Warren can use."""


class StoreClosedError(StorageError):
    """A mutation was submitted after :meth:`Store.close`."""
