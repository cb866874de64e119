"""The embedded warehouse: one DuckDB file with the production table names.

A connection is opened per operation and closed at once, so a backfill, the trainer and the worker
can take turns on the same file from different processes; a process that has the file to itself
for a long run (a replay) holds it open instead (``held_open``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from contracts import Column, TableSchema
from warehouse.base import (
    DateRange,
    Rebuild,
    Warehouse,
    WarehouseError,
    _empty,
    _typed,
    check_frame,
    missing_columns,
    require_columns,
)

LOCK_WAIT_SECONDS = 120.0
READ_WAIT_SECONDS = 2.0
# DuckDB serialises writers of a file across processes with its file lock; inside one process two
# threads' write transactions conflict instead, so they take turns on this lock (one per file).
_WRITE_LOCKS: dict[Path, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()
_TYPES = {"INT64": "BIGINT", "FLOAT64": "DOUBLE", "STRING": "VARCHAR", "DATE": "DATE",
          "BOOL": "BOOLEAN", "TIMESTAMP": "TIMESTAMPTZ"}


class WarehouseBusy(WarehouseError):
    """Another process holds the file's write lock past a reader's short wait: a temporary state,
    which the worker answers with 503 rather than a stall or a 500."""


def create_table_sql(schema: TableSchema) -> str:
    cols = ", ".join(f'"{c.name}" {_TYPES[c.type]}{"" if c.nullable else " NOT NULL"}'
                     for c in schema.columns)
    keys = ", ".join(f'"{k}"' for k in schema.key)
    return f'CREATE TABLE IF NOT EXISTS "{schema.name}" ({cols}, PRIMARY KEY ({keys}))'


def add_column_sql(table: str, column: Column) -> str:
    """Nullable whatever the declaration: the rows already stored have no value for it."""
    return f'ALTER TABLE "{table}" ADD COLUMN "{column.name}" {_TYPES[column.type]}'


def _migrate(con: duckdb.DuckDBPyConnection, schema: TableSchema, missing: list[Column]) -> None:
    """Bring a table an older version wrote up to the declaration, inside the write's transaction. A new
    column is added, its ``default`` written into the stored rows; a new *key* column (a market added to
    a key) cannot join DuckDB's primary key by ALTER TABLE, so the table is made anew with the declared key
    and the stored rows copied into it, the defaults filled in: nothing stored is lost."""
    if not missing:
        return
    if any(c.name in schema.key for c in missing):
        old = f"_before_{schema.name}"
        con.execute(f'ALTER TABLE "{schema.name}" RENAME TO "{old}"')
        con.execute(create_table_sql(schema))
        present = {c.name for c in missing}
        values = ", ".join(f'"{c.name}"' if c.name not in present else _literal(c.default)
                           for c in schema.columns)
        cols = ", ".join(f'"{c}"' for c in schema.column_names)
        con.execute(f'INSERT INTO "{schema.name}" ({cols}) SELECT {values} FROM "{old}"')
        con.execute(f'DROP TABLE "{old}"')
        return
    for column in missing:
        con.execute(add_column_sql(schema.name, column))
        if column.default is not None:
            con.execute(f'UPDATE "{schema.name}" SET "{column.name}" = {_literal(column.default)}')


def _literal(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


class DuckDBWarehouse(Warehouse):
    def __init__(self, url: str) -> None:
        self.url = url
        self.path = Path(url.removeprefix("duckdb:///"))

    def exists(self) -> bool:
        return self.path.is_file()

    @contextmanager
    def _connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection. DuckDB lets one process write a file at a time, so a process
        that finds the file locked by another waits for it: a writer up to ``LOCK_WAIT_SECONDS``
        (a backfill may queue behind another), a reader only ``READ_WAIT_SECONDS``, then
        :class:`WarehouseBusy`, so a request that reads is answered in seconds, not minutes."""
        deadline = time.monotonic() + (READ_WAIT_SECONDS if read_only else LOCK_WAIT_SECONDS)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # only a write makes the file (and its folder)
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.ConnectionException as exc:
                if read_only and "different configuration" in str(exc):
                    # this process is writing the file itself: a connection in the writer's mode
                    # shares its database and reads the last commit at once, without waiting
                    read_only = False
                    continue
                self._wait_or_raise(exc, deadline, read_only)
            except duckdb.IOException as exc:  # another process holds the file's lock
                self._wait_or_raise(exc, deadline, read_only)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def held_open(self) -> Iterator[None]:
        """The file kept open in this process for the block. Why: DuckDB opens a file (catalogue,
        write-ahead log) on a process's first connection and checkpoints it when the last one
        closes, about 20 ms each time; while one connection stays open, every other connection of
        the process shares the open database (under 1 ms; a reader's is taken in the writer's mode,
        as ``_connect`` does for a process writing the file). A replay's evenings make thousands of
        them. The open connection holds the file's write lock throughout, so this is for a store no
        other process uses meanwhile (a replay's own), never one a worker or a backfill shares."""
        with self._connect():
            yield

    def _wait_or_raise(self, exc: Exception, deadline: float, read_only: bool) -> None:
        busy = any(word in str(exc).lower() for word in ("lock", "different configuration"))
        if not busy:
            raise WarehouseError(f"{self.url}: {exc}") from None
        if time.monotonic() > deadline:
            if read_only:
                raise WarehouseBusy(f"the warehouse is busy: another process is writing it "
                                    f"(waited {READ_WAIT_SECONDS:g} s); retry shortly") from None
            raise WarehouseError(f"{self.url}: {exc}") from None
        time.sleep(0.05)  # back off while the other process finishes its transaction

    def _exists(self, con: duckdb.DuckDBPyConnection, table: str) -> bool:
        return bool(con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = $t", {"t": table}
        ).fetchone()[0])

    def _columns(self, con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
        return [row[0] for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $t", {"t": table}).fetchall()]

    def read(self, schema: TableSchema, date_range: DateRange | None = None,
             equals: dict[str, object] | None = None, dates: Collection[dt.date] | None = None) -> pd.DataFrame:
        conditions, params = [], {}
        if date_range is not None:
            conditions.append(f'"{schema.date_column}" BETWEEN $start AND $end')
            params.update(start=date_range[0], end=date_range[1])
        if dates is not None:
            conditions.append(f'"{schema.date_column}" IN (SELECT UNNEST($dates::DATE[]))')
            params["dates"] = list(dates)
        for i, (col, value) in enumerate((equals or {}).items()):
            if col not in schema.column_names:
                raise WarehouseError(f"{schema.name} has no column {col!r}")
            conditions.append(f'"{col}" = $v{i}')
            params[f"v{i}"] = value
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        cols = ", ".join(f'"{c}"' for c in schema.column_names)
        order = ", ".join(f'"{k}"' for k in (schema.date_column, *schema.key)
                          if k in schema.column_names)
        if not self.exists():  # no file, no table: a read never creates the warehouse
            return _empty(schema)
        with self._connect(read_only=True) as con:
            if not self._exists(con, schema.name):
                return _empty(schema)
            try:
                frame = con.execute(f'SELECT {cols} FROM "{schema.name}"{where} ORDER BY {order}', params).df()
            except duckdb.BinderException:  # checked only on failure: a read that works costs nothing more
                require_columns(schema, self._columns(con, schema.name))
                raise
        return _typed(schema, frame)

    def write(self, schema: TableSchema, frame: pd.DataFrame, rebuild: Rebuild | None = None) -> int:
        frame = check_frame(schema, frame)
        keys = ", ".join(f'"{k}"' for k in schema.key)
        superseded = f"({keys}) IN (SELECT ({keys}) FROM staged)"
        if rebuild is not None:
            superseded += " OR " + rebuild.condition(schema, "staged", lambda name: f'"{name}"')
        cols = ", ".join(f'"{c}"' for c in schema.column_names)
        with _WRITE_LOCKS_GUARD:
            lock = _WRITE_LOCKS.setdefault(self.path.resolve(), threading.Lock())
        with lock, self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(create_table_sql(schema))
                _migrate(con, schema, missing_columns(schema, self._columns(con, schema.name)))
                con.register("staged", frame)
                con.execute(f'DELETE FROM "{schema.name}" WHERE {superseded}')
                con.execute(f'INSERT INTO "{schema.name}" ({cols}) SELECT {cols} FROM staged')
                con.execute("COMMIT")
            except duckdb.IOException as exc:  # a full disk, a file past its size limit: the OS refused a write
                con.execute("ROLLBACK")
                cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise WarehouseError(f"{schema.name}: {len(frame)} row(s) could not be written to {self.url} "
                                     f"({cause}); the write was rolled back, nothing of it is stored") from None
            except Exception:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("staged")
        return len(frame)

    def count(self, schema: TableSchema) -> int:
        if not self.exists():
            return 0
        with self._connect(read_only=True) as con:
            if not self._exists(con, schema.name):
                return 0
            return int(con.execute(f'SELECT count(*) FROM "{schema.name}"').fetchone()[0])

