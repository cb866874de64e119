"""Champion/challenger promotion to production, rollback, and the audit trail behind both.

Production is the registered model's alias ``production`` (the source of truth). While MLflow still
supports registry stages, the deprecated stage ``Production`` is mirrored on the same version (the
previous holder archived), so ``models:/NAME@production`` and ``models:/NAME/Production`` load the
same model. Every promotion, refusal and rollback is an event, kept in three places for three readers:

- the audit record: one run per event in the experiment ``AUDIT_EXPERIMENT``, the event in its
  params. MLflow refuses to change a logged param, from the UI and the API alike, so the record
  cannot be edited in place; a run deleted from the UI is only marked deleted and still read here.
  It stays in the MLflow store with the registry it describes (one backup, no second service; the
  warehouse can be BigQuery, a store the registry does not depend on). ``history`` prints it and
  ``rollback`` replays it. Registries written before this kept events as JSON tags ``event.*`` on
  the registered model: still read, never written.
- the registered model's description: the history as a Markdown table (newest first, links to the
  versions' training runs and to the audit runs), rewritten on every event, what a user sees first.
- short tags on the version the event concerns (``promoted_by``, ``promoted_at``, ``refused_by``,
  ...), for ``search_model_versions`` and the UI's filters.

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
from mlflow.entities import Param, Run, RunStatus, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import settings
from contracts import DEFAULT_EXPERIMENT, MOVING_AVERAGE, PRODUCTION_ALIAS, PRODUCTION_STAGE, SYSTEMS
from features.definitions import feature_names
from features.store import read_store
from markets import MARKETS, registered
from registry.gate import judge
from registry.locks import LockError, promotion_lock, wait_seconds
from registry.tracking import experiment_id_for, run_link
from warehouse import Warehouse, connect

AUDIT_EXPERIMENT = f"{DEFAULT_EXPERIMENT}-promotions"
EVENT_KEY = "event_key"  # the audit run's tag (set when the run is made) and param naming its event
EVENT_PARAM = "event"  # the whole event as JSON; the other params repeat its fields as columns for the UI
LEGACY_EVENT_PREFIX = "event."  # registered-model tags of the registries written before the audit runs
INTENT_TAG = "promotion.intent"  # not an event: history never shows an unconfirmed move
MAX_REASON_CHARS = 500  # an event is a param, at most 6,000 characters with its figures
DESCRIPTION_CHARS = 5000  # MLflow's column for a registered model's description (enforced by PostgreSQL)
PAST = {"promote": "promoted", "refuse": "refused", "rollback": "restored"}  # version tags: <past>_by, <past>_at


class PromotionError(ValueError):
    """A promotion or rollback that cannot be carried out; the message says why."""


class UnusableModel(PromotionError):
    """A version whose artifact was fetched but does not load or predict (a corrupt or truncated file):
    a challenger like it is refused, and recorded as refused, as the gate refuses a weak one."""


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

    @property
    def arrow(self) -> str:
        return f"v{self.from_version or '-'} -> v{self.version}" if self.action != "refuse" else f"v{self.version}"

    def title(self) -> str:
        """The event in a few words: its audit run's name."""
        return f"{self.action} {self.system} {self.arrow}"

    def line(self) -> str:
        figures = ", ".join(f"{k} {v:.0f}" if k == "games" else f"{k} {v + 0.0:.3f}" for k, v in self.figures.items())
        text = f"{self.when}  {self.action:<8} {self.arrow:<12} by {self.who}"
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


def _check_reason(reason: str) -> None:
    if len(reason) > MAX_REASON_CHARS:
        raise PromotionError(f"reason is {len(reason)} characters long; at most {MAX_REASON_CHARS}")


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


