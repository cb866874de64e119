"""Champion/challenger promotion to production, rollback, and the audit trail behind both.

Production is the registered model's alias ``production`` (the source of truth). While MLflow still
supports registry stages, the deprecated stage ``Production`` is mirrored on the same version (the
previous holder archived), so ``models:/NAME@production`` and ``models:/NAME/Production`` load the
same model. Every promotion, refusal and rollback is an event: a tag on the registered model (the
history ``history`` prints and ``rollback`` replays) and one on the version it concerns.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import settings
from contracts import MOVING_AVERAGE, PRODUCTION_ALIAS, PRODUCTION_STAGE, SYSTEMS, TARGET
from features.backfill import read_store
from features.definitions import FEATURE_NAMES
from warehouse import Warehouse, connect

EVENT_PREFIX = "event."
BOOTSTRAP_SAMPLES = 2000


class PromotionError(ValueError):
    """A promotion or rollback that cannot be carried out; the message says why."""


@dataclass
class Event:
    action: str  # promote | refuse | rollback
    system: str
    version: str  # the version the event is about (promoted, refused, rolled back to)
    from_version: str | None  # production before the event
    who: str
    when: str
    reason: str = ""
    forced: bool = False
    figures: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        figures = ", ".join(f"{k} {v:.0f}" if k == "games" else f"{k} {v + 0.0:.3f}" for k, v in self.figures.items())
        arrow = f"v{self.from_version or '-'} -> v{self.version}" if self.action != "refuse" else f"v{self.version}"
        text = f"{self.when}  {self.action:<8} {arrow:<12} by {self.who}"
        return text + (f"  [{figures}]" if figures else "") + (f"  reason: {self.reason}" if self.reason else "")


@dataclass
class Decision:
    promoted: bool
    event: Event
    message: str


def registry_client() -> MlflowClient:
    mlflow.set_tracking_uri(settings.tracking_uri())
    return MlflowClient()


@contextlib.contextmanager
def _registry_lock(system: str) -> Iterator[None]:
    """One promotion or rollback of a system at a time on this machine, so the alias and the
    history always change together (a team sharing a tracking server runs promotions from one
    place, e.g. CI, for the same guarantee)."""
    key = hashlib.sha256(f"{settings.tracking_uri()}|{system}".encode()).hexdigest()[:16]
    path = settings.MLRUNS_DIR / ".locks" / f"promote-{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_system(system: str) -> None:
    if system not in SYSTEMS:
        raise PromotionError(f"system is {system!r}; known systems are {', '.join(SYSTEMS)}")


def production_version(client: MlflowClient, system: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(system, PRODUCTION_ALIAS).version)
    except MlflowException:
        return None


def resolve_version(client: MlflowClient, system: str, version: str | None) -> str:
    try:
        versions = client.search_model_versions(f"name = '{system}'")
    except MlflowException:
        versions = []
    if not versions:
        raise PromotionError(f"{system} has no registered version: run train first")
    if version in (None, ""):
        return str(max(int(v.version) for v in versions))
    if str(version) not in {str(v.version) for v in versions}:
        known = ", ".join(sorted((str(v.version) for v in versions), key=int))
        raise PromotionError(f"{system} has no version {version!r}; registered versions are {known}")
    return str(version)


def history(system: str, client: MlflowClient | None = None) -> list[Event]:
    """Every recorded event of a system, oldest first."""
    _check_system(system)
    client = client or registry_client()
    try:
        tags = client.get_registered_model(system).tags
    except MlflowException:
        raise PromotionError(f"{system} is not a registered model: run train first") from None
    events = [Event(**json.loads(v)) for k, v in tags.items() if k.startswith(EVENT_PREFIX)]
    return sorted(events, key=lambda e: e.when)


def _record(client: MlflowClient, event: Event) -> None:
    stamp = dt.datetime.fromisoformat(event.when).strftime("%Y%m%dT%H%M%S%f")
    key = f"{EVENT_PREFIX}{stamp}.{uuid.uuid4().hex[:6]}"
    value = json.dumps(asdict(event), sort_keys=True)
    client.set_registered_model_tag(event.system, key, value)
    client.set_model_version_tag(event.system, event.version, key, value)


def _set_production(client: MlflowClient, system: str, version: str) -> None:
    client.set_registered_model_alias(system, PRODUCTION_ALIAS, version)
    with warnings.catch_warnings():  # stages are deprecated; mirrored while MLflow still has them
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(system, version, PRODUCTION_STAGE, archive_existing_versions=True)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


# --- the gate -----------------------------------------------------------------------------------
def held_out_games(client: MlflowClient, system: str, version: str, warehouse: Warehouse):
    """The challenger's test window (from its run's tags), as feature rows of played games."""
    run_id = client.get_model_version(system, version).run_id
    tags = client.get_run(run_id).data.tags
    start = dt.date.fromisoformat(tags["test_start"])
    end = dt.date.fromisoformat(tags["data_range"].split("..")[1])
    rows = read_store(warehouse, start, end)
    rows = rows[rows[TARGET].notna()].reset_index(drop=True)
    if rows.empty:
        raise PromotionError(f"the feature store has no played games in {system} v{version}'s test window "
                             f"{start} .. {end}: run backfill for it first")
    return rows, start, end


def _errors(system: str, version: str, rows) -> np.ndarray:
    model = mlflow.pyfunc.load_model(f"models:/{system}/{version}")
    predicted = np.asarray(model.predict(rows[list(FEATURE_NAMES)].astype(float)), dtype=float)
    return np.abs(rows[TARGET].to_numpy(float) - predicted)


def paired_bootstrap(challenger: np.ndarray, champion: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% interval of (challenger MAE - champion MAE), resampling games in pairs."""
    diff = challenger - champion
    rng = np.random.default_rng(seed)
    means = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(samples)])
    low, high = np.quantile(means, [0.025, 0.975])
    return float(diff.mean()), float(low), float(high)


