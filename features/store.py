"""Reading ``ml_feature_store_v2``: the feature rows training, promotion and serving use.

A row is only as good as the code that computed it, so rows written by another ``FEATURE_VERSION``
(each row carries its ``feature_version``), or a table written before a column was declared, are
refused with the command that rebuilds them, never read as if this code had computed them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import pandas as pd

from contracts import FEATURE_STORE, FEATURE_VERSION
from features.definitions import FEATURE_STORE_SCHEMA
from warehouse import Warehouse, WarehouseError
from warehouse.base import SchemaMismatch

REBUILD = "python cli.py backfill"


class StaleStoreError(WarehouseError):
    """The stored feature rows were computed by other code than this; the message names the rebuild."""


def read_store(warehouse: Warehouse, start: dt.date | None = None, end: dt.date | None = None,
               dates: Collection[dt.date] | None = None) -> pd.DataFrame:
    """Feature rows in a date range (all of them by default), or on the given ``dates`` only, every
    one of this ``FEATURE_VERSION``."""
    if dates is not None:
        start, end = min(dates), max(dates)  # the range as well: it lets the store skip whole blocks
    date_range = (start or dt.date(1900, 1, 1), end or dt.date(2999, 12, 31))
    try:
        rows = warehouse.read(FEATURE_STORE_SCHEMA, date_range=date_range, dates=dates)
    except SchemaMismatch as exc:
        raise StaleStoreError(f"{FEATURE_STORE} was written by an older version of the platform (it lacks "
                              f"{', '.join(exc.missing)}): rebuild it with `{REBUILD}` (add --box-scores and "
                              "--lines if it was built from other files)") from None
    stale = rows[rows["feature_version"] != FEATURE_VERSION]
    if len(stale):
        first, last = stale["game_date"].min(), stale["game_date"].max()
        versions = ", ".join(sorted(stale["feature_version"].unique()))
        raise StaleStoreError(f"{FEATURE_STORE} holds {len(stale)} rows of feature version {versions} between "
                              f"{first} and {last}, and this code computes {FEATURE_VERSION}: rebuild them with "
                              f"`{REBUILD} --start-date {first} --end-date {last}`")
    return rows
