"""CatBoost V8: ordered boosting on the 33 features with an MAE loss (the old production champion)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from catboost import CatBoostRegressor

from contracts import CATBOOST_V8
from training.splits import Splits

NAME = CATBOOST_V8
KIND = "catboost"
MAX_ITERATIONS = 2000
EARLY_STOP = 50
REPORT_EVERY = 10
DEFAULTS = {"learning_rate": 0.1, "depth": 6, "l2_leaf_reg": 3.0, "random_strength": 1.0}


def search_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
        "depth": trial.suggest_int("depth", 4, 8),
        "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", 0.5, 30.0, log=True),
        "random_strength": trial.suggest_float("random_strength", 0.1, 5.0, log=True),
    }


class _Report:
    """CatBoost's per-iteration hook: hands the validation MAE to the tuner, and stops the fit
    (returning False) when the tuner raised; the exception is re-raised after ``fit`` returns."""

    def __init__(self, report: Callable[[int, float], None]) -> None:
        self.report = report
        self.stopped: optuna.TrialPruned | None = None

    def after_iteration(self, info: Any) -> bool:
        if info.iteration % REPORT_EVERY == 0:
            try:
                self.report(info.iteration, info.metrics["validation"]["MAE"][-1])
            except optuna.TrialPruned as pruned:
                self.stopped = pruned
                return False
        return True


def fit(params: dict[str, Any], splits: Splits, seed: int,
        report: Callable[[int, float], None] | None = None) -> CatBoostRegressor:
    model = CatBoostRegressor(iterations=MAX_ITERATIONS, loss_function="MAE", eval_metric="MAE",
                              early_stopping_rounds=EARLY_STOP, random_seed=seed, thread_count=2,
                              verbose=0, allow_writing_files=False, **params)
    hook = _Report(report) if report else None
    model.fit(splits.x("train"), splits.y("train"), eval_set=(splits.x("val"), splits.y("val")),
              use_best_model=True, callbacks=[hook] if hook else None)
    if hook and hook.stopped:
        raise hook.stopped
    return model


def predict(model: CatBoostRegressor, x: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict(x), dtype=float)


def save(model: CatBoostRegressor, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_model(str(folder / "model.cbm"))
    return {"kind": KIND, "model_file": "model.cbm"}


def importances(model: CatBoostRegressor) -> dict[str, float]:
    """PredictionValuesChange: how much the prediction moves, on average, with each feature."""
    values = model.get_feature_importance(type="PredictionValuesChange")
    return {name: float(v) for name, v in zip(model.feature_names_, values, strict=True)}
