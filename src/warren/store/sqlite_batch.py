"""Coalescing the hot mutations of one commit into a few multi-row statements.

Persistent messaging is dominated by four mutations: an entry or delivery is put
(:class:`Enqueue`, :class:`PutSessionDelivery`), maybe updated (:class:`Redeliver`,
:class:`UpdateSessionDelivery`) and removed (:class:`Dequeue`,
:class:`DeleteSessionDelivery`). Applied one statement per mutation, every row
costs a ``sqlite3_step`` and so a release and re-acquisition of the GIL by the
writer thread, which then waits for the event loop to let go of it: at 20k
persistent messages a second that, not SQLite, was most of the commit time.

:class:`RowBuffer` gathers those mutations for one transaction and writes them with
one multi-row statement per table and operation (padded to one of a few sizes,
so few distinct SQL texts reach the statement cache):

- a put of a new id is buffered; an update of a buffered row changes the buffer; a
  removal of a buffered row cancels it (a message published and acknowledged
  within one commit never touches the file, and its body is not written either);
- otherwise updates and removals are buffered for rows already in the file.

It is applied (:meth:`RowBuffer.flush`) before any other mutation and at the end of
the transaction: inserts, then updates, then deletes, then message bodies that lost
their last reference. The outcome equals applying every mutation in order, because
rows are keyed by ids that are unique for ever: an update or delete in the buffer
targets a row written before it, a cancelled pair never meets the file.

Removals carry the message id the core knows, so no ``DELETE ... RETURNING`` round
trip per row; the count of deleted rows is checked, and on a mismatch (a removal of
something not stored, which the core does not emit) the references of the messages
involved are recounted from the file instead of trusted.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, Final

log = logging.getLogger(__name__)

__all__ = ["RowBuffer"]

# Statement sizes (rows per statement). A run of n rows is written by the smallest
# size >= n, padded by repeating its last row (a duplicate insert replaces itself, a
# duplicate id in an IN list matches once), so one statement per table and operation
# and few distinct SQL texts (the statement cache holds them all); padding costs at
# most half as much again.
_SIZES: Final = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
_BUCKET: Final = [next(s for s in _SIZES if s >= n) for n in range(_SIZES[-1] + 1)]

Row = tuple[Any, ...]


@functools.lru_cache(maxsize=256)
def _values_sql(head: str, width: int, rows: int, tail: str = "") -> str:
    row = "(" + ",".join("?" * width) + ")"
    return f"{head} VALUES {','.join([row] * rows)}{tail}"


@functools.lru_cache(maxsize=256)
def _in_sql(head: str, count: int) -> str:
    return f"{head} IN ({','.join('?' * count)})"


def _chunked(rows: list[Any]) -> Iterable[tuple[int, list[Any]]]:
    """``rows`` as (statement size, rows padded to it), in as few statements as may be."""
    largest = _SIZES[-1]
    for i in range(0, len(rows), largest):
        chunk = rows[i:i + largest]
        size = _BUCKET[len(chunk)]
        if size > len(chunk):
            chunk = chunk + [chunk[-1]] * (size - len(chunk))
        yield size, chunk


class _Table:
    """Buffered writes to one of the two hot tables (queue entries, session deliveries)."""

    __slots__ = (
        "cancelled", "deletes", "insert_sql", "inserts", "name", "owner", "update", "updates"
    )

    def __init__(self, name: str, owner: str, width: int, update: str) -> None:
        self.name = name
        self.owner = owner
        self.insert_sql = (f"INSERT OR REPLACE INTO {name}", width)  # see _SIZES
        self.update = update  # "SET ... FROM (VALUES ...) AS v" template, see _write_updates
        self.inserts: dict[tuple[int, int], list[Any]] = {}  # key -> row (mutable)
        self.updates: dict[tuple[int, int], tuple[Any, ...]] = {}  # key -> new values
        self.deletes: dict[int, dict[int, int]] = {}  # owner -> {id: message}
        self.cancelled: set[tuple[int, int]] = set()  # put and removed in this buffer

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates or self.deletes)


class RowBuffer:
    """The hot mutations of one transaction (see the module docstring)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        refs: dict[int, int],
        message_row: Callable[[Any], Row],
    ) -> None:
        self._conn = conn
        self._refs = refs
        self._message_row = message_row
        self._new_messages: dict[int, Row] = {}  # bodies to insert
        self._unwritten: dict[int, Row] = {}  # new bodies whose references all went again
        self._dead_messages: set[int] = set()  # stored bodies to delete
        self.entries = _Table(
            "queue_entries", "queue_id", 8,
            "UPDATE queue_entries SET redeliveries = v.column3 FROM ({values}) AS v"
            " WHERE queue_id = v.column1 AND id = v.column2",
        )
        self.deliveries = _Table(
            "session_deliveries", "session_id", 8,
            "UPDATE session_deliveries SET packet_id = v.column3, state = v.column4"
            " FROM ({values}) AS v WHERE session_id = v.column1 AND id = v.column2",
        )

    # --- references -------------------------------------------------------------------

    def ref(self, mid: int, message: Any) -> None:
        refs = self._refs
        count = refs.get(mid, 0)
        if not count:
            if mid in self._dead_messages:  # released earlier in this batch: keep the body
                self._dead_messages.discard(mid)
            else:
                row = self._unwritten.pop(mid, None)
                self._new_messages[mid] = row or self._message_row(message)
        refs[mid] = count + 1

    def unref(self, mid: int) -> None:
        refs = self._refs
        count = refs.get(mid, 0) - 1
        if count > 0:
            refs[mid] = count
            return
        refs.pop(mid, None)
        row = self._new_messages.pop(mid, None)
        if row is None:
            self._dead_messages.add(mid)
        else:  # never written; kept until the flush in case _recount needs it
            self._unwritten[mid] = row

    # --- buffering (the caller has checked that the put is of a new id) ----------------

    def put(self, table: _Table, key: tuple[int, int], row: list[Any], mid: int,
            message: Any) -> None:
        """Buffer ``row`` (a new id) referring to message ``mid`` (``message`` is what
        ``message_row`` turns into the body's row, if the body is not stored yet)."""
        self.ref(mid, message)
        table.inserts[key] = row

    def update(self, table: _Table, key: tuple[int, int], values: tuple[Any, ...],
               columns: tuple[int, ...]) -> None:
        """Set ``columns`` (row positions) of the row ``key`` to ``values``."""
        row = table.inserts.get(key)
        if row is not None:
            for column, value in zip(columns, values, strict=True):
                row[column] = value
        else:
            table.updates[key] = values

    def remove(self, table: _Table, key: tuple[int, int], mid: int) -> None:
        if table.inserts.pop(key, None) is not None:
            table.cancelled.add(key)
        else:
            if key in table.cancelled:
                return  # removed twice: the second is a no-op (Store contract)
            table.updates.pop(key, None)
            removed = table.deletes.setdefault(key[0], {})
            if key[1] in removed:
                return  # likewise
            removed[key[1]] = mid
        self.unref(mid)

    # --- writing ----------------------------------------------------------------------

    def __bool__(self) -> bool:
        return bool(self.entries or self.deliveries or self._new_messages
                    or self._dead_messages)

    def flush(self) -> None:
        """Write everything buffered (in the open transaction) and empty the buffer."""
        # A row put and removed before this point never reached the file; what comes
        # after (a re-put of its id through the run handlers) must not be mistaken for it.
        self.entries.cancelled.clear()
        self.deliveries.cancelled.clear()
        if not self:
            self._unwritten.clear()
            return
        conn = self._conn
        if self._new_messages:
            self._insert("INSERT OR REPLACE INTO messages", 13, list(self._new_messages.values()))
            self._new_messages.clear()
        for table in (self.entries, self.deliveries):
            if table.inserts:
                head, width = table.insert_sql
                self._insert(head, width, list(table.inserts.values()))
                table.inserts.clear()
            if table.updates:
                for size, chunk in _chunked(list(table.updates.items())):
                    width = 2 + len(chunk[0][1])
                    values = _values_sql("", width, size).lstrip()
                    conn.execute(
                        table.update.format(values=values),
                        [v for key, new in chunk for v in (*key, *new)],
                    )
                table.updates.clear()
            if table.deletes:
                self._delete(table)
                table.deletes.clear()
        if self._dead_messages:
            for size, chunk in _chunked(sorted(self._dead_messages)):
                conn.execute(_in_sql("DELETE FROM messages WHERE id", size), chunk)
            self._dead_messages.clear()
        self._unwritten.clear()

    def _insert(self, head: str, width: int, rows: list[Any]) -> None:
        conn = self._conn
        for size, chunk in _chunked(rows):
            conn.execute(_values_sql(head, width, size), [v for row in chunk for v in row])

    def _delete(self, table: _Table) -> None:
        conn = self._conn
        head = f"DELETE FROM {table.name} WHERE {table.owner} = ? AND id"
        for owner, removed in table.deletes.items():
            deleted = 0
            for size, chunk in _chunked(list(removed)):
                deleted += conn.execute(_in_sql(head, size), [owner, *chunk]).rowcount
            if deleted != len(removed):
                self._recount(table, owner, removed, deleted)

    def _recount(self, table: _Table, owner: int, removed: dict[int, int],
                 deleted: int) -> None:
        """Some removed rows were not stored: trust the file, not the mutations."""
        log.warning(
            "%s: %d of %d removals for %s %d matched no stored row; recounting the"
            " references of their messages",
            table.name, len(removed) - deleted, len(removed), table.owner, owner,
        )
        conn = self._conn
        for mid in set(removed.values()):
            (count,) = conn.execute(
                "SELECT (SELECT count(*) FROM queue_entries WHERE message = ?)"
                " + (SELECT count(*) FROM session_deliveries WHERE message = ?)"
                " + (SELECT count(*) FROM retained WHERE message = ?)",
                (mid, mid, mid),
            ).fetchone()
            if count:
                self._refs[mid] = count
                self._dead_messages.discard(mid)
                row = self._unwritten.pop(mid, None)
                if row is not None:  # its buffered count went to 0 wrongly: write it
                    self._insert("INSERT OR REPLACE INTO messages", 13, [row])
            else:
                self._refs.pop(mid, None)
                self._dead_messages.add(mid)
