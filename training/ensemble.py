"""Ensemble V1: a weighted mean of the other systems, weights fitted on validation predictions only.

The weights are searched on a grid over the simplex (steps of 0.05) for the lowest validation MAE:
a handful of members needs no solver, and the result is easy to read in the MLflow UI.
"""

from __future__ import annotations

import itertools

import numpy as np

from contracts import ENSEMBLE_V1
from training.metrics import mae

NAME = ENSEMBLE_V1
KIND = "ensemble"
STEP = 0.05


def fit_weights(val_predictions: dict[str, np.ndarray], actual: np.ndarray) -> dict[str, float]:
    names = sorted(val_predictions)
    units = round(1 / STEP)
    best: tuple[float, tuple[int, ...]] = (np.inf, ())
    for split in itertools.product(range(units + 1), repeat=len(names) - 1):
        if sum(split) > units:
            continue
        shares = (*split, units - sum(split))
        pred = sum(share / units * val_predictions[name] for share, name in zip(shares, names, strict=True))
        best = min(best, (mae(actual, pred), shares))
    return {name: share / units for name, share in zip(names, best[1], strict=True)}


def predict(weights: dict[str, float], predictions: dict[str, np.ndarray]) -> np.ndarray:
    return sum(weight * predictions[name] for name, weight in weights.items())
