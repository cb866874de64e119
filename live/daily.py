"""The daily job: what the platform does once a game day, in order, with no person in the loop.

ingest results and lines since the last checked day → check them (an incomplete or late day is held
out) → rebuild the features of the new days → grade stored predictions → retrain through the gate
when due → build tonight's slate from the schedule → predict it through the worker → publish
``feature-store-date-ready`` → monitor and alert.

A worker that cannot be reached, serves no system or fails batches does not end the job: the slate
step reports it, and monitoring still runs and raises it as a ``worker_unavailable`` alert, so the
evening that most needs an alert sends one.

Every step works out from what is stored what is still missing and does only that, so a rerun
changes nothing and a run killed half way is finished by running it again. The job's clock (``now``)
stamps every row it writes; a replay passes the evening of the simulated day, so two replays write
identical rows.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd

import settings
from contracts import (
    BOX_SCORES_SCHEMA,
    DATA_CHECKS_SCHEMA,
    DATA_SYSTEM,
    MONITORING_SCHEMA,
    PLAYERS_OUT_SCHEMA,
    PREDICTION_GRADES_SCHEMA,
    PREDICTIONS_SCHEMA,
    PROP_LINES_SCHEMA,
    SCHEDULE_SCHEMA,
    VOID,
)
from features.backfill import REBUILD
from features.build import build_features
from features.definitions import FEATURE_STORE_SCHEMA
from features.slate import SCHEDULE_ROSTER_GAMES, build_slate, season_of, slate_from_schedule
from features.store import read_store
from live.defaults import GATE_DAYS, RETRAIN_EVERY_DAYS
from markets import DEFAULT_MARKET, MARKET_NAMES, market
from monitoring.alerts import DELIVERY_ATTEMPTS, Thresholds, raise_alerts, worker_alert
from monitoring.grading import grade_days
from monitoring.metrics import DriftReference, drift_reference, record_data_metrics, record_model_metrics
from monitoring.tracking import log_days, registered_test_mae
from registry import systems
from registry.promotion import registry_client
from serving.coordinator import predict_date
from serving.events import DateReady, EventBus
from sources.base import Sources
from warehouse import Warehouse, connect
from warehouse.cached import CachedTables
from warehouse.checks import ACCEPTED, HELD, USABLE, check_days, record_checks
from warehouse.ingest import InputError

log = logging.getLogger(__name__)

CATCH_UP_DAYS = 45  # how far back a run looks for work a killed run left undone


@dataclass
class DailyConfig:
    date: dt.date
    retrain_every: int = RETRAIN_EVERY_DAYS  # days between retrains; 0: never (run ``retrain`` yourself)
    gate_days: int = GATE_DAYS  # the most recent game days a retrained challenger is judged on
    webhook_url: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    roster_games: int = SCHEDULE_ROSTER_GAMES
    now: dt.datetime | None = None  # the job's clock; default: the wall clock
    predict: bool = True  # False: only take in results and grade (a replay's closing day)
    train_start: dt.date | None = None  # first game date a retrain fits on; default all stored
    markets: tuple[str, ...] = MARKET_NAMES  # predicted, graded, monitored and retrained
    plots: bool = True  # False: log the monitoring metrics without redrawing the season's plots (a replay)

    def stamp(self) -> pd.Timestamp:
        stamp = pd.Timestamp(self.now or dt.datetime.now(dt.UTC))
        return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).floor("s")


@dataclass
class Worker:
    """The worker that predicts the slate, and how to make it pick up a promotion at once."""

    url: str
    reload: Callable[[], object]


class WorkerUnavailable(RuntimeError):
    """The slate could not be predicted through the worker: the message says why, ``unpredicted`` how
    many of the slate's players went without a prediction."""

    def __init__(self, message: str, unpredicted: int) -> None:
        super().__init__(settings.hide_secrets(message))  # it is stored, logged and POSTed to the webhook
        self.unpredicted = unpredicted


