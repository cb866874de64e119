"""The baseline every model must beat: the best of the player's rolling averages of the market's outcome.

Which average (last 5, last 10, season, exponentially weighted) is chosen on validation; where it
is null (a debut) the next best one stands in, and the training mean where all are null. Training
and serving predict through the same ``predict``, so they cannot disagree on the fallback order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from contracts import MOVING_AVERAGE

if TYPE_CHECKING:
    from training.splits import Splits

NAME = MOVING_AVERAGE
KIND = "moving_average"
TUNED = False
COMBINES = False
ABSTAINS = False
CANDIDATES = ("{m}_avg_last_5", "{m}_avg_last_10", "{m}_avg_season", "{m}_ewm_10")  # {m}: the market


@dataclass
class MovingAverage:
    columns: list[str]  # best first
    fallback: float
    positions: list[int]  # of ``columns`` in the bundle's feature order


def fit(params: dict[str, Any], splits: Splits, seed: int, report: Callable[[int, float], None] | None = None,
        members: Mapping[str, Any] | None = None) -> MovingAverage:
    """Nothing to tune or seed: the averages are ranked by their validation MAE where they exist."""
    val, actual = splits.x("val"), splits.y("val")
    candidates = [c.format(m=splits.market.name) for c in CANDIDATES]
    scores = {}
    for column in candidates:
        known = val[column].notna().to_numpy()
        scores[column] = float(np.mean(np.abs(actual[known] - val[column].to_numpy(float)[known])))
    columns = sorted(candidates, key=scores.__getitem__)
    features = list(val.columns)
    return MovingAverage(columns, float(np.mean(splits.y("train"))), [features.index(c) for c in columns])


def predict(model: MovingAverage, x: np.ndarray) -> np.ndarray:
    pred = np.full(len(x), np.nan)
    for position in model.positions:  # the chosen average, then the next best where it is null
        pred = np.where(np.isnan(pred), x[:, position], pred)
    return np.where(np.isnan(pred), model.fallback, pred)


def save(model: MovingAverage, folder: Path) -> dict[str, Any]:
    """No model file: the ranking and the fallback are the whole model."""
    return {"columns": model.columns, "fallback": model.fallback}


def load(meta: dict[str, Any], folder: Path) -> MovingAverage:
    return MovingAverage(meta["columns"], meta["fallback"], [meta["features"].index(c) for c in meta["columns"]])


def importances(model: MovingAverage, splits: Splits) -> dict[str, float]:
    """Not a learned model: 1 for the average it uses first, 0 elsewhere."""
    return {column: float(column == model.columns[0]) for column in model.columns}
