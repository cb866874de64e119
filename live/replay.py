"""Season replay: the daily job run for every date of a past range, as the platform would have lived it.

The replay keeps its own warehouse and MLflow store under ``home`` (the user's registry and
production aliases are never touched). It starts from what was known before the range: box scores
before ``start``, features built from them, and models trained on them and promoted through the
gate. Each simulated evening then runs :func:`live.daily.run_daily`: yesterday's results come in,
predictions are graded, the slate is built from the schedule and the roster guess (never the box
score of the day), and the models are retrained weekly through the gate. What it reports is what a
user would have got; the gap to a walk-forward backtest of the same models with the lineups known
is printed beside it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

import settings
from contracts import (
    BOX_SCORES_SCHEMA,
    DEFAULT_EXPERIMENT,
    GRADED,
    PREDICTION_GRADES_SCHEMA,
    PREDICTIONS_SCHEMA,
    PROP_LINES_SCHEMA,
    VOID,
)
from features.build import build_features
from features.definitions import FEATURE_STORE_SCHEMA, feature_names
from features.store import read_store
from live.daily import DailyConfig, DayReport, run_daily
from live.defaults import GATE_DAYS, RETRAIN_EVERY_DAYS, TRAIN_YEARS
from markets import DEFAULT_MARKET, MARKETS, registered
from monitoring.tracking import redraw_plots
from sources.base import Sources
from training.metrics import priced_metrics
from warehouse import Warehouse, connect
from warehouse.cached import CachedTables
from warehouse.ingest import InputError

log = logging.getLogger(__name__)

PREDICTION_GRADES_KEY = list(PREDICTION_GRADES_SCHEMA.key)
# what the replay reports of the graded lines, scored as the backtest scores them (``priced_metrics``)
REPLAY_LINE_KEYS = ("live_line_mae", "live_model_mae_on_lines", "live_brier", "live_brier_graded", "live_ece_graded")

EVENING_UTC = dt.time(22, 0)  # when a simulated day's job runs: before the evening's tip-offs


@dataclass
class ReplayConfig:
    start: dt.date
    end: dt.date
    home: Path  # the replay's own warehouse and MLflow store
    sources: Sources
    retrain_every: int = RETRAIN_EVERY_DAYS
    gate_days: int = GATE_DAYS
    train_years: int = TRAIN_YEARS
    webhook_url: str | None = None
    markets: tuple[str, ...] = (DEFAULT_MARKET,)  # points by default, so the figure stays comparable

    def check(self) -> None:
        if self.start > self.end:
            raise InputError(f"start_date {self.start} is after end_date {self.end}")
        if self.retrain_every < 0:
            raise InputError(f"retrain_every is {self.retrain_every}; it must be 0 (never) or more days")
        if self.train_years < 1:
            raise InputError(f"train_years is {self.train_years}; it must be at least 1 season")
        if self.gate_days < 1:
            raise InputError(f"gate_days is {self.gate_days}; it must be at least 1")


@dataclass
class ReplayReport:
    start: dt.date
    end: dt.date
    systems: dict[str, dict[str, float]] = field(default_factory=dict)
    coverage: float = float("nan")
    played: int = 0
    days: list[DayReport] = field(default_factory=list)

    def render(self) -> str:
        keys = ("live_mae", "within_3_pct", "graded", "void", "hit_rate", "calls", "line_mae", "model_mae_on_lines",
                "brier", "brier_graded", "ece_graded", "known_lineup_mae", "gap", "backtest_mae")
        rows = [f"replay {self.start} .. {self.end}: {self.played} player-games played, "
                f"{self.coverage:.1%} of them on a slate",
                "| system | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for system, values in self.systems.items():
            rows.append(f"| {system} | " + " | ".join(_cell(values.get(k)) for k in keys) + " |")
        return "\n".join(rows)

    def to_json(self) -> dict:
        return {"start": str(self.start), "end": str(self.end), "played": self.played,
                "coverage": self.coverage, "systems": self.systems}


def _cell(value: float | None) -> str:
    if value is None or value != value:
        return ""
    return f"{value:.0f}" if float(value).is_integer() and abs(value) > 1 else f"{value:.3f}"


@contextlib.contextmanager
def isolated(home: Path) -> Iterator[str]:
    """Point the warehouse, MLflow and Optuna at ``home`` for the replay; yields the warehouse URL.
    The ``mlflow run`` entry run and experiment of the user's store (``MLFLOW_RUN_ID``,
    ``MLFLOW_EXPERIMENT_ID``) stay outside: their ids mean nothing in the replay's store."""
    import mlflow

    home.mkdir(parents=True, exist_ok=True)
    env = {"WAREHOUSE_URL": f"duckdb:///{home / 'warehouse.duckdb'}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
           "MLFLOW_ARTIFACT_ROOT": (home / "artifacts").as_uri(),
           "OPTUNA_STORAGE": f"sqlite:///{home / 'optuna.db'}",
           "MLFLOW_RUN_ID": None, "MLFLOW_EXPERIMENT_ID": None}
    saved = {k: os.environ.get(k) for k in env}
    _set_environment(env)
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    try:
        yield env["WAREHOUSE_URL"]
    finally:
        _set_environment(saved)
        mlflow.set_tracking_uri(settings.tracking_uri())


