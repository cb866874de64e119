"""Grading of stored predictions: actual points and error, void for who did not play, win/loss/push."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from contracts import BOX_SCORES_SCHEMA, DATA_CHECKS_SCHEMA, PREDICTION_GRADES_SCHEMA, PREDICTIONS_SCHEMA
from markets import MARKETS
from monitoring.grading import grade, grade_days
from monitoring.metrics import group_metrics
from registry import probability
from registry.predictions import priced
from training.metrics import line_metrics

DAY = dt.date(2025, 1, 10)
NOW = pd.Timestamp("2025-01-11 08:00", tz="UTC")


def predictions(rows: list[tuple]) -> pd.DataFrame:
    """(game_id, player_id, predicted, line, p_over, call) -> points rows of player_prop_predictions."""
    frame = pd.DataFrame(rows, columns=["game_id", "player_id", "predicted_points", "line", "p_over",
                                        "recommendation"])
    return frame.assign(game_date=DAY, market="points", system="xgboost_v1", model_version="3",
                        p_push=0.0, p_under=1 - frame["p_over"], confidence=np.nan,
                        source="test", created_at=NOW)[PREDICTIONS_SCHEMA.column_names]


def box(rows: list[tuple]) -> pd.DataFrame:
    """(game_id, player_id, points) -> box-score rows of ``DAY``."""
    frame = pd.DataFrame(rows, columns=["game_id", "player_id", "points"])
    stats = {c: 20 for c in BOX_SCORES_SCHEMA.column_names if c not in frame and c not in
             ("player_name", "game_date", "season", "team", "opponent", "is_home", "win")}
    return frame.assign(player_name="x", game_date=DAY, season="2024-25", team="BOS", opponent="NYK", is_home=True,
                        win=True, **stats)[BOX_SCORES_SCHEMA.column_names]


PREDICTED = predictions([
    ("G1", 1, 21.0, 18.5, 0.62, "OVER"),     # scores 20: win, error 1
    ("G1", 2, 10.0, 12.5, 0.40, "UNDER"),    # scores 13: loss, error 3
    ("G1", 3, 16.0, 15.0, 0.55, "OVER"),     # scores 15 = line: push, error 1
    ("G1", 4, 8.0, np.nan, np.nan, "PASS"),  # no line, scores 13: error 5
    ("G1", 5, 12.0, 11.5, 0.51, "PASS"),     # no box-score row: did not play -> void
    ("G2", 6, 25.0, 24.5, 0.55, "OVER"),     # G2 has no results yet -> not graded
])
RESULTS = box([("G1", 1, 20), ("G1", 2, 13), ("G1", 3, 15), ("G1", 4, 13), ("G2", 6, 30)])


def test_grades_error_void_and_over_under_against_the_prediction_line() -> None:
    grades = grade(PREDICTED, RESULTS, games_with_results={"G1"}, graded_at=NOW).set_index("player_id")
    assert list(grades.index) == [1, 2, 3, 4, 5]  # G2 waits for its results
    assert list(grades["outcome"]) == ["graded"] * 4 + ["void"]
    assert grades.loc[[1, 2, 3, 4], "actual_points"].tolist() == [20, 13, 15, 13]
    assert grades.loc[[1, 2, 3, 4], "abs_error"].tolist() == [1, 3, 1, 5]
    assert grades["ou_result"].fillna("none").tolist() == ["win", "loss", "push", "none", "none"]
    assert np.isnan(grades.loc[5, "actual_points"]) and np.isnan(grades.loc[5, "abs_error"])
    assert grades.loc[1, "line"] == 18.5 and grades.loc[1, "p_over"] == 0.62
    metrics = group_metrics(grades.reset_index())
    assert metrics["mae"] == 2.5 and metrics["n_void"] == 1 and metrics["n_graded"] == 4
    assert metrics["hit_rate"] == 50.0 and metrics["n_calls"] == 2 and metrics["n_pushes"] == 1


def test_grading_twice_changes_nothing_and_held_days_wait(warehouse) -> None:
    warehouse.write(PREDICTIONS_SCHEMA, PREDICTED)
    warehouse.write(BOX_SCORES_SCHEMA, RESULTS)
    earlier = pd.Timestamp("2025-01-11 06:00", tz="UTC")
    warehouse.write(PREDICTION_GRADES_SCHEMA, grade(PREDICTED, RESULTS, {"G1", "G2"}, graded_at=earlier))
    stored = warehouse.read(PREDICTION_GRADES_SCHEMA)
    assert len(grade_days(warehouse, DAY, DAY)) == 6  # G2 has a box score here: graded too
    again = warehouse.read(PREDICTION_GRADES_SCHEMA)
    pd.testing.assert_frame_equal(again, stored)  # graded_at too: the same grades are not rewritten
    assert (again["graded_at"] == earlier).all() and len(again) == 6

    checks = pd.DataFrame({"game_date": [DAY], "status": ["held"], "problems": ["BOS 160 of 240 minutes"],
                           "checked_at": [NOW]})
    warehouse.write(DATA_CHECKS_SCHEMA, checks)
    assert grade_days(warehouse, DAY, DAY).empty  # an incomplete day would void everyone missing from it


def test_real_day_grades_every_prediction_and_agrees_with_training_metrics(box_2024_25, lines_2024_25) -> None:
    """Three real game days, predicted by each player's mean of his previous 10 games, with the
    shipped lines: one player who did not play is void, one game without results waits."""
    days = [dt.date(2025, 1, 10), dt.date(2025, 1, 11), dt.date(2025, 1, 12)]
    history = box_2024_25.sort_values(["player_id", "game_date"])
    history = history.assign(predicted=history.groupby("player_id")["points"].transform(
        lambda p: p.astype(float).shift().rolling(10, min_periods=1).mean()))
    played = history[history["game_date"].isin(days) & history["predicted"].notna()]
    line = played.merge(lines_2024_25.groupby(["game_date", "player_id"])["line"].median().reset_index(),
                        on=["game_date", "player_id"], how="left")["line"].to_numpy()
    predicted = played["predicted"].to_numpy(float)
    params = probability.fit("normal", played["points"].to_numpy(float), predicted)
    frame = pd.DataFrame({
        "game_date": played["game_date"].to_numpy(), "game_id": played["game_id"].to_numpy(),
        "player_id": played["player_id"].to_numpy(), "market": "points", "system": "moving_average",
        "model_version": "1", "predicted_points": predicted,
        **priced(probability.probabilities(params, predicted, line), line), "source": "test", "created_at": NOW})
    first_game = frame.iloc[0]
    scratch = first_game.copy()
    scratch["player_id"] = 1  # no such player in the box score: did not play
    frame = pd.concat([frame, scratch.to_frame().T], ignore_index=True)
    waiting = sorted(set(played.loc[played["game_date"] == days[-1], "game_id"]))[-1]
    results = set(box_2024_25["game_id"]) - {waiting}

    grades = grade(frame, box_2024_25, results)

    assert len(grades) == len(frame) - int((frame["game_id"] == waiting).sum())
    assert (grades["outcome"] == "void").sum() == 1 and grades["ou_result"].isin(["win", "loss", "push"]).sum() > 100
    graded = grades[grades["outcome"] == "graded"]
    truth = played[played["game_id"] != waiting]
    assert np.isclose(graded["abs_error"].mean(), (truth["points"] - truth["predicted"]).abs().mean())
    check = truth.assign(vegas_points_line=line[(played["game_id"] != waiting).to_numpy()])
    expected = line_metrics(check, check["predicted"].to_numpy(), MARKETS["points"], params)["test_hit_rate"]
    assert np.isclose(group_metrics(grades)["hit_rate"], expected)
