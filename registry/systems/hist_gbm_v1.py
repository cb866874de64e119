"""HistGBM V1: scikit-learn's histogram gradient boosting on the 33 features, absolute-error loss.

Early stopping watches the platform's validation split (``X_val``), not a share of the training
rows, like the other systems. scikit-learn has no per-round hook, so Optuna cannot prune a trial
of this system; the early stop bounds each one. The bundle's model file is a pickle: scikit-learn
has no portable format, and the model's requirements pin its version.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.inspection import permutation_importance

from contracts import HIST_GBM_V1

if TYPE_CHECKING:
    from training.splits import Splits

NAME = HIST_GBM_V1
KIND = "hist_gbm"
TUNED = True
COMBINES = False
ABSTAINS = False
MAX_ROUNDS = 2000
EARLY_STOP = 20
IMPORTANCE_ROWS = 1000
MODEL_FILE = "model.pkl"


def fit(params: dict[str, Any], splits: Splits, seed: int, report: Callable[[int, float], None] | None = None,
        members: Mapping[str, Any] | None = None) -> HistGradientBoostingRegressor:
    model = HistGradientBoostingRegressor(loss="absolute_error", max_iter=MAX_ROUNDS, early_stopping=True,
                                          n_iter_no_change=EARLY_STOP, random_state=seed, **params)
    # numpy, not frames: the served model is given matrices, and would warn about missing column names
    x_train, x_val = splits.x("train").to_numpy(dtype=float), splits.x("val").to_numpy(dtype=float)
    # scikit-learn cannot bin a column that is null in every training row (the points line before the
    # seasons that have lines); as a constant it is never split on, so any value it takes later is ignored
    empty = np.isnan(x_train).all(axis=0)
    x_train[:, empty], x_val[:, empty] = 0.0, 0.0
    return model.fit(x_train, splits.y("train"), X_val=x_val, y_val=splits.y("val"))


def predict(model: HistGradientBoostingRegressor, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x), dtype=float)


def save(model: HistGradientBoostingRegressor, folder: Path) -> dict[str, Any]:
    (folder / MODEL_FILE).write_bytes(pickle.dumps(model))
    return {"model_file": MODEL_FILE}


def load(meta: dict[str, Any], folder: Path) -> HistGradientBoostingRegressor:
    return pickle.loads((folder / meta["model_file"]).read_bytes())


def importances(model: HistGradientBoostingRegressor, splits: Splits) -> dict[str, float]:
    """Permutation importance on (a sample of) validation: how much the MAE rises when a feature is
    shuffled (scikit-learn keeps no gain per feature for this model); negative rises count as 0."""
    x_val = splits.x("val")
    rows = np.random.default_rng(0).choice(len(x_val), size=min(len(x_val), IMPORTANCE_ROWS), replace=False)
    found = permutation_importance(model, x_val.to_numpy()[rows], splits.y("val")[rows], n_repeats=1,
                                   random_state=0, scoring="neg_mean_absolute_error")
    return {name: max(float(v), 0.0) for name, v in zip(x_val.columns, found.importances_mean, strict=True)}