def _audit_runs(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    """Every audit run matching the filter, deleted ones included (a deletion from the UI is not a
    deletion from the record)."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string, run_view_type=ViewType.ALL, max_results=1000,
                                  page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _recorded(client: MlflowClient, system: str) -> list[tuple[Event, Run | None]]:
    """Every recorded event of a system with its audit run (None for a legacy tag), oldest first."""
    _check_system(system)
    try:
        tags = client.get_registered_model(system).tags
    except MlflowException:
        raise PromotionError(f"{system} is not a registered model: run train first") from None
    found: list[tuple[Event, Run | None]] = [
        (Event(**json.loads(v)), None) for k, v in tags.items() if k.startswith(LEGACY_EVENT_PREFIX)]
    audit = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    if audit is not None:
        runs = _audit_runs(client, audit.experiment_id, f"params.system = '{system}'")
        found += [(Event(**json.loads(r.data.params[EVENT_PARAM])), r) for r in runs if EVENT_PARAM in r.data.params]
    return sorted(found, key=lambda pair: pair[0].when)


def history(system: str, client: MlflowClient | None = None) -> list[Event]:
    """Every recorded event of a system, oldest first."""
    return [event for event, _ in _recorded(client or registry_client(), system)]


def _event_key(event: Event) -> str:
    stamp = dt.datetime.fromisoformat(event.when).strftime("%Y%m%dT%H%M%S%f")
    return f"{stamp}.{uuid.uuid4().hex[:6]}"


def _record(client: MlflowClient, event: Event, key: str | None = None) -> None:
    """Write the event's audit run, the version's short tags and the description's table. Each step
    can be done again with the same ``key`` and changes nothing then (the run is found by its key, a
    param logged again with the same value is accepted), so a reconcile that finishes an interrupted
    move never records it twice."""
    key = key or _event_key(event)
    experiment_id = experiment_id_for(AUDIT_EXPERIMENT)
    found = _audit_runs(client, experiment_id, f"tags.{EVENT_KEY} = '{key}'")
    run_id = found[0].info.run_id if found else client.create_run(
        experiment_id, run_name=event.title(), tags={EVENT_KEY: key, "system": event.system}).info.run_id
    fields = {"action": event.action, "system": event.system, "version": event.version,
              "from_version": event.from_version or "", "who": event.who, "when": event.when,
              "forced": str(event.forced), EVENT_KEY: key, EVENT_PARAM: json.dumps(asdict(event), sort_keys=True)}
    client.log_batch(run_id, params=[Param(k, v) for k, v in fields.items()])
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    past = PAST[event.action]
    client.set_model_version_tag(event.system, event.version, f"{past}_by", event.who)
    client.set_model_version_tag(event.system, event.version, f"{past}_at", event.when)
    client.update_registered_model(event.system, description=history_markdown(client, event.system))


def _cell(text: str) -> str:
    """Text as one cell of a Markdown table: one line, its pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _gate_cell(figures: dict[str, float]) -> str:
    if "baseline_mae" in figures:
        return (f"{figures['challenger_mae']:.3f} vs {figures['baseline_mae']:.3f}: {figures['improvement']:+.3f} "
                f"[{figures['ci_low']:+.3f}, {figures['ci_high']:+.3f}] on {figures['games']:.0f} games")
    if figures:  # the baseline itself, promoted with nothing to beat
        return f"{figures['challenger_mae']:.3f} on {figures['games']:.0f} games, no baseline"
    return ""


def history_markdown(client: MlflowClient, system: str) -> str:
    """The registered model's description: its promotion history as a Markdown table, newest first,
    each version linked to its training run and each event to its audit run; as many of the latest
    events as fit in MLflow's description column, the older ones counted below."""
    links: dict[str, str] = {}

    def version(number: str | None) -> str:
        if not number:
            return "-"
        if number not in links:
            links[number] = f"v{number}"  # a version registered without a run, or deleted since: its number
            with contextlib.suppress(MlflowException):
                run_id = client.get_model_version(system, number).run_id
                if run_id:
                    links[number] = run_link(client.get_run(run_id).info.experiment_id, run_id, f"v{number}")
        return links[number]

    production = production_version(client, system)
    text = (f"**Promotion history** of `{system}`, newest first. Production: "
            f"**{version(production) if production else 'none'}**. Rewritten by `promote` and `rollback` on every "
            f"event (an edit here does not last); the audit record is the runs of experiment `{AUDIT_EXPERIMENT}`, "
            f"`python cli.py history --system {system}` prints it.\n\n"
            "| when (UTC) | who | action | from → to | gate: MAE challenger vs baseline, improvement [95% CI] "
            "| reason | audit |\n|---|---|---|---|---|---|---|\n")
    recorded = list(reversed(_recorded(client, system)))
    for shown, (event, run) in enumerate(recorded):
        when = dt.datetime.fromisoformat(event.when).strftime("%Y-%m-%d %H:%M:%S")
        audit = run_link(run.info.experiment_id, run.info.run_id, "run") if run else "tag"
        row = (f"| {when} | {_cell(event.who)} | {event.action}{' (forced)' if event.forced else ''} | "
               f"{version(event.from_version)} → {version(event.version)} | {_gate_cell(event.figures)} | "
               f"{_cell(event.reason)} | {audit} |\n")
        older = f"\n{len(recorded) - shown} older events: `python cli.py history --system {system}`.\n"
        if len(text) + len(row) + len(older) > DESCRIPTION_CHARS:
            return text + older
        text += row
    return text


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
    """The version's absolute errors on ``rows``. Fetching its artifact is the registry's part (a failure
    there propagates as the registry's); what fails after, loading or predicting, is the version's own
    fault: :class:`UnusableModel`, in one sentence rather than the model library's traceback."""
    market = registered(system)[0]
    local = mlflow.artifacts.download_artifacts(f"models:/{system}/{version}")
    try:
        model = mlflow.pyfunc.load_model(local)
    except Exception as exc:
        raise UnusableModel(f"{system} v{version}'s model does not load ({_first_line(exc)})") from None
    try:
        predicted = np.asarray(model.predict(rows[feature_names(market)].astype(float)), dtype=float)
    except Exception as exc:
        raise UnusableModel(f"{system} v{version}'s model does not predict ({_first_line(exc)})") from None
    return np.abs(rows[market.name].to_numpy(float) - predicted)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def promote(system: str, version: str | None = None, min_improvement: float = 0.0, force: bool = False,
            reason: str = "", warehouse: Warehouse | None = None) -> Decision:
    """Move ``production`` to the challenger if it beats the champion on the same held-out games."""
    _check_system(system)
    _check_reason(reason)
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
        try:
            challenger_err = _errors(system, version, rows)
        except UnusableModel as exc:  # no force promotes it: no worker would load it either
            event = Event("refuse", system, version, champion, who, _now(), reason=str(exc))
            _record(client, event)
            stays = f"; production v{champion} stays" if champion is not None else ""
            return Decision(False, event, _reported(repairs, f"refused: {exc}{stays}"))
        predicted = ~np.isnan(challenger_err)  # a system that abstains (no line) is judged on the games it predicts
        if not predicted.any():  # nothing to judge it on: it may stand in for no champion, never replace one
            why = (f"{system} v{version} predicts none of the {len(rows)} games of its test window {start} .. {end} "
                   "(it abstains where no line was posted)")
            if champion is not None and not force:
                event = Event("refuse", system, version, champion, who, _now(), reason=why)
                _record(client, event)
                return Decision(False, event, _reported(repairs, f"refused: {why}; production v{champion} stays"))
            event = Event("promote", system, version, champion, who, _now(), reason=reason or why,
                          forced=force and champion is not None)
            _move_production(client, event)
            return Decision(True, event, _reported(repairs, f"promoted: {why}, and there was no production version"
                                                   if champion is None else f"promoted (forced past the gate): {why}"))
        rows, challenger_err = rows[predicted].reset_index(drop=True), challenger_err[predicted]
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
    _check_reason(reason)
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