def promote(system: str, version: str | None = None, min_improvement: float = 0.0, force: bool = False,
            reason: str = "", warehouse: Warehouse | None = None) -> Decision:
    """Move ``production`` to the challenger if it beats the champion on the same held-out games."""
    _check_system(system)
    if force and not reason.strip():
        raise PromotionError("force=true needs a reason: say why the gate is overridden")
    if min_improvement < 0:
        raise PromotionError(f"min_improvement is {min_improvement}; it must be 0 or more points")
    client = registry_client()
    warehouse = warehouse or connect()
    who = settings.promoted_by()
    with _registry_lock(system):
        version = resolve_version(client, system, version)
        champion = production_version(client, system)
        if champion == version:
            event = Event("promote", system, version, champion, who, _now(), reason="already in production")
            return Decision(True, event, f"{system} v{version} is already in production: nothing changed")

        rows, start, end = held_out_games(client, system, version, warehouse)
        challenger_err = _errors(system, version, rows)
        if champion is not None:
            baseline, baseline_name = champion, f"production v{champion}"
            baseline_err = _errors(system, champion, rows)
        elif system != MOVING_AVERAGE:
            baseline = resolve_version(client, MOVING_AVERAGE, production_version(client, MOVING_AVERAGE))
            baseline_name = f"{MOVING_AVERAGE} v{baseline} (no champion yet)"
            baseline_err = _errors(MOVING_AVERAGE, baseline, rows)
        else:
            baseline, baseline_name, baseline_err = None, "nothing (the baseline itself)", None

        figures: dict[str, float] = {"games": float(len(rows)), "challenger_mae": float(challenger_err.mean())}
        if baseline_err is not None:
            diff, low, high = paired_bootstrap(challenger_err, baseline_err)
            # the improvement and its interval, in points (+ 0.0 turns a -0.0 into 0.0)
            figures.update(baseline_mae=float(baseline_err.mean()), improvement=-diff + 0.0,
                           ci_low=-high + 0.0, ci_high=-low + 0.0)
            passed = -diff >= min_improvement and -high > 0
        else:
            passed = True
        window = f"{len(rows)} games {start} .. {end}"
        summary = (f"{system} v{version} MAE {figures['challenger_mae']:.3f} vs {baseline_name}"
                   + (f" MAE {figures['baseline_mae']:.3f}: improvement {figures['improvement']:.3f} points, "
                      f"95% CI [{figures['ci_low']:.3f}, {figures['ci_high']:.3f}]" if baseline_err is not None else "")
                   + f" on {window}")
        if not passed and not force:
            why = (f"needs an improvement of at least {min_improvement} points with a 95% interval above zero")
            event = Event("refuse", system, version, champion, who, _now(), reason=why, figures=figures)
            _record(client, event)
            return Decision(False, event, f"refused: {summary}; {why}")
        _set_production(client, system, version)
        event = Event("promote", system, version, champion, who, _now(), reason=reason, forced=force and not passed,
                      figures=figures)
        _record(client, event)
        forced = " (forced past the gate)" if event.forced else ""
        return Decision(True, event, f"promoted{forced}: {summary}")


def rollback(system: str, reason: str = "") -> Decision:
    """Move production back to the version that held it before the current one."""
    _check_system(system)
    client = registry_client()
    with _registry_lock(system):
        current = production_version(client, system)
        if current is None:
            raise PromotionError(f"{system} has no production version to roll back")
        stack: list[str] = []
        for event in history(system, client):
            if event.action == "promote" and event.version != event.from_version:
                stack.append(event.version)
            elif event.action == "rollback" and stack:
                stack.pop()
        if len(stack) < 2 or stack[-1] != current:
            raise PromotionError(f"{system} v{current} has no earlier production version in its history")
        target = stack[-2]
        _set_production(client, system, target)
        event = Event("rollback", system, target, current, settings.promoted_by(), _now(), reason=reason)
        _record(client, event)
        return Decision(True, event, f"rolled back {system}: production v{current} -> v{target}")
