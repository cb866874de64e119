"""Champion/challenger promotion to production, rollback, and the audit trail behind both.

Production is the registered model's alias ``production`` (the source of truth). While MLflow still
supports registry stages, the deprecated stage ``Production`` is mirrored on the same version (the
previous holder archived), so ``models:/NAME@production`` and ``models:/NAME/Production`` load the
same model. Every promotion, refusal and rollback is an event: a tag on the registered model (the
history ``history`` prints and ``rollback`` replays) and one on the version it concerns.

Moving production is all-or-nothing with its audit, although MLflow has no transaction: an intent
tag is written first, then the alias and the stage move, the event is recorded and the intent is
removed (the confirmation). A failure anywhere leaves the intent behind, and ``reconcile`` (run first
by every promotion and rollback, and on its own by ``cli.py reconcile``) finishes the move from it
when the alias did move, drops it when the alias did not, and puts the stage on the alias's version.
"""

from __future__ import annotations

import contextlib
import datetime as dt
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
from contracts import MOVING_AVERAGE, PRODUCTION_ALIAS, PRODUCTION_STAGE, SYSTEMS
from features.definitions import feature_names
from features.store import read_store
from markets import MARKETS, registered
from registry.gate import judge
from registry.locks import LockError, promotion_lock, wait_seconds
from warehouse import Warehouse, connect

EVENT_PREFIX = "event."
INTENT_TAG = "promotion.intent"  # not an EVENT_PREFIX key: history never shows an unconfirmed move


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
    """One promotion or rollback of a system at a time on every machine that promotes, so the alias
    and the history always change together (where the lock lives: ``registry/locks.py``)."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(promotion_lock(system, settings.tracking_uri(), settings.promotion_lock_url(),
                                              wait_seconds(settings.promotion_lock_wait())))
        except LockError as exc:  # raised before the body runs: the promotion has not started
            raise PromotionError(str(exc)) from None
        yield


def _check_system(system: str) -> None:
    if registered(system)[1] not in SYSTEMS:
        points = ", ".join(SYSTEMS)
        others = ", ".join(f"{m.registered_prefix}<system>" for m in MARKETS.values() if m.registered_prefix)
        raise PromotionError(f"system is {system!r}; known systems are {points} (points) and {others}")


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


def _event_key(event: Event) -> str:
    stamp = dt.datetime.fromisoformat(event.when).strftime("%Y%m%dT%H%M%S%f")
    return f"{EVENT_PREFIX}{stamp}.{uuid.uuid4().hex[:6]}"


def _record(client: MlflowClient, event: Event, key: str | None = None) -> None:
    """Write the event under ``key``: writing it again under the same key changes nothing, so a
    reconcile that finishes an interrupted move never records it twice."""
    key = key or _event_key(event)
    value = json.dumps(asdict(event), sort_keys=True)
    client.set_registered_model_tag(event.system, key, value)
    client.set_model_version_tag(event.system, event.version, key, value)


def _set_stage(client: MlflowClient, system: str, version: str) -> None:
    with warnings.catch_warnings():  # stages are deprecated; mirrored while MLflow still has them
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(system, version, PRODUCTION_STAGE, archive_existing_versions=True)


def _stage_holders(client: MlflowClient, system: str) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        versions = client.search_model_versions(f"name = '{system}'")
    return sorted((str(v.version) for v in versions if v.current_stage == PRODUCTION_STAGE), key=int)


def _move_production(client: MlflowClient, event: Event) -> None:
    """Intent, alias, stage, event, confirmation: see the module's docstring for why in this order."""
    key = _event_key(event)
    intent = json.dumps({"key": key, "event": asdict(event)}, sort_keys=True)
    try:
        client.set_registered_model_tag(event.system, INTENT_TAG, intent)
        client.set_registered_model_alias(event.system, PRODUCTION_ALIAS, event.version)
        _set_stage(client, event.system, event.version)
        _record(client, event, key)
        client.delete_registered_model_tag(event.system, INTENT_TAG)
    except MlflowException as exc:
        cause = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise PromotionError(
            f"the {event.action} of {event.system} to v{event.version} was interrupted ({cause}); "
            f"`python cli.py reconcile --system {event.system}` finishes or undoes it, as the next "
            "promote or rollback does first") from None


def pending(client: MlflowClient, system: str) -> tuple[str, Event] | None:
    """The move of production that began but was not confirmed (its event key and event), if any."""
    try:
        intent = client.get_registered_model(system).tags.get(INTENT_TAG)
    except MlflowException:
        return None
    if intent is None:
        return None
    started = json.loads(intent)
    return started["key"], Event(**started["event"])


