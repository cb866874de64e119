"""The warehouse interface: the few operations the platform needs from a SQL store.

Two backends implement it (DuckDB, the embedded default, and BigQuery) so that every module above
it reads and writes the same tables the same way, whichever the operator points at.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd

from contracts import Column, TableSchema

DateRange = tuple[dt.date, dt.date]


class WarehouseError(RuntimeError):
    """A write or read the warehouse refused; the message says which table and why."""


class SchemaMismatch(WarehouseError):
    """A stored table lacks columns this code declares: an older version wrote it. A write adds them
    (nullable, so the stored rows stay valid); a read cannot make up their values and stops."""

    def __init__(self, table: str, missing: list[str]) -> None:
        super().__init__(f"{table} as stored lacks column(s) {', '.join(missing)}, which this code declares: "
                         "an older version wrote it")
        self.table, self.missing = table, missing


def missing_columns(schema: TableSchema, stored: Iterable[str]) -> list[Column]:
    """The declared columns a stored table does not have, in schema order."""
    present = set(stored)
    return [c for c in schema.columns if c.name not in present]


def require_columns(schema: TableSchema, stored: Iterable[str]) -> None:
    """Refuse to read a stored table that lacks a declared column."""
    missing = missing_columns(schema, stored)
    if missing:
        raise SchemaMismatch(schema.name, [c.name for c in missing])


@dataclass(frozen=True)
class Rebuild:
    """What a write of rebuilt rows supersedes besides the stored rows sharing a key with a new row.

    A rebuild of some dates replaces the stored rows of every ``group`` (a game) it wrote rows of,
    and, on each date it wrote rows of, the stored rows whose ``settled`` column is set (played
    games: their inputs covered that date, so whatever the rebuild left out no longer exists).
    Nothing else goes: a row the rebuild did not cover (another date, or an unsettled row of a
    group it has no rows of, such as a slate game not played yet) is never removed by it.
    """

    group: str
    settled: str

    def condition(self, schema: TableSchema, staged: str, ident: Callable[[str], str]) -> str:
        """The SQL that picks the stored rows superseded by the rows in table ``staged``; column
        names come from ``schema`` only, never from a caller's text."""
        for name in (self.group, self.settled):
            if name not in schema.column_names:
                raise WarehouseError(f"{schema.name} has no column {name!r} to rebuild by")
        group, date, settled = ident(self.group), ident(schema.date_column), ident(self.settled)
        return (f"{group} IN (SELECT {group} FROM {staged}) OR "
                f"({date} IN (SELECT {date} FROM {staged}) AND {settled} IS NOT NULL)")


class Warehouse(ABC):
    url: str

    @abstractmethod
    def read(self, schema: TableSchema, date_range: DateRange | None = None,
             equals: dict[str, object] | None = None, dates: Collection[dt.date] | None = None) -> pd.DataFrame:
        """Rows of a table, optionally within an inclusive date range, on the given ``dates`` only
        (one query for scattered dates, where a range would read every date between) and matching
        column values; an empty frame with the table's columns when the table does not exist yet."""

    @abstractmethod
    def write(self, schema: TableSchema, frame: pd.DataFrame, rebuild: Rebuild | None = None) -> int:
        """Store rows in one transaction, replacing what they supersede so a rerun never duplicates.

        Stored rows with the same key are replaced (an upsert); with ``rebuild`` also the rows it
        describes (a backfill of some dates), and never any other.
        """

    @abstractmethod
    def count(self, schema: TableSchema) -> int:
        """Rows in a table (0 when it does not exist)."""

    @contextmanager
    def held_open(self) -> Iterator[None]:
        """The store kept open for a block of many reads and writes by this process alone, where
        opening it is what each would pay (the embedded DuckDB file); a hosted store has nothing to hold."""
        yield

    def exists(self) -> bool:
        """Whether the store itself is there. A read of a store that is not answers empty without
        creating it, which a long-lived reader (the worker) must tell apart from "no rows yet": a
        deleted file is an outage to report, not an empty season. True for a hosted store."""
        return True


def check_frame(schema: TableSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Columns in schema order, keys unique and present: checked before any write starts."""
    missing = [c for c in schema.column_names if c not in frame.columns]
    if missing:
        raise WarehouseError(f"{schema.name}: rows to write lack column(s) {', '.join(missing)}")
    frame = frame[schema.column_names]
    for col in schema.columns:
        if not col.nullable and frame[col.name].isna().any():
            bad = frame[frame[col.name].isna()].iloc[0]
            raise WarehouseError(
                f"{schema.name}: column {col.name} is null in a row keyed "
                f"{ {k: bad[k] for k in schema.key} }; it may not be null")
    dup = frame.duplicated(list(schema.key), keep=False)
    if dup.any():
        first = frame[dup].iloc[0]
        raise WarehouseError(
            f"{schema.name}: {int(dup.sum())} rows share a key, e.g. "
            f"{ {k: first[k] for k in schema.key} }")
    return frame


def _empty(schema: TableSchema) -> pd.DataFrame:
    return _typed(schema, pd.DataFrame({c: [] for c in schema.column_names}))


def _typed(schema: TableSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """The same pandas dtypes whichever backend returned the rows."""
    for col in schema.columns:
        if col.type == "DATE":
            frame[col.name] = pd.to_datetime(frame[col.name]).dt.date
        elif col.type == "INT64":
            frame[col.name] = frame[col.name].astype("Int64")
        elif col.type == "FLOAT64":
            frame[col.name] = frame[col.name].astype("float64")
        elif col.type == "BOOL":
            frame[col.name] = frame[col.name].astype("boolean")
        elif col.type == "STRING":
            frame[col.name] = frame[col.name].astype("object")
    return frame
