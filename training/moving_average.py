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
from features.definitions import FEATURE_NAMES
from registry.points_model import Bundle
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
        """The registered model's own arithmetic (``registry.points_model``), so training and
        serving cannot disagree on the fallback order."""
        meta = {**save(self, None), "features": list(FEATURE_NAMES)}
        return Bundle(meta, None, {}).predict(x)


def fit(splits: Splits) -> MovingAverage:
    val, actual = splits.x("val"), splits.y("val")
    scores = {}
    for column in CANDIDATES:
        known = val[column].notna().to_numpy()
        scores[column] = mae(actual[known], val[column].to_numpy(float)[known])
    return MovingAverage(sorted(CANDIDATES, key=scores.__getitem__), float(np.mean(splits.y("train"))), scores)


def predict(model: MovingAverage, x: pd.DataFrame) -> np.ndarray:
    return model.predict(x)


def save(model: MovingAverage, folder: Path | None) -> dict[str, Any]:
    """The bundle meta of this baseline (it has no model file; ``folder`` is created when given)."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    return {"kind": KIND, "columns": model.columns, "fallback": model.fallback}


def importances(model: MovingAverage) -> dict[str, float]:
    """Not a learned model: 1 for the average it uses first, 0 elsewhere."""
    return {column: float(column == model.columns[0]) for column in CANDIDATES}
