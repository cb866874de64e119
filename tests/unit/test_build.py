"""The feature builder on hand-made frames whose right answers can be worked out by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from contracts import BOX_SCORES_SCHEMA
from features.build import build_features
from features.definitions import FEATURE_NAMES, FEATURE_STORE_SCHEMA, markdown_table
from settings import REPO_ROOT

STATS = [c.name for c in BOX_SCORES_SCHEMA.columns[9:]]


def game(day: int, player: int, team: str, opp: str, home: bool, points: int, minutes: int = 30) -> dict:
    row = dict.fromkeys(STATS, 0)
    row.update(player_id=player, player_name=f"P{player}", game_id=f"00{day:08d}{'H' if home else 'A'}"[:10],
               game_date=dt.date(2024, 11, day), season="2024-25", team=team, opponent=opp, is_home=home,
               win=True, points=points, minutes=minutes, fga=points // 2, fta=2, tov=1, oreb=1)
    return row


def two_team_season() -> pd.DataFrame:
    """Player 1 (BOS) scores 10, 20, 30, 40 on days 1, 2, 4, 9; player 2 (NYK) opposes him."""
    rows = []
    for day, pts in zip((1, 2, 4, 9), (10, 20, 30, 40), strict=True):
        gid = f"00224{day:05d}"
        rows.append({**game(day, 1, "BOS", "NYK", True, pts), "game_id": gid})
        rows.append({**game(day, 2, "NYK", "BOS", False, 12), "game_id": gid})
    return pd.DataFrame(rows)


def test_windows_use_only_earlier_games() -> None:
    f = build_features(two_team_season())
    p1 = f[f.player_id == 1].sort_values("game_date")
    assert p1.points_avg_last_5.isna().iloc[0]  # a debut has no history: null, not 0
    assert p1.points_avg_last_5.tolist()[1:] == [10.0, 15.0, 20.0]
    assert p1.points_last_game.tolist()[1:] == [10.0, 20.0, 30.0]
    assert p1.points_std_last_10.tolist()[2] == np.std([10, 20], ddof=1)
    assert p1.games_played_season.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert p1.points.tolist() == [10.0, 20.0, 30.0, 40.0]  # the target is the game's own points


def test_since_returns_the_full_builds_rows_of_those_dates() -> None:
    full = build_features(two_team_season())
    recent = build_features(two_team_season(), since=dt.date(2024, 11, 4))
    expected = full[full.game_date >= dt.date(2024, 11, 4)].reset_index(drop=True)
    assert len(recent) == 4
    pd.testing.assert_frame_equal(recent, expected)  # computed from the whole history, not from day 4 on


def test_rest_back_to_back_and_fatigue() -> None:
    p1 = build_features(two_team_season()).query("player_id == 1").sort_values("game_date")
    assert p1.days_rest.isna().iloc[0] and p1.days_rest.tolist()[1:] == [1.0, 2.0, 5.0]
    assert p1.is_back_to_back.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert p1.games_last_7_days.tolist() == [0.0, 1.0, 2.0, 2.0]  # day 9 sees days 2..8: days 2 and 4
    assert p1.minutes_last_7_days.tolist() == [0.0, 30.0, 60.0, 60.0]
    assert p1.fatigue_score.iloc[1] == 40 + 30 * 1 / 4 + 30 * 30 / 160


def test_opponent_defensive_rating_is_points_allowed_per_100_possessions() -> None:
    f = build_features(two_team_season())
    # BOS (player 1) allowed 12 points per game on NYK possessions 6 + 0.88 - 1 + 1 = 6.88
    nyk_side = f[(f.player_id == 2)].sort_values("game_date")
    assert np.isclose(nyk_side.opponent_team_defensive_rating.iloc[1], 100 * 12 / 6.88)
    assert np.isnan(nyk_side.opponent_team_defensive_rating.iloc[0])


def test_missing_inputs_are_null_and_counted_never_filled() -> None:
    f = build_features(two_team_season())
    debut = f[(f.player_id == 1)].sort_values("game_date").iloc[0]
    nulls = [name for name in FEATURE_NAMES if pd.isna(debut[name])]
    assert "vegas_points_line" in nulls and "points_avg_last_10" in nulls
    assert debut.missing_inputs == len(nulls)
    assert list(f.columns) == FEATURE_STORE_SCHEMA.column_names


def test_a_line_becomes_the_median_over_books() -> None:
    lines = pd.DataFrame({"game_date": [dt.date(2024, 11, 4)] * 4, "player_id": [1, 1, 1, 1],
                          "market": ["points", "points", "points", "rebounds"], "line": [25.5, 26.5, 27.5, 7.5]})
    f = build_features(two_team_season(), lines).set_index(["player_id", "game_date"])
    assert f.loc[(1, dt.date(2024, 11, 4)), "vegas_points_line"] == 26.5
    assert f.loc[(1, dt.date(2024, 11, 4)), "line_minus_points_avg_last_10"] == 26.5 - 15.0
    assert f.loc[(1, dt.date(2024, 11, 4)), "vegas_rebounds_line"] == 7.5  # each market its own line
    assert np.isnan(f.loc[(1, dt.date(2024, 11, 2)), "vegas_points_line"])


def test_docs_list_every_feature() -> None:
    assert markdown_table() in (REPO_ROOT / "docs" / "features.md").read_text()