def _set_environment(values: dict[str, str | None]) -> None:
    """Set each variable, or remove it where its value is None."""
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def bootstrap(warehouse: Warehouse, sources: Sources, start: dt.date) -> str:
    """The warehouse as it stood the evening before ``start``: box scores and lines before it and
    their features. Skipped when the replay's warehouse already holds them (a resumed replay)."""
    if warehouse.count(BOX_SCORES_SCHEMA):
        return "warehouse already bootstrapped"
    box = sources.results.box_scores(dt.date(1900, 1, 1), start - dt.timedelta(days=1))
    if box.empty:
        raise InputError(f"no box scores before start_date {start}: nothing to learn from")
    warehouse.write(BOX_SCORES_SCHEMA, box)
    features = build_features(box, warehouse.read(PROP_LINES_SCHEMA))
    warehouse.write(FEATURE_STORE_SCHEMA, features)
    return f"bootstrapped {len(box)} player-games up to {max(box['game_date'])}"


def evening(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, EVENING_UTC, tzinfo=dt.UTC)


def replay(cfg: ReplayConfig, progress: bool = True) -> ReplayReport:
    from live.retrain import retrain
    from live.worker import worker_for
    from registry.promotion import production_version, registry_client
    from registry.tracking import adopt_entry_run

    cfg.check()
    report = ReplayReport(cfg.start, cfg.end)
    # the `mlflow run -e replay` run lives in the user's store: taken before the replay points MLflow at its own
    entry_run = adopt_entry_run("replay")
    with isolated(cfg.home) as url:
        warehouse = CachedTables(connect(url), BOX_SCORES_SCHEMA)  # the box scores are read once for all evenings
        log.info(bootstrap(warehouse, cfg.sources, cfg.start))  # a bad input file is refused before any store exists
        with warehouse.held_open():  # the replay's own store: opened once, not at each of its thousands of reads
            train_start = dt.date(cfg.start.year - cfg.train_years, 8, 1)
            baselines = [MARKETS[m].registered_name("moving_average") for m in cfg.markets]
            if any(production_version(registry_client(), name) is None for name in baselines):
                log.info(retrain(cfg.start, cfg.gate_days, warehouse, train_start=train_start,
                                 markets=cfg.markets).render())
            with worker_for(warehouse) as worker:
                days = [cfg.start + dt.timedelta(days=i) for i in range((cfg.end - cfg.start).days + 2)]
                for day in tqdm(days, desc="replay", unit="day", disable=not progress):
                    # the day after the range only takes in the last results and grades them
                    day_cfg = DailyConfig(day, retrain_every=cfg.retrain_every if day <= cfg.end else 0,
                                          gate_days=cfg.gate_days, webhook_url=cfg.webhook_url, now=evening(day),
                                          predict=day <= cfg.end, train_start=train_start, markets=cfg.markets,
                                          plots=False)
                    report.days.append(run_daily(day_cfg, cfg.sources, warehouse, worker))
            redraw_plots(warehouse, cfg.start, days[-1])  # once, not every evening
            summarize(warehouse, report)
        replay_run = log_report(report)
        replay_store = settings.tracking_uri()
    if entry_run:  # back in the user's store
        log_report(report, entry_run, {"replay_tracking_uri": replay_store, "replay_run": replay_run})
    return report


def log_report(report: ReplayReport, run_id: str | None = None, tags: dict[str, str] | None = None) -> str:
    """The replay's figures on a run: per system the same keys the table prints, and the table itself.
    Without ``run_id``, a new run ``replay START..END`` of the current store (the replay's own); with
    it, that run (the ``mlflow run -e replay`` run of the user's store). Returns the run's id."""
    import mlflow
    from mlflow.entities import Metric, RunTag

    from registry.tracking import experiment_id_for

    if run_id is None:
        with mlflow.start_run(run_name=f"replay {report.start}..{report.end}",
                              experiment_id=experiment_id_for(DEFAULT_EXPERIMENT)) as run:
            return log_report(report, run.info.run_id, tags)
    client = mlflow.tracking.MlflowClient()
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    figures = {"coverage": report.coverage, "played": float(report.played),
               **{f"{system}.{key}": value for system, values in report.systems.items()
                  for key, value in values.items()}}
    client.log_batch(run_id, metrics=[Metric(key, value, now, 0) for key, value in figures.items() if value == value],
                     tags=[RunTag(key, value) for key, value in
                           {"kind": "replay", "window": f"{report.start}..{report.end}", **(tags or {})}.items()])
    client.log_text(run_id, report.render(), "replay.md")
    return run_id


