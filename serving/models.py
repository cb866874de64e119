"""The production models a worker serves: loaded from the registry by alias, swapped atomically.

A reload loads the new version completely and makes it predict a few rows before it replaces the old
one, so requests never see a half-loaded model, and a version that fails to load or to predict
leaves the previous one serving (the failure is reported on ``GET /``). The registry is asked with
bounded HTTP retries: an unreachable tracking server is reported as such, in seconds, and what is
loaded keeps serving. A production alias that was deleted withdraws the system: it stops serving
and ``GET /`` says why, since an operator who removes the alias means that version to stop.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import settings
from contracts import PRODUCTION_ALIAS, SYSTEMS
from features.definitions import FEATURE_NAMES
from markets import MARKETS, registered
from registry.points_model import Bundle, loaded_bundle
from registry.systems import abstained

# the system whose number, over/under call and probability a prediction leads with, best first: the
# table of systems read backwards (the combination of the others first, the baseline last)
LEAD_ORDER = tuple(reversed(SYSTEMS))


@dataclass(frozen=True)
class LoadedSystem:
    name: str  # the registered model's name: the system, in a market's namespace (markets.Market.registered_name)
    version: str
    run_id: str
    loaded_at: str
    feature_version: str
    bundle: Bundle

    @property
    def market(self) -> str:
        return registered(self.name)[0].name

    @property
    def system(self) -> str:
        return registered(self.name)[1]

    def describe(self) -> dict[str, str]:
        return {"version": self.version, "run_id": self.run_id, "loaded_at": self.loaded_at,
                "feature_version": self.feature_version}


# what the registry answers for a system with no production alias (or no registered model at all)
NOT_PROMOTED_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})
# a row with every feature missing and a row of zeros: every kind of system must answer both
SMOKE_ROWS = np.vstack([np.full(len(FEATURE_NAMES), np.nan), np.zeros(len(FEATURE_NAMES))])
REGISTRY = "registry"  # the key of a registry failure among the per-system errors


class SmokeTestFailed(RuntimeError):
    """A version that loads but cannot predict."""


def smoke_tested(bundle: Bundle) -> Bundle:
    """``bundle``, once it has predicted one finite number for each of ``SMOKE_ROWS`` (or abstained, if
    it is a system that does: neither row has a line)."""
    try:
        predicted = np.asarray(bundle.predict_matrix(SMOKE_ROWS, list(FEATURE_NAMES), {}), dtype=float)
    except Exception as exc:
        raise SmokeTestFailed(f"{exc.__class__.__name__}: {str(exc)[:200]}") from exc
    if predicted.shape != (len(SMOKE_ROWS),) or not (np.isfinite(predicted) | abstained(bundle.system,
                                                                                        predicted)).all():
        raise SmokeTestFailed(f"it predicted {predicted.ravel()[:4].tolist()} for {len(SMOKE_ROWS)} rows")
    return bundle


# every registered model a worker looks for: each system of each market
SERVED = tuple(m.registered_name(s) for m in MARKETS.values() for s in SYSTEMS)


class ProductionModels:
    def __init__(self, systems: tuple[str, ...] = SERVED) -> None:
        self.systems = systems  # registered model names
        self._loaded: dict[str, LoadedSystem] = {}
        self.errors: dict[str, str] = {}
        self._lock = threading.Lock()  # one reload at a time; readers take a snapshot dict

    @property
    def loaded(self) -> dict[str, LoadedSystem]:
        return self._loaded

    def refresh(self) -> dict[str, str]:
        """Load every system whose production alias points at a version not yet loaded, and
        withdraw those whose alias is gone. Returns what changed (system -> 'vA -> vB' or the error)."""
        changes: dict[str, str] = {}
        with self._lock, settings.bounded_registry_http():
            mlflow.set_tracking_uri(settings.tracking_uri())
            client = MlflowClient()
            for system in self.systems:
                try:
                    target = client.get_model_version_by_alias(system, PRODUCTION_ALIAS)
                except Exception as exc:
                    if isinstance(exc, MlflowException) and exc.error_code in NOT_PROMOTED_CODES:
                        self._withdraw(system, changes)
                        continue
                    # one unreachable lookup stands for all: the others would each wait as long
                    self.errors[REGISTRY] = changes[REGISTRY] = (
                        f"tracking server unreachable ({exc.__class__.__name__}: {str(exc)[:160]}); "
                        "serving what was loaded")
                    return changes
                self.errors.pop(REGISTRY, None)
                self._load(system, str(target.version), target.run_id or "", changes)
        return changes

    def _withdraw(self, system: str, changes: dict[str, str]) -> None:
        """No production alias: a system that was serving stops, and says so."""
        current = self._loaded.get(system)
        if current is None:
            return  # never promoted (or already withdrawn): nothing to serve, nothing new to say
        self._loaded = {name: s for name, s in self._loaded.items() if name != system}
        self.errors[system] = changes[system] = (
            f"production alias removed (was v{current.version}); no longer served")

    def _load(self, system: str, version: str, run_id: str, changes: dict[str, str]) -> None:
        current = self._loaded.get(system)
        if current is not None and current.version == version:
            return
        try:
            bundle = smoke_tested(loaded_bundle(mlflow.pyfunc.load_model(f"models:/{system}/{version}")))
        except SmokeTestFailed as exc:  # loads, cannot predict: keep the previous version serving
            self.errors[system] = changes[system] = f"v{version} loads but cannot predict: {exc}"
            return
        except Exception as exc:  # any failure to load keeps the previous version serving
            self.errors[system] = changes[system] = (
                f"v{version} failed to load: {exc.__class__.__name__}: {str(exc)[:200]}")
            return
        loaded = LoadedSystem(system, version, run_id, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                              str(bundle.meta.get("feature_version", "")), bundle)
        self._loaded = {**self._loaded, system: loaded}  # readers keep their old snapshot
        self.errors.pop(system, None)
        changes[system] = f"v{current.version if current else '-'} -> v{loaded.version}"
