"""Walk-forward backtest: retrain every month on what was known before it, predict the month.

Hyperparameters are fixed for the whole walk (the latest registered version's, or the spec's
parameters): nothing is tuned on the games being predicted. Every prediction goes to
``player_prop_predictions`` marked ``backtest:<run id>``, so the backtest can be read back and
compared with the lines game by game.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from tqdm import tqdm

import settings
from contracts import DEFAULT_EXPERIMENT, PREDICTIONS_SCHEMA
from features.backfill import month_chunks
from features.definitions import FEATURE_NAMES
from registry import systems
from registry.points_model import Bundle, residual_quantiles
from registry.predictions import prediction_rows
from registry.tracking import adopt_entry_run, experiment_id_for
from training.metrics import line_metrics, mae, within_pct
from training.spec import ConfigError, RunSpec, SystemSpec
from training.splits import time_splits
from training.train import SPEC_ARTIFACT, ensure_store
from warehouse import Warehouse, connect


@dataclass
class BacktestResult:
    run_id: str
    predictions: pd.DataFrame
    metrics: dict[str, dict[str, float]]


def fixed_params(system: str, spec: SystemSpec) -> dict:
    """The spec's parameters, with those of its search space taken from the latest registered
    version of this system where there is one (what tuning chose last)."""
    params = dict(spec.params)
    if not spec.search_space:
        return params
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{system}'", order_by=["version_number DESC"],
                                                max_results=1)
    except mlflow.exceptions.MlflowException:
        versions = []
    if versions and versions[0].run_id:
        logged = client.get_run(versions[0].run_id).data.params
        params.update({k: p.cast(logged[k]) for k, p in spec.search_space.items() if k in logged})
    return params


Fold = dict[str, tuple[np.ndarray, list[float]]]  # system -> (predictions, validation residual quantiles)


def _fold_predictions(store: pd.DataFrame, first: dt.date, last: dt.date, spec: RunSpec,
                      params: dict[str, dict]) -> tuple[pd.DataFrame, Fold]:
    """The played games in [first, last], each system's predictions for them and its validation
    residual quantiles (for the probability of the over)."""
    splits = time_splits(store, end=last, test_start=first, val_fraction=spec.val_fraction)
    bundles: dict[str, Bundle] = {}
    out: Fold = {}
    for system in spec.systems:  # the table's order: members before the ensemble
        module = systems.module(system)
        members = dict(bundles) if module.COMBINES else {}
        model = module.fit(params[system], splits, spec.seed, None, members)
        bundles[system] = bundle = Bundle({"kind": module.KIND, "features": list(FEATURE_NAMES)}, model, members)
        val, test = (bundle.predict(splits.x(part)) for part in ("val", "test"))
        out[system] = (test, residual_quantiles(splits.y("val"), val))
    return splits.test, out


def window_metrics(games: pd.DataFrame) -> dict[str, float]:
    """The training runs' test keys over some backtest predictions joined to their games."""
    return {"test_mae": mae(games["points"], games["predicted_points"]),
            "test_within_3_pct": within_pct(games["points"], games["predicted_points"]),
            "n_test": float(len(games)), **line_metrics(games, games["predicted_points"].to_numpy())}


def _epoch_ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)


def _log_system_run(system: str, joined: pd.DataFrame, months: list[tuple[int, dt.date]], end: dt.date,
                    params: dict, experiment_id: str, parent_id: str) -> dict[str, float]:
    """One child run of the backtest per system, with the training runs' metric keys so the two line
    up in the runs table: step ``i`` is the ``i``-th month of the window (timestamp its first day), and
    the whole window is logged last, at the step after the last month, so it is the value shown."""
    mine = joined[joined["system"] == system]
    client = MlflowClient()
    with mlflow.start_run(run_name=f"{system} backtest", experiment_id=experiment_id, nested=True,
                          parent_run_id=parent_id) as run:
        mlflow.set_tags({"system": system, "kind": "backtest",
                         "mlflow.note.content": "Steps are the months of the window; the last step is the "
                                                "whole window, the value the runs table shows."})
        if params:
            mlflow.log_params(params)
        for step, first in months:
            month = mine[mine["model_version"] == _fold_version(first)]
            client.log_batch(run.info.run_id, [Metric(k, v, _epoch_ms(first), step)
                                               for k, v in window_metrics(month).items()])
        whole = window_metrics(mine)
        client.log_batch(run.info.run_id, [Metric(k, v, _epoch_ms(end), len(months)) for k, v in whole.items()])
    return whole


def _fold_version(first: dt.date) -> str:
    """``model_version`` of a fold's predictions: the month it was refitted for."""
    return f"backtest-{first:%Y-%m}"


def backtest(spec: RunSpec, warehouse: Warehouse | None = None, *, experiment_name: str = DEFAULT_EXPERIMENT,
             progress: bool = True) -> BacktestResult:
    """Walk through the spec's backtest window (``spec.override(backtest_start=..., backtest_end=...)``
    for another) with every system of the spec: a parent run for the window, a child run per system."""
    start, end = spec.backtest_start, spec.backtest_end
    warehouse = warehouse or connect()
    store = ensure_store(warehouse, progress)
    window = store[(store["game_date"] >= start) & (store["game_date"] <= end) & store["points"].notna()]
    if window.empty:
        raise ConfigError(f"no played games in the feature store between {start} and {end}")
    mlflow.set_tracking_uri(settings.tracking_uri())
    experiment_id = experiment_id_for(experiment_name)
    entry_run = adopt_entry_run("backtest", experiment_id)
    params = {s: fixed_params(s, settings_) for s, settings_ in spec.systems.items()}

    with mlflow.start_run(run_name=f"backtest {start}..{end}", experiment_id=experiment_id) as run:
        mlflow.set_tags({"kind": "backtest", "window": f"{start}..{end}", "retrain": "monthly"})
        mlflow.log_params({"start_date": start, "end_date": end, "systems": ",".join(spec.systems),
                           **spec.log_params()})
        mlflow.log_dict(spec.raw, SPEC_ARTIFACT)
        source = f"backtest:{run.info.run_id}"
        rows, months = [], []
        chunks = month_chunks(start, end)
        for step, (first, last) in enumerate(tqdm(chunks, desc="backtest", unit="month", disable=not progress)):
            games = window[(window["game_date"] >= first) & (window["game_date"] <= last)]
            if games.empty:
                continue
            months.append((step, first))
            fold_games, folds = _fold_predictions(store, first, last, spec, params)
            for system, (predicted, quantiles) in folds.items():
                bundle = Bundle({"residual_quantiles": quantiles}, None, {})
                p_over = bundle.p_over(predicted, fold_games["vegas_points_line"].to_numpy(float))
                rows.append(prediction_rows(fold_games, system, _fold_version(first), predicted, p_over, source))
        predictions = pd.concat(rows, ignore_index=True)
        warehouse.write(PREDICTIONS_SCHEMA, predictions)

        joined = predictions.merge(window[["game_id", "player_id", "points", "vegas_points_line"]],
                                   on=["game_id", "player_id"])
        metrics = {system: _log_system_run(system, joined, months, end, params[system], experiment_id,
                                           run.info.run_id) for system in spec.systems}
        mlflow.log_text(pd.DataFrame(metrics).T.round(3).to_string(), "backtest_metrics.txt")
    if entry_run:
        MlflowClient().set_tag(entry_run, "backtest_run", run.info.run_id)
    return BacktestResult(run.info.run_id, predictions, metrics)