@dataclass
class DayReport:
    """One readable line per step, and the alerts the day raised."""

    date: dt.date
    steps: list[tuple[str, str]] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    predicted: int = 0
    worker_problem: WorkerUnavailable | None = None

    def verdict(self) -> str:
        """The day's outcome in one sentence, for the end of a run that exits non-zero."""
        rules = sorted({line.split(" ")[1] for line in self.alerts})
        return (f"{self.date}: {len(self.alerts)} alert(s) raised ({', '.join(rules) or 'none'}) and "
                f"{len(self.held)} day(s) held; the alerts and checks lines above say why")

    def add(self, step: str, text: str) -> None:
        self.steps.append((step, text))
        log.info("%-8s %s", step, text)

    def render(self) -> str:
        return "\n".join([f"daily {self.date}"] + [f"  {step:<8} {text}" for step, text in self.steps])


# --- ingest and check ---------------------------------------------------------------------------
def ingest(cfg: DailyConfig, sources: Sources, warehouse: Warehouse, report: DayReport) -> None:
    """Results of every day from the last checked one to yesterday, and held days again; the checks
    decide which are written to ``box_scores``."""
    checks = warehouse.read(DATA_CHECKS_SCHEMA)
    stored = warehouse.read(BOX_SCORES_SCHEMA)
    if checks.empty and stored.empty:
        raise InputError("the warehouse holds no box scores: run backfill (or replay) first")
    pointer = max(checks["game_date"]) if len(checks) else max(stored["game_date"])
    yesterday = cfg.date - dt.timedelta(days=1)
    retry = set(checks.loc[checks["status"] == HELD, "game_date"]) | (
        set(checks.loc[checks["status"] == ACCEPTED, "game_date"]) - set(stored["game_date"]))
    first = min([pointer + dt.timedelta(days=1), *retry])
    schedule = sources.results.schedule(first, cfg.date)
    if len(schedule):
        warehouse.write(SCHEDULE_SCHEMA, schedule[SCHEDULE_SCHEMA.column_names])
    if first > yesterday:
        report.add("ingest", f"nothing new: results are in up to {pointer}")
        return
    wanted = sorted({d for d in schedule["game_date"] if first <= d <= yesterday}
                    | {d for d in retry if d <= yesterday})
    box = sources.results.box_scores(first, yesterday)
    box = box[box["game_date"].isin(wanted)]
    recorded = record_checks(warehouse, check_days(box, schedule[schedule["game_date"].isin(wanted)], today=cfg.date),
                             cfg.stamp())
    usable = recorded.loc[recorded["status"].isin(USABLE), "game_date"]
    written = box[box["game_date"].isin(set(usable))]
    if len(written):
        warehouse.write(BOX_SCORES_SCHEMA, written)
    held = recorded[recorded["status"] == HELD]
    report.held = [f"{r.game_date}: {r.problems}" for r in held.itertuples()]
    report.add("ingest", f"results {first} .. {yesterday}: {len(wanted)} game day(s), {len(written)} player-games "
                         "written")
    report.add("checks", f"{len(usable)} day(s) usable" + (f", {len(held)} held: " + " | ".join(report.held)
                                                           if len(held) else ""))


def ingest_lines(cfg: DailyConfig, sources: Sources, warehouse: Warehouse, report: DayReport) -> None:
    """Tonight's lines (the latest snapshot before tip-off wins, as in a backfill)."""
    if sources.lines is None:
        return
    history = warehouse.read(BOX_SCORES_SCHEMA)
    lines = sources.lines.lines(cfg.date, history)
    if len(lines):
        warehouse.write(PROP_LINES_SCHEMA, lines[PROP_LINES_SCHEMA.column_names])
    per_market = lines.groupby("market").size() if len(lines) else pd.Series(dtype=int)
    left_out = [f"{len(sources.lines.unmatched)} naming no known player"] if sources.lines.unmatched else []
    left_out += [f"{n} of market {key}, which no market declares" for key, n in sources.lines.unknown_markets.items()]
    report.add("lines", f"{len(lines)} line(s) for {cfg.date}"
               + (": " + ", ".join(f"{m} {n}" for m, n in per_market.items()) if len(per_market) else "")
               + (f"; left out: {'; '.join(left_out)}" if left_out else ""))


