"""A store written by other code is refused with the rebuild command; a table missing a declared column
is migrated by the next write instead of failing with a database error."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import pytest

from contracts import FEATURE_STORE, FEATURE_VERSION, PLAYER_GAME_COLUMNS, PROP_LINES_SCHEMA
from features.definitions import FEATURE_NAMES, FEATURE_STORE_SCHEMA
from features.store import StaleStoreError, read_store
from markets import MARKETS
from warehouse import Warehouse
from warehouse.base import SchemaMismatch, _typed

NEW_COLUMN = "line_minus_points_avg_last_10"  # a feature as if the code had just added it
OLDER_SCHEMA = dataclasses.replace(FEATURE_STORE_SCHEMA,
                                   columns=tuple(c for c in FEATURE_STORE_SCHEMA.columns if c.name != NEW_COLUMN))
DAYS = (dt.date(2025, 1, 10), dt.date(2025, 1, 12))


def feature_rows(schema=FEATURE_STORE_SCHEMA, version: str = FEATURE_VERSION, first_player: int = 1) -> pd.DataFrame:
    """One row per day of DAYS, every feature 1.0."""
    rows = [{"player_id": first_player + i, "player_name": f"P{i}", "game_id": f"G{i}", "game_date": day,
             "season": "2024-25", "team": "BOS", "opponent": "NYK", **dict.fromkeys(FEATURE_NAMES, 1.0),
             **dict.fromkeys(MARKETS, 2.0), "feature_version": version, "missing_inputs": 0}
            for i, day in enumerate(DAYS)]
    return _typed(schema, pd.DataFrame(rows)[schema.column_names])


def test_rows_of_another_feature_version_stop_the_read_naming_the_rebuild(warehouse: Warehouse) -> None:
    warehouse.write(FEATURE_STORE_SCHEMA, feature_rows(version="v1.9"))
    with pytest.raises(StaleStoreError) as error:
        read_store(warehouse)
    assert str(error.value) == (
        f"{FEATURE_STORE} holds 2 rows of feature version v1.9 between 2025-01-10 and 2025-01-12, and this code "
        f"computes {FEATURE_VERSION}: rebuild them with `python cli.py backfill --start-date 2025-01-10 "
        "--end-date 2025-01-12`")
    assert len(read_store(warehouse, dt.date(2025, 1, 11), dt.date(2025, 1, 11))) == 0  # none in that range


def test_rows_of_this_version_are_read(warehouse: Warehouse) -> None:
    warehouse.write(FEATURE_STORE_SCHEMA, feature_rows())
    assert list(read_store(warehouse)["player_id"]) == [1, 2]


def test_an_older_schema_stops_the_read_naming_the_rebuild(warehouse: Warehouse) -> None:
    warehouse.write(OLDER_SCHEMA, feature_rows(OLDER_SCHEMA))
    with pytest.raises(StaleStoreError) as error:
        read_store(warehouse)
    assert str(error.value) == (
        f"{FEATURE_STORE} was written by an older version of the platform (it lacks {NEW_COLUMN}): rebuild it "
        "with `python cli.py backfill` (add --box-scores and --lines if it was built from other files)")
    with pytest.raises(SchemaMismatch, match=f"lacks column\\(s\\) {NEW_COLUMN}, which this code declares"):
        warehouse.read(FEATURE_STORE_SCHEMA)


def test_a_write_adds_the_missing_column_and_keeps_the_stored_rows(warehouse: Warehouse) -> None:
    warehouse.write(OLDER_SCHEMA, feature_rows(OLDER_SCHEMA))
    assert warehouse.write(FEATURE_STORE_SCHEMA, feature_rows(first_player=10)) == 2  # no BinderException
    stored = warehouse.read(FEATURE_STORE_SCHEMA).set_index("player_id")
    assert list(stored.index) == [1, 10, 2, 11]  # ordered by date, then key
    assert stored.loc[[1, 2], NEW_COLUMN].isna().all()  # the old rows have no value for it: null, not made up
    assert (stored.loc[[10, 11], NEW_COLUMN] == 1.0).all()
    assert warehouse.write(FEATURE_STORE_SCHEMA, feature_rows(first_player=10)) == 2  # migrated once: a rerun is plain
    assert warehouse.count(FEATURE_STORE_SCHEMA) == 4


def test_a_non_null_column_added_later_is_migrated_nullable(warehouse: Warehouse) -> None:
    key_only = dataclasses.replace(FEATURE_STORE_SCHEMA, columns=PLAYER_GAME_COLUMNS)
    warehouse.write(key_only, feature_rows()[key_only.column_names])
    warehouse.write(FEATURE_STORE_SCHEMA, feature_rows(first_player=10))
    stored = warehouse.read(FEATURE_STORE_SCHEMA).set_index("player_id")
    assert stored.loc[[1, 2], "missing_inputs"].isna().all() and list(stored.loc[[10, 11], "missing_inputs"]) == [0, 0]


def test_a_key_column_added_later_rebuilds_the_key_and_fills_its_default(warehouse: Warehouse) -> None:
    """``prop_lines`` as stored before markets (no ``market``, keyed without it): the next write makes the
    table anew with the declared key, the stored lines become points lines, and a rebounds line of the
    same player, date and book now lives beside them."""
    before = dataclasses.replace(PROP_LINES_SCHEMA, columns=tuple(c for c in PROP_LINES_SCHEMA.columns
                                                                  if c.name != "market"),
                                 key=("game_date", "player_id", "bookmaker"))
    line = {"game_date": DAYS[0], "player_id": 1, "player_name": "A", "bookmaker": "dk", "line": 20.5,
            "over_price": -110, "under_price": -110, "team": "BOS", "opponent": "NYK",
            "commence_time": pd.Timestamp("2025-01-11T00:00Z")}
    warehouse.write(before, pd.DataFrame([line]))
    warehouse.write(PROP_LINES_SCHEMA, pd.DataFrame([{**line, "market": "rebounds", "line": 7.5}]))
    stored = warehouse.read(PROP_LINES_SCHEMA)
    assert stored[["market", "line"]].values.tolist() == [["points", 20.5], ["rebounds", 7.5]]
