"""Rows of ``player_prop_predictions``: one shape for the backtest, the coordinator and the worker."""

from __future__ import annotations

import numpy as np
import pandas as pd

from contracts import PREDICTIONS_SCHEMA


def recommendation(predicted: np.ndarray, line: np.ndarray) -> np.ndarray:
    """OVER when the prediction is above the line, UNDER below, PASS when equal or no line."""
    predicted, line = np.asarray(predicted, float), np.asarray(line, float)
    return np.where(np.isnan(line) | (predicted == line), "PASS", np.where(predicted > line, "OVER", "UNDER"))


def prediction_rows(features: pd.DataFrame, system: str, model_version: str, predicted: np.ndarray,
                    p_over: np.ndarray, source: str, created_at: pd.Timestamp | None = None) -> pd.DataFrame:
    """``features`` supplies the keys and ``vegas_points_line``; ``p_over`` is null where no line.
    ``created_at`` is the writer's clock (a season replay passes the simulated evening, so reruns
    write identical rows); default now."""
    line = features["vegas_points_line"].to_numpy(float)
    return pd.DataFrame({
        "game_date": features["game_date"].to_numpy(), "game_id": features["game_id"].to_numpy(),
        "player_id": features["player_id"].astype("int64").to_numpy(), "system": system,
        "model_version": str(model_version), "predicted_points": np.round(np.asarray(predicted, float), 3),
        "line": line, "recommendation": recommendation(predicted, line),
        "p_over": np.where(np.isnan(line), np.nan, np.round(np.asarray(p_over, float), 4)),
        "source": source, "created_at": created_at if created_at is not None else pd.Timestamp.now(tz="UTC").floor("s"),
    })[PREDICTIONS_SCHEMA.column_names]


