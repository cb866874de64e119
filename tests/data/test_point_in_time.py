"""Leakage: a feature row must be identical whether or not the future exists.

For a sample of game dates D, the store is rebuilt from the box scores with every game on or after
D removed; the games of D come back only as a slate (who plays, where, no outcomes). The rebuilt
rows must equal the rows of the full build.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.definitions import FEATURE_NAMES
from features.slate import build_slate, slate_rows

SAMPLE_DATES = [dt.date(2024, 10, 24), dt.date(2024, 11, 29), dt.date(2024, 12, 25),
                dt.date(2025, 1, 10), dt.date(2025, 3, 3), dt.date(2025, 4, 13)]


@pytest.fixture(scope="module")
def full_build(box_2024_25: pd.DataFrame, lines_2024_25: pd.DataFrame) -> pd.DataFrame:
    return build_features(box_2024_25, lines_2024_25).set_index(["player_id", "game_id"])


@pytest.mark.parametrize("day", SAMPLE_DATES, ids=str)
def test_rows_of_date_d_ignore_every_game_from_d_on(day: dt.date, box_2024_25: pd.DataFrame,
                                                    lines_2024_25: pd.DataFrame, full_build: pd.DataFrame) -> None:
    past = box_2024_25[box_2024_25.game_date < day]
    today = box_2024_25[box_2024_25.game_date == day]
    unplayed = today[["player_id", "player_name", "game_id", "game_date", "season", "team", "opponent",
                      "is_home"]].assign(win=pd.NA)
    rebuilt = build_features(past, lines_2024_25, unplayed).set_index(["player_id", "game_id"])
    rebuilt = rebuilt[rebuilt.game_date == day]
    expected = full_build.loc[rebuilt.index]
    assert len(rebuilt) == len(today) > 0
    assert rebuilt.points.isna().all()  # the outcome is not known yet
    for name in FEATURE_NAMES:
        np.testing.assert_allclose(rebuilt[name].to_numpy(float), expected[name].to_numpy(float),
                                   rtol=0, atol=0, err_msg=name)
    assert (rebuilt.missing_inputs == expected.missing_inputs).all()


@pytest.mark.parametrize("day", [dt.date(2024, 12, 25), dt.date(2025, 4, 13)], ids=str)
def test_rows_built_since_d_equal_the_full_builds(day: dt.date, box_2024_25: pd.DataFrame,
                                                  lines_2024_25: pd.DataFrame, full_build: pd.DataFrame) -> None:
    # since= leaves out every player without a row from D on once the team context is built
    recent = build_features(box_2024_25, lines_2024_25, since=day).set_index(["player_id", "game_id"])
    expected = full_build[full_build.game_date >= day]
    assert len(recent) == len(expected) > 0
    pd.testing.assert_frame_equal(recent, expected, check_exact=True)


def test_slate_defaults_to_the_recent_active_roster(box_2024_25: pd.DataFrame) -> None:
    day = dt.date(2025, 1, 10)
    slate = pd.DataFrame({"game_date": [day], "team": ["BOS"], "opponent": ["SAC"], "is_home": [True]})
    past = box_2024_25[box_2024_25.game_date < day]
    rows = slate_rows(past, slate)
    boston = rows[rows.team == "BOS"]
    last_game = past[(past.team == "BOS") & (past.game_date == past[past.team == "BOS"].game_date.max())]
    assert set(boston.player_id) == set(last_game.player_id) and 1628369 in set(boston.player_id)  # Tatum
    assert boston.is_home.all() and (boston.opponent == "SAC").all() and (boston.season == "2024-25").all()
    # the game was listed from Boston's side only: Sacramento's side is added, away
    sacramento = rows[rows.team == "SAC"]
    assert len(sacramento) and (~sacramento.is_home).all() and set(sacramento.game_id) == set(boston.game_id)


def test_a_slate_game_has_opponent_features_and_the_new_season(box_2024_25: pd.DataFrame) -> None:
    slate = pd.DataFrame({"game_date": ["2025-10-22"], "team": ["BOS"], "opponent": ["CHA"], "is_home": [True]})
    rows = build_features(box_2024_25, None, slate_rows(box_2024_25, slate))
    rows = rows[rows.game_date == dt.date(2025, 10, 22)]
    assert rows.opponent_team_defensive_rating.notna().all() and rows.pace_score.notna().all()
    assert (rows.season == "2025-26").all() and (rows.games_played_season == 0).all()


def test_build_slate_reads_history_from_the_warehouse(warehouse, box_2024_25, lines_2024_25) -> None:
    from contracts import BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA

    warehouse.write(BOX_SCORES_SCHEMA, box_2024_25)
    warehouse.write(PROP_LINES_SCHEMA, lines_2024_25)
    slate = pd.DataFrame({"game_date": ["2025-01-10"], "team": ["BOS"], "opponent": ["SAC"], "is_home": [True],
                          "players": [[1628369]]})
    rows = build_slate(warehouse, slate)
    boston = rows[rows.team == "BOS"]
    assert boston.player_id.tolist() == [1628369] and rows.points.isna().all()
    assert boston.points_avg_last_10.notna().all() and set(rows.game_id) == {"20250110SACBOS"}
