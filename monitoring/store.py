"""Writes of monitoring tables that leave a rerun's unchanged rows exactly as they were.

Grades, metrics and alerts carry a timestamp of when they were made. Recomputing a day gives the
same values with a new timestamp; keeping the stored timestamp for rows whose values did not change
means a rerun writes nothing at all, and a row that did change says when it last did.
"""

from __future__ import annotations

import pandas as pd

from contracts import TableSchema
from warehouse import Warehouse


def _same(new: pd.Series, old: pd.Series) -> pd.Series:
    """Equal values, null equal to null (plain ``==`` says NaN != NaN)."""
    new, old = new.astype(object), old.astype(object)
    return (new.isna() & old.isna()) | new.eq(old).fillna(False).astype(bool)


def changed_rows(schema: TableSchema, rows: pd.DataFrame, stored: pd.DataFrame, stamp: str) -> pd.DataFrame:
    """The rows that are new or differ from ``stored`` in anything but ``stamp``."""
    keys = list(schema.key)
    if rows.empty or stored.empty:
        return rows
    stored = stored.drop_duplicates(keys).astype({k: rows[k].dtype for k in keys})
    merged = rows.reset_index(drop=True).merge(stored, on=keys, how="left", suffixes=("", "__stored"),
                                               indicator=True)
    unchanged = merged["_merge"].eq("both")
    for col in schema.column_names:
        if col not in keys and col != stamp:
            unchanged &= _same(merged[col], merged[f"{col}__stored"])
    return rows.reset_index(drop=True)[~unchanged.to_numpy()]


def write_changed(warehouse: Warehouse, schema: TableSchema, rows: pd.DataFrame, stamp: str) -> int:
    """Upsert the rows that are new or changed (by key); returns how many were written."""
    if rows.empty:
        return 0
    dates = pd.to_datetime(rows[schema.date_column]).dt.date
    stored = warehouse.read(schema, date_range=(dates.min(), dates.max()))
    fresh = changed_rows(schema, rows, stored, stamp)
    return warehouse.write(schema, fresh) if len(fresh) else 0
