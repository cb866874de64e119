"""The warehouse interface: the few operations the platform needs from a SQL store.

Two backends implement it (DuckDB, the embedded default, and BigQuery) so that every module above
it reads and writes the same tables the same way, whichever the operator points at.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod

import pandas as pd

from contracts import TableSchema

DateRange = tuple[dt.date, dt.date]


class WarehouseError(RuntimeError):
    """A write or read the warehouse refused; the message says which table and why."""


class Warehouse(ABC):
    url: str

    @abstractmethod
    def read(self, schema: TableSchema, date_range: DateRange | None = None,
             equals: dict[str, object] | None = None) -> pd.DataFrame:
        """Rows of a table, optionally within an inclusive date range and matching column values;
        an empty frame with the table's columns when the table does not exist yet."""

    @abstractmethod
    def write(self, schema: TableSchema, frame: pd.DataFrame,
              replace_range: DateRange | None = None) -> int:
        """Store rows in one transaction, replacing what they supersede so a rerun never duplicates.

        With ``replace_range`` every stored row in that date range is replaced (a backfill of those
        dates); otherwise stored rows with the same key are replaced (an upsert).
        """

    @abstractmethod
    def count(self, schema: TableSchema) -> int:
        """Rows in a table (0 when it does not exist)."""


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
