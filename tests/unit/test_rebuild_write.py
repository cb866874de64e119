"""A rebuild write removes only what it rebuilt, on DuckDB and (its script run through DuckDB) BigQuery."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import sqlglot

from contracts import Column, TableSchema
from warehouse import WarehouseError
from warehouse.base import Rebuild, _typed
from warehouse.bigquery_backend import write_script
from warehouse.duckdb_backend import DuckDBWarehouse, create_table_sql

SCHEMA = TableSchema("player_games", (
    Column("player_id", "INT64", False), Column("game_id", "STRING", False), Column("game_date", "DATE", False),
    Column("points", "FLOAT64"),
), ("player_id", "game_id"))
REBUILD = Rebuild(group="game_id", settled="points")
D1, D2 = dt.date(2025, 1, 10), dt.date(2025, 1, 11)


def frame(*rows: tuple[int, str, dt.date, float | None]) -> pd.DataFrame:
    return _typed(SCHEMA, pd.DataFrame(rows, columns=SCHEMA.column_names))


STORED = frame(
    (1, "G1", D1, None),   # slate row of a game now played: the played row replaces it by key
    (2, "G1", D1, None),   # slate row of the same game, a player who did not play: the game was rebuilt
    (3, "G2", D1, None),   # slate row of a game with no box score yet: stays
    (4, "G3", D1, 12.0),   # a played row of a covered date the rebuild no longer has: superseded
    (5, "G4", D2, None),   # slate row of another date: stays
    (6, "G5", D2, 30.0),   # played row of a date the rebuild does not cover: stays
)
NEW = frame((1, "G1", D1, 25.0), (7, "G1", D1, 8.0))
EXPECTED = frame((1, "G1", D1, 25.0), (3, "G2", D1, None), (5, "G4", D2, None), (6, "G5", D2, 30.0),
                 (7, "G1", D1, 8.0))


def sorted_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(["player_id", "game_id"]).reset_index(drop=True)


def test_duckdb_rebuild_replaces_the_rebuilt_games_and_played_rows_only(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    warehouse.write(SCHEMA, STORED)
    warehouse.write(SCHEMA, NEW, rebuild=REBUILD)
    pd.testing.assert_frame_equal(sorted_rows(warehouse.read(SCHEMA)), EXPECTED)
    warehouse.write(SCHEMA, NEW, rebuild=REBUILD)  # a rerun: the same rows, none duplicated
    pd.testing.assert_frame_equal(sorted_rows(warehouse.read(SCHEMA)), EXPECTED)


def test_an_upsert_without_rebuild_replaces_by_key_only(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    warehouse.write(SCHEMA, STORED)
    warehouse.write(SCHEMA, NEW)
    kept = STORED[STORED["player_id"] != 1]
    pd.testing.assert_frame_equal(sorted_rows(warehouse.read(SCHEMA)), sorted_rows(pd.concat([kept, NEW])))


def test_bigquery_script_deletes_the_same_rows_as_duckdb() -> None:
    """BigQuery cannot run here, so its script is transpiled to DuckDB and run on the same rows."""
    con = duckdb.connect()
    con.execute(create_table_sql(SCHEMA))
    con.execute(create_table_sql(TableSchema("staged", SCHEMA.columns, SCHEMA.key)))
    con.register("stored_rows", STORED)
    con.register("new_rows", NEW)
    con.execute(f"INSERT INTO {SCHEMA.name} SELECT * FROM stored_rows")
    con.execute("INSERT INTO staged SELECT * FROM new_rows")
    for statement in sqlglot.parse(write_script(SCHEMA.name, "staged", SCHEMA, REBUILD), read="bigquery"):
        con.execute(statement.sql("duckdb"))
    rows = _typed(SCHEMA, con.execute(f"SELECT * FROM {SCHEMA.name}").df())
    pd.testing.assert_frame_equal(sorted_rows(rows), EXPECTED)


@pytest.mark.parametrize("rebuild", [Rebuild("match_id", "points"), Rebuild("game_id", "pts; DROP TABLE x")])
def test_a_rebuild_by_an_unknown_column_is_refused_naming_it(tmp_path: Path, rebuild: Rebuild) -> None:
    warehouse = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    warehouse.write(SCHEMA, STORED)
    with pytest.raises(WarehouseError, match=r"player_games has no column '(match_id|pts; DROP TABLE x)'"):
        warehouse.write(SCHEMA, NEW, rebuild=rebuild)
    pd.testing.assert_frame_equal(sorted_rows(warehouse.read(SCHEMA)), sorted_rows(STORED))