# --- features -----------------------------------------------------------------------------------
def refresh_features(cfg: DailyConfig, warehouse: Warehouse, report: DayReport) -> None:
    """Rebuild the feature rows of recent days whose played rows are missing or out of date, as a
    backfill does: a played game replaces its slate rows (those of players who sat out included; their
    predictions stay, graded void), and slate rows of games not yet played stay."""
    since = cfg.date - dt.timedelta(days=CATCH_UP_DAYS)
    box = warehouse.read(BOX_SCORES_SCHEMA)
    store = read_store(warehouse, since, cfg.date)
    recent = box[box["game_date"] >= since].groupby("game_date").size()
    played = store[store[DEFAULT_MARKET].notna()].groupby("game_date").size()  # a played row has every outcome
    stale = [d for d, n in recent.items() if played.get(d, 0) != n]
    if not stale:
        report.add("features", "up to date")
        return
    first = min(stale)
    features = build_features(box, warehouse.read(PROP_LINES_SCHEMA), since=first)
    warehouse.write(FEATURE_STORE_SCHEMA, features, rebuild=REBUILD)
    report.add("features", f"rebuilt {features['game_date'].nunique()} day(s) from {first}: {len(features)} rows")


# --- grading ------------------------------------------------------------------------------------
def grade(cfg: DailyConfig, warehouse: Warehouse, report: DayReport) -> None:
    """Grade every stored prediction of the recent days whose game has results (a rerun writes nothing)."""
    grades = grade_days(warehouse, cfg.date - dt.timedelta(days=CATCH_UP_DAYS), cfg.date - dt.timedelta(days=1),
                        cfg.stamp())
    if grades.empty:
        report.add("grade", "no predictions with results to grade")
        return
    latest = grades[grades["game_date"] == max(grades["game_date"])]
    void = int((latest["outcome"] == VOID).sum())
    report.add("grade", f"{len(latest)} prediction(s) of {max(grades['game_date'])} graded, {void} void "
                        f"({len(grades)} in the last {CATCH_UP_DAYS} days)")


# --- slate and prediction -----------------------------------------------------------------------
def predict_slate(cfg: DailyConfig, sources: Sources, warehouse: Warehouse, worker_url: str,
                  report: DayReport) -> None:
    """Tonight's slate from the schedule (and the injury report), predicted through the worker."""
    schedule = warehouse.read(SCHEDULE_SCHEMA, date_range=(cfg.date, cfg.date))
    if schedule.empty:
        report.add("slate", f"no games scheduled on {cfg.date}")
        return
    out = None
    if sources.out_list is not None:
        out = sources.out_list.players_out(cfg.date, warehouse.read(BOX_SCORES_SCHEMA))
    if out is not None and len(out):
        warehouse.write(PLAYERS_OUT_SCHEMA, out[PLAYERS_OUT_SCHEMA.column_names])
    stored = read_store(warehouse, cfg.date, cfg.date)
    if stored[DEFAULT_MARKET].notna().any():  # a rerun of an evening whose results are in: too late to predict
        report.add("slate", f"{cfg.date} has results already: nothing to predict")
        return
    if stored.empty:
        rows = build_slate(warehouse, slate_from_schedule(schedule), out, cfg.roster_games)
        rows = rows[rows["game_date"] == cfg.date]
        warehouse.write(FEATURE_STORE_SCHEMA, rows)
        report.add("slate", f"{len(schedule)} game(s), {len(rows)} players"
                            + (f" ({len(out)} ruled out by the injury report)" if out is not None else ""))
    else:
        report.add("slate", f"{len(schedule)} game(s), {len(stored)} players (built earlier)")
    rows = read_store(warehouse, cfg.date, cfg.date)
    if _already_predicted(cfg.date, _served_systems(worker_url, len(rows), cfg.markets), rows, warehouse):
        report.add("predict", f"{cfg.date}: every slate player already predicted by every served system")
        return
    run = predict_date(cfg.date, worker_url, warehouse, source="daily", created_at=cfg.stamp(), markets=cfg.markets)
    report.predicted = run.written
    report.add("predict", run.render())
    if not run.ok:
        done = set(warehouse.read(PREDICTIONS_SCHEMA, date_range=(cfg.date, cfg.date))["player_id"])
        raise WorkerUnavailable(f"predictions for {cfg.date} incomplete: " + "; ".join(run.failed_batches),
                                int((~rows["player_id"].isin(done)).sum()))


