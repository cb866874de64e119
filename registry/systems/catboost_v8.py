"""CatBoost V8: ordered boosting on the 33 features with an MAE loss (the old production champion)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from catboost import CatBoostRegressor

from contracts import CATBOOST_V8

if TYPE_CHECKING:
    from training.splits import Splits

NAME = CATBOOST_V8
KIND = "catboost"
TUNED = True
COMBINES = False
ABSTAINS = False
MAX_ITERATIONS = 2000
EARLY_STOP = 50
REPORT_EVERY = 10
MODEL_FILE = "model.cbm"


class _Report:
    """CatBoost's per-iteration hook: hands the validation MAE to the tuner, and stops the fit
    (returning False) when the tuner raised; the exception is re-raised after ``fit`` returns
    (CatBoost would swallow it)."""

    def __init__(self, report: Callable[[int, float], None]) -> None:
        self.report = report
        self.stopped: Exception | None = None

    def after_iteration(self, info: Any) -> bool:
        if info.iteration % REPORT_EVERY == 0:
            try:
                self.report(info.iteration, info.metrics["validation"]["MAE"][-1])
            except Exception as stop:  # the tuner's TrialPruned: this module does not import the tuner
                self.stopped = stop
                return False
        return True


def fit(params: dict[str, Any], splits: Splits, seed: int, report: Callable[[int, float], None] | None = None,
        members: Mapping[str, Any] | None = None) -> CatBoostRegressor:
    model = CatBoostRegressor(iterations=MAX_ITERATIONS, loss_function="MAE", eval_metric="MAE",
                              early_stopping_rounds=EARLY_STOP, random_seed=seed, thread_count=2,
                              verbose=0, allow_writing_files=False, **params)
    hook = _Report(report) if report else None
    model.fit(splits.x("train"), splits.y("train"), eval_set=(splits.x("val"), splits.y("val")),
              use_best_model=True, callbacks=[hook] if hook else None)
    if hook and hook.stopped:
        raise hook.stopped
    return model


def predict(model: CatBoostRegressor, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x), dtype=float)


def save(model: CatBoostRegressor, folder: Path) -> dict[str, Any]:
    model.save_model(str(folder / MODEL_FILE))
    return {"model_file": MODEL_FILE}


def load(meta: dict[str, Any], folder: Path) -> CatBoostRegressor:
    model = CatBoostRegressor()
    model.load_model(str(folder / meta["model_file"]))
    return model


def importances(model: CatBoostRegressor, splits: Splits) -> dict[str, float]:
    """PredictionValuesChange: how much the prediction moves, on average, with each feature."""
    values = model.get_feature_importance(type="PredictionValuesChange")
    return {name: float(v) for name, v in zip(model.feature_names_, values, strict=True)}
