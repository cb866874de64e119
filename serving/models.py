"""The production models a worker serves: loaded from the registry by alias, swapped atomically.

A reload loads the new version completely before it replaces the old one, so requests never see a
half-loaded model, and a version that fails to load leaves the previous one serving (the failure is
reported on ``GET /``).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import settings
from contracts import ENSEMBLE_V1, PRODUCTION_ALIAS, SYSTEMS
from registry.points_model import Bundle, loaded_bundle

# the system whose number, over/under call and probability a prediction leads with, best first
LEAD_ORDER = (ENSEMBLE_V1, "catboost_v8", "xgboost_v1", "moving_average")


@dataclass(frozen=True)
class LoadedSystem:
    name: str
    version: str
    run_id: str
    loaded_at: str
    feature_version: str
    bundle: Bundle

    def describe(self) -> dict[str, str]:
        return {"version": self.version, "run_id": self.run_id, "loaded_at": self.loaded_at,
                "feature_version": self.feature_version}


class ProductionModels:
    def __init__(self, systems: tuple[str, ...] = SYSTEMS) -> None:
        self.systems = systems
        self._loaded: dict[str, LoadedSystem] = {}
        self.errors: dict[str, str] = {}
        self._lock = threading.Lock()  # one reload at a time; readers take a snapshot dict

    @property
    def loaded(self) -> dict[str, LoadedSystem]:
        return self._loaded

    def refresh(self) -> dict[str, str]:
        """Load every system whose production alias points at a version not yet loaded.
        Returns what changed (system -> 'vA -> vB' or the error)."""
        mlflow.set_tracking_uri(settings.tracking_uri())
        client = MlflowClient()
        changes: dict[str, str] = {}
        with self._lock:
            for system in self.systems:
                try:
                    target = client.get_model_version_by_alias(system, PRODUCTION_ALIAS)
                except MlflowException:
                    continue  # not promoted yet: nothing to serve for this system
                current = self._loaded.get(system)
                if current is not None and current.version == str(target.version):
                    continue
                try:
                    model = mlflow.pyfunc.load_model(f"models:/{system}/{target.version}")
                    bundle = loaded_bundle(model)
                except Exception as exc:  # any failure to load keeps the previous version serving
                    message = f"v{target.version} failed to load: {exc.__class__.__name__}: {str(exc)[:200]}"
                    self.errors[system] = message
                    changes[system] = message
                    continue
                loaded = LoadedSystem(system, str(target.version), target.run_id or "",
                                      dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                      str(bundle.meta.get("feature_version", "")), bundle)
                self._loaded = {**self._loaded, system: loaded}  # readers keep their old snapshot
                self.errors.pop(system, None)
                changes[system] = f"v{current.version if current else '-'} -> v{loaded.version}"
        return changes