# --- the figures a user gets --------------------------------------------------------------------
def summarize(warehouse: Warehouse, report: ReplayReport) -> None:
    """Live figures per system over the graded predictions of the range, the slate coverage of the
    games actually played, and the same models run on the feature rows built from each day's box
    score: on the same player-games (``known_lineup_mae``: the cost of guessing who plays) and on
    every played player-game (``backtest_mae``: the walk-forward backtest of the range)."""
    window = (report.start, report.end)
    grades = warehouse.read(PREDICTION_GRADES_SCHEMA, date_range=window)
    predictions = warehouse.read(PREDICTIONS_SCHEMA, date_range=window)
    box = warehouse.read(BOX_SCORES_SCHEMA, date_range=window)
    store = read_store(warehouse, *window)
    played = store[store[DEFAULT_MARKET].notna()]
    report.played = len(box)
    slate_keys = set(zip(predictions["game_id"], predictions["player_id"], strict=True))
    on_slate = [k in slate_keys for k in zip(box["game_id"], box["player_id"], strict=True)]
    report.coverage = float(np.mean(on_slate)) if len(box) else float("nan")
    known = known_lineup_errors(predictions, grades, played)
    # P(under) is stored with the prediction, not the grade: the graded Brier score needs both sides
    grades = grades.merge(predictions[[*PREDICTION_GRADES_KEY, "p_under"]], on=PREDICTION_GRADES_KEY, how="left")
    grades = grades.assign(system=[MARKETS[m].registered_name(s)
                                   for m, s in zip(grades["market"], grades["system"], strict=True)])
    for system, mine in grades.groupby("system"):
        graded = mine[mine["outcome"] == GRADED]
        calls = graded[graded["ou_result"].isin(["win", "loss"])]
        priced = graded[graded["p_over"].notna()]
        prices = {"line": priced["line"], "recommendation": priced["recommendation"], "p_over": priced["p_over"],
                  "p_under": priced["p_under"]}
        on_lines = priced_metrics(priced["actual_points"].to_numpy(float), priced["predicted_points"].to_numpy(float),
                                  prices, "live")
        values = {
            "live_mae": float(graded["abs_error"].mean()),
            "within_3_pct": float((graded["abs_error"] <= 3).mean() * 100),
            "graded": float(len(graded)), "void": float((mine["outcome"] == VOID).sum()),
            "hit_rate": float((calls["ou_result"] == "win").mean() * 100) if len(calls) else float("nan"),
            "calls": float(len(calls)),
            **{key.removeprefix("live_"): on_lines[key] for key in REPLAY_LINE_KEYS if key in on_lines},
            **known.get(str(system), {}),
        }
        if "known_lineup_mae" in values:
            values["gap"] = values["live_mae"] - values["known_lineup_mae"]
        report.systems[str(system)] = values


def known_lineup_errors(predictions: pd.DataFrame, grades: pd.DataFrame,
                        played: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Each day's production version of each system (the one that predicted its slate) run on that
    day's played feature rows: MAE on the graded player-games and on all of them."""
    import mlflow

    graded = set(zip(grades.loc[grades["outcome"] == GRADED, "game_id"],
                     grades.loc[grades["outcome"] == GRADED, "player_id"], strict=True))
    names = [MARKETS[m].registered_name(s) for m, s in zip(predictions["market"], predictions["system"], strict=True)]
    served = (predictions.assign(system=names).drop_duplicates(["game_date", "system"])
              [["game_date", "system", "model_version"]])
    errors: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for (system, version), days in served.groupby(["system", "model_version"]):
        market = registered(system)[0]
        rows = played[played["game_date"].isin(set(days["game_date"]))]
        if rows.empty:
            continue
        model = mlflow.pyfunc.load_model(f"models:/{system}/{version}")
        predicted = np.asarray(model.predict(rows[feature_names(market)].astype(float).reset_index(drop=True)), float)
        error = np.abs(rows[market.name].to_numpy(float) - predicted)
        was_graded = np.array([k in graded for k in zip(rows["game_id"], rows["player_id"], strict=True)])
        predicted_rows = ~np.isnan(predicted)  # a system that abstains (no line) is scored where it predicted
        errors.setdefault(str(system), []).append((error[predicted_rows], was_graded[predicted_rows]))
    out = {}
    for system, parts in errors.items():
        error, was_graded = np.concatenate([e for e, _ in parts]), np.concatenate([g for _, g in parts])
        out[system] = {"known_lineup_mae": float(error[was_graded].mean()), "backtest_mae": float(error.mean()),
                       "backtest_n": float(len(error))}
    return out


def write_result(report: ReplayReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2, sort_keys=True))
