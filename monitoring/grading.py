"""Grading: what each stored prediction turned out to be worth once its game has results.

A prediction is graded only when its game has results; until then it is simply not graded yet (a
later run grades it). A player with no box-score row in a game that has results did not play: the
prediction is void, neither an error nor a miss, so a late scratch never inflates the MAE. The
over/under call is judged against the line the prediction was made with (the prediction row's own
``line``), not a line posted later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

from contracts import (
    BOX_SCORES_SCHEMA,
    DATA_CHECKS_SCHEMA,
    GRADED,
    LOSS,
    PREDICTION_GRADES_SCHEMA,
    PREDICTIONS_SCHEMA,
    PUSH,
    VOID,
    WIN,
)
from features.definitions import outcomes
from monitoring.store import write_changed
from warehouse import Warehouse

HELD = "held"  # data_checks.status of a date kept out until fixed or accepted


def ou_results(recommendation: np.ndarray, actual: np.ndarray, line: np.ndarray) -> np.ndarray:
    """win / loss / push of each OVER or UNDER call; None for PASS, no line or no result."""
    recommendation = np.asarray(recommendation, dtype=object)
    actual, line = np.asarray(actual, float), np.asarray(line, float)
    called = np.isin(recommendation, ("OVER", "UNDER")) & ~np.isnan(actual) & ~np.isnan(line)
    over = actual > line
    right = np.where(recommendation == "OVER", over, actual < line)
    result = np.where(actual == line, PUSH, np.where(right, WIN, LOSS)).astype(object)
    result[~called] = None
    return result


def grade(predictions: pd.DataFrame, box_scores: pd.DataFrame, games_with_results: Iterable[str],
          graded_at: pd.Timestamp | None = None) -> pd.DataFrame:
    """``prediction_grades`` rows for the predictions whose game is in ``games_with_results``.

    ``box_scores`` must hold every player row of those games (a missing row means did not play).
    """
    finished = predictions[predictions["game_id"].isin(set(games_with_results))].reset_index(drop=True)
    played = box_scores.drop_duplicates(["game_id", "player_id"])
    actuals = (pd.concat([played[["game_id", "player_id"]], outcomes(played)], axis=1)
               .melt(id_vars=["game_id", "player_id"], var_name="market", value_name="actual")
               .astype({"player_id": "int64", "actual": "float64"}))
    rows = finished.astype({"player_id": "int64"}).merge(actuals, on=["game_id", "player_id", "market"], how="left")
    actual = rows["actual"].to_numpy(float)
    predicted = rows["predicted_points"].to_numpy(float)
    return pd.DataFrame({
        **{col: rows[col] for col in ("game_date", "game_id", "player_id", "market", "system", "model_version")},
        "outcome": np.where(np.isnan(actual), VOID, GRADED),
        "predicted_points": predicted,
        "actual_points": actual,
        "abs_error": np.abs(actual - predicted),
        "line": rows["line"].to_numpy(float),
        "recommendation": rows["recommendation"],
        "ou_result": ou_results(rows["recommendation"].to_numpy(), actual, rows["line"].to_numpy(float)),
        "p_over": rows["p_over"].to_numpy(float),
        "graded_at": graded_at or pd.Timestamp.now(tz="UTC").floor("s"),
    })[PREDICTION_GRADES_SCHEMA.column_names]


def games_with_results(box_scores: pd.DataFrame, checks: pd.DataFrame) -> set[str]:
    """Games in the box scores, except those of dates the upstream checks hold back: an incomplete
    day would otherwise grade every player missing from it as void."""
    held = set(checks.loc[checks["status"] == HELD, "game_date"])
    return set(box_scores.loc[~box_scores["game_date"].isin(held), "game_id"])


def grade_days(warehouse: Warehouse, start: dt.date, end: dt.date, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Grade every stored prediction of ``start`` … ``end`` whose game has results and store the
    grades by key (a rerun writes nothing new); returns the grades. ``now`` is the caller's clock."""
    predictions = warehouse.read(PREDICTIONS_SCHEMA, date_range=(start, end))
    box_scores = warehouse.read(BOX_SCORES_SCHEMA, date_range=(start, end))
    checks = warehouse.read(DATA_CHECKS_SCHEMA, date_range=(start, end))
    grades = grade(predictions, box_scores, games_with_results(box_scores, checks), now)
    write_changed(warehouse, PREDICTION_GRADES_SCHEMA, grades, stamp="graded_at")
    return grades