def _reconcile(client: MlflowClient, system: str) -> list[str]:
    """Repair a half-done move of production; the caller holds the system's lock."""
    repairs = []
    current = production_version(client, system)
    started = pending(client, system)
    if started is not None:
        key, event = started
        if current == event.version:
            _record(client, event, key)
            repairs.append(f"recorded the interrupted {event.action} of {system} v{event.from_version or '-'} -> "
                           f"v{event.version} ({event.when})")
        else:
            repairs.append(f"dropped the {event.action} of {system} to v{event.version} ({event.when}): it "
                           f"stopped before the alias moved, production is still v{current or '-'}")
        client.delete_registered_model_tag(system, INTENT_TAG)
    if current is not None and _stage_holders(client, system) != [current]:
        _set_stage(client, system, current)
        repairs.append(f"moved stage {PRODUCTION_STAGE} of {system} to v{current}, the version of @{PRODUCTION_ALIAS}")
    return repairs


def reconcile(system: str) -> list[str]:
    """Finish or drop a half-done promotion or rollback of ``system``; what was repaired (nothing
    when alias, stage and history already agree)."""
    _check_system(system)
    client = registry_client()
    with _registry_lock(system):
        return _reconcile(client, system)


def _reported(repairs: list[str], message: str) -> str:
    return "\n".join([*(f"reconciled: {r}" for r in repairs), message])


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
    rows = rows[rows[registered(system)[0].name].notna()].reset_index(drop=True)
    if rows.empty:
        raise PromotionError(f"the feature store has no played games in {system} v{version}'s test window "
                             f"{start} .. {end}: run backfill for it first")
    return rows, start, end


def _errors(system: str, version: str, rows) -> np.ndarray:
    market = registered(system)[0]
    model = mlflow.pyfunc.load_model(f"models:/{system}/{version}")
    predicted = np.asarray(model.predict(rows[feature_names(market)].astype(float)), dtype=float)
    return np.abs(rows[market.name].to_numpy(float) - predicted)


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
        repairs = _reconcile(client, system)
        version = resolve_version(client, system, version)
        champion = production_version(client, system)
        if champion == version:
            event = Event("promote", system, version, champion, who, _now(), reason="already in production")
            return Decision(True, event, _reported(repairs, f"{system} v{version} is already in production: "
                                                            "nothing changed"))

        rows, start, end = held_out_games(client, system, version, warehouse)
        challenger_err = _errors(system, version, rows)
        if champion is not None:
            baseline, baseline_name = champion, f"production v{champion}"
            baseline_err = _errors(system, champion, rows)
        elif registered(system)[1] != MOVING_AVERAGE:
            moving_average = registered(system)[0].registered_name(MOVING_AVERAGE)  # the same market's baseline
            baseline = resolve_version(client, moving_average, production_version(client, moving_average))
            baseline_name = f"{moving_average} v{baseline} (no champion yet)"
            baseline_err = _errors(moving_average, baseline, rows)
        else:
            baseline, baseline_name, baseline_err = None, "nothing (the baseline itself)", None

        if baseline_err is not None:
            gate = judge(challenger_err, baseline_err, min_improvement)
            figures, passed = gate.figures(), gate.passed
        else:
            figures, passed = {"games": float(len(rows)), "challenger_mae": float(challenger_err.mean())}, True
        window = f"{len(rows)} games {start} .. {end}"
        summary = (f"{system} v{version} MAE {figures['challenger_mae']:.3f} vs {baseline_name}"
                   + (f" MAE {figures['baseline_mae']:.3f}: improvement {figures['improvement']:.3f} points, "
                      f"95% CI [{figures['ci_low']:.3f}, {figures['ci_high']:.3f}]" if baseline_err is not None else "")
                   + f" on {window}")
        if not passed and not force:
            why = (f"needs an improvement of at least {min_improvement} points with a 95% interval above zero")
            event = Event("refuse", system, version, champion, who, _now(), reason=why, figures=figures)
            _record(client, event)
            return Decision(False, event, _reported(repairs, f"refused: {summary}; {why}"))
        event = Event("promote", system, version, champion, who, _now(), reason=reason, forced=force and not passed,
                      figures=figures)
        _move_production(client, event)
        forced = " (forced past the gate)" if event.forced else ""
        return Decision(True, event, _reported(repairs, f"promoted{forced}: {summary}"))


def rollback(system: str, reason: str = "") -> Decision:
    """Move production back to the version that held it before the current one."""
    _check_system(system)
    client = registry_client()
    with _registry_lock(system):
        repairs = _reconcile(client, system)
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
        event = Event("rollback", system, stack[-2], current, settings.promoted_by(), _now(), reason=reason)
        _move_production(client, event)
        return Decision(True, event, _reported(repairs, f"rolled back {system}: production v{current} -> "
                                                        f"v{event.version}"))
