"""A backfill never removes a row it did not rebuild, and writes only what its box scores cover.

Real 2024-25 box scores, cut at a date so that the later games are "not played yet": the slate rows
the coordinator stores for them must survive backfills until their own box scores arrive.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from contracts import BOX_SCORES_SCHEMA
from features.backfill import backfill
from features.definitions import FEATURE_STORE_SCHEMA
from features.slate import build_slate
from tests.conftest import SEASON_2024_25
from warehouse import Warehouse, connect
from warehouse.ingest import InputError

NOV_10, NOV_11, NOV_20, JAN_10 = (dt.date(2024, 11, 10), dt.date(2024, 11, 11), dt.date(2024, 11, 20),
                                  dt.date(2025, 1, 10))


@pytest.fixture(scope="module")
def season() -> pd.DataFrame:
    return pd.read_csv(SEASON_2024_25, dtype=str)


def box_until(season: pd.DataFrame, last: dt.date, folder: Path) -> Path:
    """The real box scores up to ``last``, as a user's file: the games after it are not played yet."""
    path = folder / f"box_until_{last}.csv"
    season[season["GAME_DATE"] <= str(last)].to_csv(path, index=False)
    return path


def scheduled(season: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """The real games of ``day`` as the schedule gives them: both sides, with the real game ids."""
    games = season[season["GAME_DATE"] == str(day)].drop_duplicates(["GAME_ID", "TEAM_ABBREVIATION"])
    return pd.DataFrame({"game_date": day, "game_id": games["GAME_ID"].str.zfill(10),
                         "team": games["TEAM_ABBREVIATION"], "opponent": games["MATCHUP"].str[-3:],
                         "is_home": games["MATCHUP"].str.contains("vs.")})


def store_slate(warehouse: Warehouse, slate: pd.DataFrame) -> pd.DataFrame:
    """What the coordinator does with a slate: build its feature rows (target null) and store them."""
    rows = build_slate(warehouse, slate)
    warehouse.write(FEATURE_STORE_SCHEMA, rows)
    return rows


def ordered(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(["game_date", "player_id", "game_id"]).reset_index(drop=True)


def unplayed(warehouse: Warehouse) -> pd.DataFrame:
    stored = warehouse.read(FEATURE_STORE_SCHEMA)
    return ordered(stored[stored["points"].isna()])


def test_slate_rows_survive_backfills_until_their_box_scores_replace_them(
        warehouse: Warehouse, season: pd.DataFrame, tmp_path: Path) -> None:
    played = box_until(season, NOV_10, tmp_path)
    backfill(warehouse, played, None, progress=False)
    idle = sorted(set(season["TEAM_ABBREVIATION"]) - set(season[season["GAME_DATE"] == str(NOV_10)]
                                                          ["TEAM_ABBREVIATION"]))
    # a game added to a night that has box scores (a postponed game moved there): no box score yet
    extra = store_slate(warehouse, pd.DataFrame([{"game_date": NOV_10, "game_id": "0022499999",
                                                  "team": idle[0], "opponent": idle[1], "is_home": True}]))
    tonight = store_slate(warehouse, scheduled(season, NOV_11))
    later = store_slate(warehouse, scheduled(season, NOV_20))
    slate = unplayed(warehouse)
    assert slate["game_date"].value_counts().to_dict() == {NOV_10: len(extra), NOV_11: len(tonight),
                                                           NOV_20: len(later)}
    assert len(extra) > 10 and len(tonight) > 100

    # a rebuild of November with the same box scores: every slate row is still there, unchanged
    backfill(warehouse, played, None, dt.date(2024, 11, 1), dt.date(2024, 11, 30), progress=False)
    pd.testing.assert_frame_equal(unplayed(warehouse), slate)

    # the box scores of Nov 11 arrive: its played rows replace its slate rows (players who sat out
    # leave with them); the store then holds what a fresh backfill gives, plus the other slates
    backfill(warehouse, box_until(season, dt.date(2024, 11, 12), tmp_path), None, progress=False)
    fresh = connect(f"duckdb:///{tmp_path / 'fresh.duckdb'}")
    backfill(fresh, box_until(season, dt.date(2024, 11, 12), tmp_path), None, progress=False)
    expected = pd.concat([fresh.read(FEATURE_STORE_SCHEMA), slate[slate["game_date"] != NOV_11]])
    pd.testing.assert_frame_equal(ordered(warehouse.read(FEATURE_STORE_SCHEMA)), ordered(expected))


class CountingWarehouse:
    """The test's warehouse, recording every feature-store write; an empty one fails at once."""

    def __init__(self, inner: Warehouse) -> None:
        self.inner, self.months = inner, []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def write(self, schema, frame, *args, **kwargs) -> int:
        if schema.name == FEATURE_STORE_SCHEMA.name and frame["points"].notna().any():
            self.months.append(min(frame["game_date"]).strftime("%Y-%m"))
        assert len(frame), f"an empty write to {schema.name}"
        return self.inner.write(schema, frame, *args, **kwargs)


def test_october_box_scores_with_a_range_to_january_touch_only_october(
        warehouse: Warehouse, season: pd.DataFrame, tmp_path: Path) -> None:
    backfill(warehouse, box_until(season, dt.date(2024, 10, 31), tmp_path), None, progress=False)
    store_slate(warehouse, scheduled(season, JAN_10))
    january = unplayed(warehouse)
    assert len(january) > 100 and set(january["game_date"]) == {JAN_10}
    before = warehouse.read(FEATURE_STORE_SCHEMA)
    counting = CountingWarehouse(warehouse)
    summary = backfill(counting, box_until(season, dt.date(2024, 10, 31), tmp_path), None,
                       dt.date(2024, 10, 1), dt.date(2025, 1, 31), progress=False)
    assert counting.months == ["2024-10"]  # November to January have no box scores: never written
    assert (summary.start, summary.end) == (dt.date(2024, 10, 22), dt.date(2024, 10, 31))
    after = warehouse.read(FEATURE_STORE_SCHEMA)
    pd.testing.assert_frame_equal(unplayed(warehouse), january)
    pd.testing.assert_frame_equal(after, before)


@pytest.mark.parametrize("start, end", [(dt.date(1, 1, 1), dt.date(9999, 12, 31)),
                                        (dt.date(1800, 1, 1), None), (None, dt.date(9999, 12, 31))])
def test_an_open_ended_range_is_clipped_to_the_box_scores(
        warehouse: Warehouse, season: pd.DataFrame, tmp_path: Path, start: dt.date | None,
        end: dt.date | None) -> None:
    october = box_until(season, dt.date(2024, 10, 31), tmp_path)
    counting = CountingWarehouse(warehouse)
    summary = backfill(counting, october, None, start, end, progress=False)
    assert counting.months == ["2024-10"]
    assert (summary.start, summary.end) == (dt.date(2024, 10, 22), dt.date(2024, 10, 31))
    reference = connect(f"duckdb:///{tmp_path / 'reference.duckdb'}")
    backfill(reference, october, None, progress=False)
    pd.testing.assert_frame_equal(warehouse.read(FEATURE_STORE_SCHEMA), reference.read(FEATURE_STORE_SCHEMA))


def test_a_range_without_box_scores_is_refused_before_anything_is_written(
        warehouse: Warehouse, season: pd.DataFrame, tmp_path: Path) -> None:
    october = box_until(season, dt.date(2024, 10, 31), tmp_path)
    with pytest.raises(InputError) as refused:
        backfill(warehouse, october, None, dt.date(1800, 1, 1), dt.date(1800, 12, 31), progress=False)
    assert str(refused.value) == ("no box scores between start_date 1800-01-01 and end_date 1800-12-31 "
                                  "(the box scores cover 2024-10-22 .. 2024-10-31)")
    assert warehouse.count(BOX_SCORES_SCHEMA) == 0 and warehouse.count(FEATURE_STORE_SCHEMA) == 0
