"""XGBoost V1: gradient-boosted trees on the 33 features, absolute-error objective.

The objective is MAE itself (slower to fit than squared error, but it is what the platform is
judged on); early stopping and Optuna pruning both watch the validation MAE.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import xgboost as xgb

from contracts import XGBOOST_V1
from training.splits import Splits

NAME = XGBOOST_V1
KIND = "xgboost"
MAX_ROUNDS = 2000
EARLY_STOP = 50
REPORT_EVERY = 10
DEFAULTS = {"eta": 0.05, "max_depth": 6, "min_child_weight": 20.0, "subsample": 0.8,
            "colsample_bytree": 0.8, "lambda": 1.0}


def search_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "eta": trial.suggest_float("eta", 0.02, 0.2, log=True),
        "max_depth": trial.suggest_int("max_depth", 3, 8),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 100.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
        "lambda": trial.suggest_float("lambda", 1e-3, 10.0, log=True),
    }


class _Report(xgb.callback.TrainingCallback):
    """Hands the validation MAE to the tuner every few rounds; the tuner may stop the trial."""

    def __init__(self, report: Callable[[int, float], None]) -> None:
        self.report = report

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        if epoch % REPORT_EVERY == 0:
            self.report(epoch, evals_log["val"]["mae"][-1])
        return False


def fit(params: dict[str, Any], splits: Splits, seed: int,
        report: Callable[[int, float], None] | None = None) -> xgb.Booster:
    train = xgb.DMatrix(splits.x("train"), splits.y("train"))
    val = xgb.DMatrix(splits.x("val"), splits.y("val"))
    booster = xgb.train(
        {"objective": "reg:absoluteerror", "eval_metric": "mae", "tree_method": "hist", "nthread": 2,
         "seed": seed, **params},
        train, MAX_ROUNDS, evals=[(val, "val")], early_stopping_rounds=EARLY_STOP, verbose_eval=False,
        callbacks=[_Report(report)] if report else None)
    # keep only the rounds up to the best one, so every later predict uses the early-stopped model
    return booster[: booster.best_iteration + 1]


def predict(model: xgb.Booster, x: pd.DataFrame) -> np.ndarray:
    return model.predict(xgb.DMatrix(x))


def save(model: xgb.Booster, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_model(str(folder / "model.json"))
    return {"kind": KIND, "model_file": "model.json"}


def importances(model: xgb.Booster) -> dict[str, float]:
    """Total gain per feature (features never split on get 0)."""
    gain = model.get_score(importance_type="total_gain")
    return {name: float(gain.get(name, 0.0)) for name in model.feature_names}
