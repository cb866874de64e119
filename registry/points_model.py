"""The one model format every prediction system is registered in.

A system is saved as a *bundle*: a folder with ``meta.json`` (system, kind, feature list, the
validation residual distribution) and its native model file; an ensemble's bundle holds its members'
bundles. MLflow stores the bundle as the artifact of a pyfunc ``PointsModel``, so the registry,
``mlflow models serve`` and the worker all load any system the same way, and the worker never needs
the training code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

META = "meta.json"
PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_model.py")
QUANTILES = np.linspace(0.0, 1.0, 101)


@dataclass
class Bundle:
    """A loaded system: what it needs as input and how it predicts."""

    meta: dict[str, Any]
    model: Any
    members: dict[str, Bundle]

    @property
    def features(self) -> list[str]:
        return self.meta["features"]

    def predict(self, frame: pd.DataFrame, known: dict[tuple[str, str], np.ndarray] | None = None) -> np.ndarray:
        """Predicted points per row of a frame holding (at least) this bundle's features."""
        return self.predict_matrix(frame[self.features].to_numpy(dtype=float), self.features, known)

    def predict_matrix(self, x: np.ndarray, columns: list[str],
                       known: dict[tuple[str, str], np.ndarray] | None = None) -> np.ndarray:
        """Predicted points per row of a float matrix whose columns are named by ``columns``.
        ``known`` holds predictions already made for these rows by (system, version): an ensemble
        reuses those of its members instead of predicting twice."""
        kind = self.meta["kind"]
        if kind == "ensemble":
            known = known or {}
            versions = self.meta.get("member_versions", {})
            total = np.zeros(len(x))
            for name, member in self.members.items():
                reused = known.get((name, str(versions.get(name))))
                total += self.meta["weights"][name] * (
                    reused if reused is not None else member.predict_matrix(x, columns, known))
            return total
        features = self.features
        if list(columns) != features:
            x = x[:, [columns.index(f) for f in features]]
        if kind == "moving_average":
            pred = np.full(len(x), np.nan)
            for column in self.meta["columns"]:  # the chosen average, then the next best where it is null
                pred = np.where(np.isnan(pred), x[:, features.index(column)], pred)
            return np.where(np.isnan(pred), self.meta["fallback"], pred)
        if kind == "xgboost":
            return np.asarray(self.model.inplace_predict(x), dtype=float)  # columns in training order
        if kind == "catboost":
            return np.asarray(self.model.predict(x), dtype=float)
        raise ValueError(f"bundle kind {kind!r} is not one of moving_average, xgboost, catboost, ensemble")

    def p_over(self, predicted: np.ndarray, line: np.ndarray) -> np.ndarray:
        """P(points > line), from the validation residuals (actual - predicted) of this system."""
        quantiles = np.asarray(self.meta["residual_quantiles"])
        needed = np.asarray(line, dtype=float) - np.asarray(predicted, dtype=float)
        below = np.interp(needed, quantiles, QUANTILES, left=0.0, right=1.0)
        return 1.0 - below


def residual_quantiles(actual: np.ndarray, predicted: np.ndarray) -> list[float]:
    return np.quantile(np.asarray(actual, float) - np.asarray(predicted, float), QUANTILES).tolist()


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True))


def load_bundle(folder: str | Path) -> Bundle:
    folder = Path(folder)
    meta = json.loads((folder / META).read_text())
    model = None
    if meta["kind"] == "xgboost":
        import xgboost as xgb

        model = xgb.Booster()
        model.load_model(str(folder / meta["model_file"]))
        model.set_param({"nthread": 1})  # one request at a time per thread: no oversubscription
    elif meta["kind"] == "catboost":
        from catboost import CatBoostRegressor

        model = CatBoostRegressor()
        model.load_model(str(folder / meta["model_file"]))
    members = {name: load_bundle(folder / name) for name in meta.get("weights", {})}
    return Bundle(meta, model, members)


class PointsModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: feature rows in, predicted points out."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.bundle = load_bundle(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.bundle.predict(model_input)


def loaded_bundle(model: mlflow.pyfunc.PyFuncModel) -> Bundle:
    """The bundle inside a pyfunc loaded from the registry (for p_over and metadata)."""
    return model.unwrap_python_model().bundle
