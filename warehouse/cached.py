"""A warehouse whose reads of some tables are answered from memory after the first.

A season replay runs some eighty evenings in one process, and each evening's steps (ingest, lines,
feature refresh, slate, grading, monitoring) read the box-score table again: 230k rows of ten
seasons, most of a second a read. Kept in memory, and kept up to date with the rows this object
writes, the table is read once per run. Rows other processes write during the run are not seen,
so it wraps the warehouse of one job's run (a daily run, a replay), never a long-lived server's.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Collection
from contextlib import AbstractContextManager

import pandas as pd

from contracts import TableSchema
from warehouse.base import DateRange, Rebuild, Warehouse, WarehouseError, _typed, check_frame


class CachedTables(Warehouse):
    """``inner`` with the tables of ``schemas`` held in memory: a read filters the held rows the way
    the backend's SQL does (same rows, order, dtypes); every other table is read from ``inner``."""

    def __init__(self, inner: Warehouse, *schemas: TableSchema) -> None:
        self.inner, self.url = inner, inner.url
        self._held: dict[str, pd.DataFrame | None] = {s.name: None for s in schemas}
        self._lock = threading.Lock()

    def _rows(self, schema: TableSchema) -> pd.DataFrame:
        with self._lock:
            if self._held[schema.name] is None:
                self._held[schema.name] = self.inner.read(schema)
            return self._held[schema.name]

    def read(self, schema: TableSchema, date_range: DateRange | None = None,
             equals: dict[str, object] | None = None, dates: Collection[dt.date] | None = None) -> pd.DataFrame:
        if schema.name not in self._held:
            return self.inner.read(schema, date_range, equals, dates)
        rows = self._rows(schema)
        keep, day = pd.Series(True, index=rows.index), rows[schema.date_column]
        if date_range is not None:
            keep &= (day >= _day(date_range[0])) & (day <= _day(date_range[1]))
        if dates is not None:
            keep &= day.isin({_day(d) for d in dates})
        for col, value in (equals or {}).items():
            if col not in schema.column_names:
                raise WarehouseError(f"{schema.name} has no column {col!r}")
            keep &= (rows[col] == value).fillna(False).astype(bool)  # SQL: a null equals nothing
        return rows[keep].reset_index(drop=True)

    def write(self, schema: TableSchema, frame: pd.DataFrame, rebuild: Rebuild | None = None) -> int:
        written = self.inner.write(schema, frame, rebuild)
        if schema.name in self._held:
            with self._lock:
                held = self._held[schema.name]
                if held is not None and rebuild is None:
                    self._held[schema.name] = _upsert(schema, held, check_frame(schema, frame))
                else:  # what a rebuild removes is the backend's to say: read the table again when next asked
                    self._held[schema.name] = None
        return written

    def count(self, schema: TableSchema) -> int:
        return len(self._rows(schema)) if schema.name in self._held else self.inner.count(schema)

    def exists(self) -> bool:
        return self.inner.exists()

    def held_open(self) -> AbstractContextManager[None]:
        return self.inner.held_open()


def _day(value: object) -> dt.date:
    return pd.Timestamp(value).date()


def _upsert(schema: TableSchema, held: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``held`` with ``rows`` written over it by key, in the order a backend read returns."""
    rows = _typed(schema, rows.copy())
    merged = pd.concat([held, rows], ignore_index=True) if len(held) else rows
    merged = merged.drop_duplicates(list(schema.key), keep="last")
    order = [c for c in (schema.date_column, *schema.key) if c in schema.column_names]
    return merged.sort_values(order, kind="stable", ignore_index=True)