def _served_systems(worker_url: str, slate_rows: int, markets: tuple[str, ...]) -> list[tuple[str, str]]:
    """The (market, system) pairs of ``markets`` the worker serves (``GET /``); ``WorkerUnavailable`` when it
    cannot be asked or serves none of them."""
    try:
        answer = httpx.get(f"{worker_url}/", timeout=30.0)
        answer.raise_for_status()
        index = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise WorkerUnavailable(f"the worker at {worker_url} could not be asked what it serves "
                                f"({type(exc).__name__}: {exc})", slate_rows) from None
    served = [(m, s) for m in markets for s in index.get("markets", {}).get(m, {})]
    if not served:
        errors = "; ".join(f"{name}: {error}" for name, error in index.get("errors", {}).items())
        raise WorkerUnavailable(f"the worker at {worker_url} serves no system of {', '.join(markets)} ("
                                f"{errors or 'no production version is registered'})", slate_rows)
    return served


def _already_predicted(day: dt.date, served: list[tuple[str, str]], rows: pd.DataFrame, warehouse: Warehouse) -> bool:
    """Whether every feature row of ``day`` already has a prediction from each (market, system) the
    worker serves, so a rerun of the evening (or of a whole replay) writes nothing, even after a later
    promotion. A system that abstains is owed a prediction only where the row has the market's line."""
    done = warehouse.read(PREDICTIONS_SCHEMA, date_range=(day, day))
    have = set(zip(done["player_id"], done["market"], done["system"], strict=True))
    owed = {(m, s): rows[market(m).line_feature].notna().to_numpy() if systems.module(s).ABSTAINS
            else np.ones(len(rows), bool) for m, s in served}
    return all((p, m, s) in have for m, s in served for p, due in zip(rows["player_id"], owed[(m, s)], strict=True)
               if due)


# --- monitoring ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _drift_reference(warehouse_url: str, season_start: dt.date) -> DriftReference:
    """The training data's feature distribution: the three seasons before the current one."""
    rows = read_store(connect(warehouse_url), season_start - dt.timedelta(days=3 * 365),
                      season_start - dt.timedelta(days=1))
    return drift_reference(rows[rows[DEFAULT_MARKET].notna()])


def monitor(cfg: DailyConfig, warehouse: Warehouse, report: DayReport) -> None:
    """Model metrics of every graded day not yet recorded, data metrics of tonight's rows, the MLflow
    record, and the alerts (POSTed once to the webhook)."""
    window = (cfg.date - dt.timedelta(days=CATCH_UP_DAYS), cfg.date)
    graded = set(warehouse.read(PREDICTION_GRADES_SCHEMA, date_range=window)["game_date"])
    recorded = warehouse.read(MONITORING_SCHEMA, date_range=window)
    recorded = set(recorded.loc[recorded["system"] != DATA_SYSTEM, "game_date"])
    days = sorted(graded - recorded)
    rows = [record_model_metrics(warehouse, day, cfg.stamp()) for day in days]
    for day, day_rows in zip(days, rows, strict=True):
        report.add("monitor", _monitor_line(day, day_rows))
    schedule = warehouse.read(SCHEDULE_SCHEMA)
    season_start = min(schedule.loc[schedule["season"] == season_of(cfg.date), "game_date"], default=cfg.date)
    data_rows = record_data_metrics(warehouse, cfg.date, _drift_reference(warehouse.url, season_start),
                                    now=cfg.stamp())
    psi = data_rows.loc[data_rows["metric"] == "psi_max", "value"]
    report.add("drift", f"max PSI {psi.iloc[0]:.2f} over the last week's feature rows" if len(psi) else "no rows")
    log_days(warehouse, min([*days, cfg.date]), cfg.date, plots=cfg.plots)
    metrics = pd.concat([*rows, data_rows], ignore_index=True)
    client = registry_client()
    served = metrics.loc[metrics["system"] != DATA_SYSTEM, ["market", "system", "model_version"]].drop_duplicates()
    names = {(m, s): market(m).registered_name(s) for m, s in zip(served["market"], served["system"], strict=True)}
    test_mae = {(names[m, s], v): mae for m, s, v in served.itertuples(index=False)
                if (mae := registered_test_mae(client, names[m, s], v)) is not None}
    problem = report.worker_problem
    outcome = raise_alerts(warehouse, cfg.date, metrics, test_mae, cfg.thresholds, cfg.webhook_url, cfg.stamp(),
                           also=[worker_alert(cfg.date, str(problem), problem.unpredicted)] if problem else [])
    report.alerts = [a.line() for a in outcome.alerts]
    delivery = [f"{outcome.notified} sent to the webhook"] if outcome.notified else []
    delivery += [outcome.webhook_error] if outcome.webhook_error else []
    delivery += [f"{outcome.pending} to send again on a later run"] if outcome.pending else []
    delivery += [f"{outcome.given_up} given up after {DELIVERY_ATTEMPTS} tries"] if outcome.given_up else []
    report.add("alerts", ("; ".join(report.alerts) or "none") + (f" ({'; '.join(delivery)})" if delivery else ""))


