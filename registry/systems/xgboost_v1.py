"""XGBoost V1: gradient-boosted trees on the 33 features, absolute-error objective.

The objective is MAE itself (slower to fit than squared error, but it is what the platform is
judged on); early stopping and Optuna pruning both watch the validation MAE.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xgboost as xgb

from contracts import XGBOOST_V1

if TYPE_CHECKING:
    from training.splits import Splits

NAME = XGBOOST_V1
KIND = "xgboost"
TUNED = True
COMBINES = False
ABSTAINS = False
MAX_ROUNDS = 2000
EARLY_STOP = 50
REPORT_EVERY = 10
MODEL_FILE = "model.json"
# From this many rows a served model predicts on two threads: 500 rows take 0.46 ms instead of 0.80
# on the 2-core machine. Fewer rows gain nothing from a second thread, and the one-row requests of
# many clients at once are spread over the worker's processes instead.
PARALLEL_ROWS = 256
BATCH_THREADS = 2
_BATCH_COPIES: weakref.WeakKeyDictionary[xgb.Booster, xgb.Booster] = weakref.WeakKeyDictionary()


class _Report(xgb.callback.TrainingCallback):
    """Hands the validation MAE to the tuner every few rounds; the tuner may stop the trial."""

    def __init__(self, report: Callable[[int, float], None]) -> None:
        self.report = report

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        if epoch % REPORT_EVERY == 0:
            self.report(epoch, evals_log["val"]["mae"][-1])
        return False


def fit(params: dict[str, Any], splits: Splits, seed: int, report: Callable[[int, float], None] | None = None,
        members: Mapping[str, Any] | None = None) -> xgb.Booster:
    train = xgb.DMatrix(splits.x("train"), splits.y("train"))
    val = xgb.DMatrix(splits.x("val"), splits.y("val"))
    booster = xgb.train(
        {"objective": "reg:absoluteerror", "eval_metric": "mae", "tree_method": "hist", "nthread": 2,
         "seed": seed, **params},
        train, MAX_ROUNDS, evals=[(val, "val")], early_stopping_rounds=EARLY_STOP, verbose_eval=False,
        callbacks=[_Report(report)] if report else None)
    # keep only the rounds up to the best one, so every later predict uses the early-stopped model
    return booster[: booster.best_iteration + 1]


def predict(model: xgb.Booster, x: np.ndarray) -> np.ndarray:
    """Columns in training order. The rows go in as float32, which XGBoost compares its splits in
    anyway (the same predictions, without its own conversion of a float64 copy)."""
    if len(x) >= PARALLEL_ROWS:
        model = _BATCH_COPIES.get(model, model)
    return np.asarray(model.inplace_predict(np.asarray(x, dtype=np.float32)), dtype=float)


def save(model: xgb.Booster, folder: Path) -> dict[str, Any]:
    model.save_model(str(folder / MODEL_FILE))
    return {"model_file": MODEL_FILE}


def load(meta: dict[str, Any], folder: Path) -> xgb.Booster:
    model = xgb.Booster()
    model.load_model(str(folder / meta["model_file"]))
    # a one-thread model for the small requests many clients send at once (no oversubscription),
    # and its two-thread copy for batches of PARALLEL_ROWS or more
    batches = model.copy()
    batches.set_param({"nthread": BATCH_THREADS})
    model.set_param({"nthread": 1})
    _BATCH_COPIES[model] = batches
    return model


def importances(model: xgb.Booster, splits: Splits) -> dict[str, float]:
    """Total gain per feature (features never split on get 0)."""
    gain = model.get_score(importance_type="total_gain")
    return {name: float(gain.get(name, 0.0)) for name in model.feature_names}
