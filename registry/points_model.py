"""The one model format every prediction system is registered in.

A system is saved as a *bundle*: a folder with ``meta.json`` (system, market, kind, feature list, the
predictive distribution fitted on validation: ``registry/probability.py``) and its native model file;
an ensemble's bundle holds its members'
bundles. The bundle's kind names the system module (``registry/systems/``) that reads and runs it.
MLflow stores the bundle as the artifact of a pyfunc ``PointsModel`` together with the code of this
format (``model_code_paths``), so the registry, ``mlflow models serve`` and the worker load any
system the same way, in any environment that has the model libraries, without this repository.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema, TensorSpec

import contracts
from registry import probability, systems

META = "meta.json"
PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_model.py")
# what a logged model needs from this repository: the registry's format modules and the contracts
FORMAT_MODULES = ("__init__.py", "points_model.py", "pyfunc_model.py", "probability.py")


@dataclass
class Bundle:
    """A loaded system: what it needs as input and how it predicts."""

    meta: dict[str, Any]
    model: Any
    members: dict[str, Bundle] = field(default_factory=dict)

    @property
    def system(self) -> ModuleType:
        return systems.by_kind(self.meta["kind"])

    @property
    def features(self) -> list[str]:
        return self.meta["features"]

    def predict(self, frame: pd.DataFrame, known: dict[tuple[str, str], np.ndarray] | None = None) -> np.ndarray:
        """Predicted points per row of a frame holding (at least) this bundle's features."""
        return self.predict_matrix(frame[self.features].to_numpy(dtype=float), self.features, known)

    def predict_matrix(self, x: np.ndarray, columns: list[str],
                       known: dict[tuple[str, str], np.ndarray] | None = None) -> np.ndarray:
        """Predicted points per row of a float matrix whose columns are named by ``columns`` (NaN where
        a system that abstains makes no prediction).
        ``known`` holds predictions already made for these rows by (system, version): a combining
        system reuses those of its members instead of predicting twice."""
        if self.members:
            known = known or {}
            versions = self.meta.get("member_versions", {})
            parts = {}
            for name, member in self.members.items():
                reused = known.get((name, str(versions.get(name))))
                parts[name] = reused if reused is not None else member.predict_matrix(x, columns, known)
        if list(columns) != self.features:
            x = x[:, [columns.index(f) for f in self.features]]
        if self.members:
            return self.system.combine(self.model, parts, x)
        return self.system.predict(self.model, x)

    def probabilities(self, predicted: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P(over), P(push), P(under)) of each line around the predictions, from the distribution this
        system's validation rows fitted; NaN where there is no line."""
        return probability.probabilities(self.meta["probability"], predicted, line)

    def save(self, folder: Path) -> None:
        """Write the bundle (its members in sub-folders named after them) so ``load_bundle`` reads it back."""
        folder.mkdir(parents=True, exist_ok=True)
        self.meta.update(self.system.save(self.model, folder))
        write_meta(folder, self.meta)
        for name, member in self.members.items():
            member.save(folder / name)


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True))


def load_bundle(folder: str | Path) -> Bundle:
    folder = Path(folder)
    meta = json.loads((folder / META).read_text())
    members = {name: load_bundle(folder / name) for name in meta.get("member_versions", {})}
    return Bundle(meta, systems.by_kind(meta["kind"]).load(meta, folder), members)


def feature_signature(features: Sequence[str]) -> ModelSignature:
    """The logged model's signature, from the feature list rather than inferred from sample rows: every
    feature an optional double (null is a legitimate value of each, e.g. a game without a posted line),
    the same for every system; the output one predicted number per row. Optional lets MLflow pass nulls;
    a column left out is refused by ``PointsModel.predict``, since MLflow passes that too."""
    inputs = Schema([ColSpec(DataType.double, name, required=False) for name in features])
    return ModelSignature(inputs=inputs, outputs=Schema([TensorSpec(np.dtype(np.float64), (-1,))]))


def input_example(frame: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """Rows of ``frame`` as the logged input example, the most complete first, nulls as ``None``:
    MLflow writes a float column's NaN as a bare ``NaN``, which is not JSON; ``None`` becomes ``null``."""
    complete_first = frame.notna().sum(axis=1).sort_values(ascending=False, kind="stable").index[:rows]
    example = frame.loc[complete_first].reset_index(drop=True)
    return example.astype(object).where(example.notna(), None)


def model_code_paths(staging: Path) -> list[str]:
    """The ``code_paths`` of a logged model: a copy of the format's modules (this file, the pyfunc
    entry, every system module) and ``contracts.py``, which MLflow puts on ``sys.path`` at load."""
    registry = Path(__file__).parent
    package = staging / "registry"
    package.mkdir(parents=True, exist_ok=True)
    for name in FORMAT_MODULES:
        shutil.copy2(registry / name, package / name)
    shutil.copytree(registry / "systems", package / "systems", ignore=shutil.ignore_patterns("__pycache__"),
                    dirs_exist_ok=True)
    return [str(package), contracts.__file__]


class PointsModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: feature rows in, predicted points out."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.bundle = load_bundle(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        missing = [f for f in self.bundle.features if f not in model_input.columns]
        if missing:  # MLflow's schema lets an optional column be left out; the model needs every one
            raise MlflowException.invalid_parameter_value(
                f"the input lacks feature {', '.join(missing[:3])}{' and others' if len(missing) > 3 else ''}: "
                f"send all {len(self.bundle.features)} features, null where a value is unknown")
        return self.bundle.predict(model_input)


def loaded_bundle(model: mlflow.pyfunc.PyFuncModel) -> Bundle:
    """The bundle inside a pyfunc loaded from the registry (for its probabilities and metadata)."""
    return model.unwrap_python_model().bundle
