"""The baseline every model must beat: the best of the player's rolling points averages.

Which average (last 5, last 10, season, exponentially weighted) is chosen on validation; where it
is null (a debut) the next best one stands in, and the training mean where all are null.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts import MOVING_AVERAGE
from training.metrics import mae
from training.splits import Splits

NAME = MOVING_AVERAGE
KIND = "moving_average"
CANDIDATES = ("points_avg_last_5", "points_avg_last_10", "points_avg_season", "points_ewm_10")


@dataclass
class MovingAverage:
    columns: list[str]  # best first
    fallback: float
    val_mae_by_column: dict[str, float]

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        pred = np.full(len(x), np.nan)
        for column in self.columns:
            pred = np.where(np.isnan(pred), x[column].to_numpy(float), pred)
        return np.where(np.isnan(pred), self.fallback, pred)


def fit(splits: Splits) -> MovingAverage:
    val, actual = splits.x("val"), splits.y("val")
    scores = {}
    for column in CANDIDATES:
        known = val[column].notna().to_numpy()
        scores[column] = mae(actual[known], val[column].to_numpy(float)[known])
    return MovingAverage(sorted(CANDIDATES, key=scores.__getitem__), float(np.mean(splits.y("train"))), scores)


def predict(model: MovingAverage, x: pd.DataFrame) -> np.ndarray:
    return model.predict(x)


def save(model: MovingAverage, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    return {"kind": KIND, "columns": model.columns, "fallback": model.fallback}


def importances(model: MovingAverage) -> dict[str, float]:
    """Not a learned model: 1 for the average it uses first, 0 elsewhere."""
    return {column: float(column == model.columns[0]) for column in CANDIDATES}