def _monitor_line(day: dt.date, rows: pd.DataFrame) -> str:
    day_rows = rows[(rows["period"] == "day") & (rows["metric"] == "mae")].dropna(subset=["value"])
    parts = [f"{r.market} {r.system} v{r.model_version} MAE {r.value:.2f}" for r in day_rows.itertuples()]
    return f"{day}: " + (", ".join(parts) if parts else "no graded predictions")


# --- the job ------------------------------------------------------------------------------------
def retrain_if_due(cfg: DailyConfig, warehouse: Warehouse, worker: Worker, report: DayReport) -> None:
    """Retrain when the last retrain is ``retrain_every`` days old or more; the worker reloads at once
    when a challenger was promoted."""
    from live.retrain import last_retrain, retrain

    if cfg.retrain_every <= 0:
        return
    last = last_retrain()
    if last is not None and (cfg.date - last).days < cfg.retrain_every:
        report.add("retrain", f"not due: last retrain {last}")
        return
    result = retrain(cfg.date, gate_days=cfg.gate_days, warehouse=warehouse, train_start=cfg.train_start,
                     markets=cfg.markets)
    report.add("retrain", result.render())
    if result.promoted:
        try:
            worker.reload()
        except httpx.HTTPError as exc:  # the slate step finds out whether the worker serves at all
            report.add("retrain", settings.hide_secrets(f"the worker did not reload ({type(exc).__name__}: {exc}); "
                                                        "it loads the promotion at its next registry poll"))


def run_daily(cfg: DailyConfig, sources: Sources, warehouse: Warehouse, worker: Worker,
              bus: EventBus | None = None) -> DayReport:
    """One game day, start to end; see the module docstring for the steps. Every step reads the box
    scores: they are read once and held (``CachedTables``); a replay passes a warehouse holding them
    already, so its evenings share one read."""
    if not isinstance(warehouse, CachedTables):
        warehouse = CachedTables(warehouse, BOX_SCORES_SCHEMA)
    report = DayReport(cfg.date)
    ingest(cfg, sources, warehouse, report)
    ingest_lines(cfg, sources, warehouse, report)
    refresh_features(cfg, warehouse, report)
    grade(cfg, warehouse, report)
    retrain_if_due(cfg, warehouse, worker, report)
    if cfg.predict:
        try:
            predict_slate(cfg, sources, warehouse, worker.url, report)
        except WorkerUnavailable as exc:  # an alert of its own: monitoring still runs
            report.worker_problem = exc
            report.add("predict", str(exc))
        else:
            if bus is not None:
                bus.publish(DateReady(cfg.date))
                report.add("publish", f"feature-store-date-ready {cfg.date}")
    monitor(cfg, warehouse, report)
    return report
