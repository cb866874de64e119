"""Walk-forward backtest: retrain every month on what was known before it, predict the month.

Hyperparameters are fixed for the whole walk (the latest registered version's, or the system's
defaults): nothing is tuned on the games being predicted. Every prediction goes to
``player_prop_predictions`` marked ``backtest:<run id>``, so the backtest can be read back and
compared with the lines game by game.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import ModuleType

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from tqdm import tqdm

import settings
from contracts import DEFAULT_EXPERIMENT, ENSEMBLE_V1, MOVING_AVERAGE, PREDICTIONS_SCHEMA, SYSTEMS
from features.backfill import month_chunks
from registry.points_model import Bundle, residual_quantiles
from registry.predictions import prediction_rows
from training import ensemble, moving_average
from training.metrics import line_metrics, mae, within_pct
from training.splits import time_splits
from training.train import TUNED, ConfigError, check_systems, detach_entry_run, ensure_store, experiment_id_for
from warehouse import Warehouse, connect


@dataclass
class BacktestResult:
    run_id: str
    predictions: pd.DataFrame
    metrics: dict[str, dict[str, float]]


def fixed_params(module: ModuleType) -> dict:
    """The tuned parameters of the latest registered version of this system, else its defaults."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{module.NAME}'", order_by=["version_number DESC"],
                                                max_results=1)
    except mlflow.exceptions.MlflowException:
        versions = []
    if not versions or not versions[0].run_id:
        return dict(module.DEFAULTS)
    logged = client.get_run(versions[0].run_id).data.params
    return {k: type(v)(float(logged[k])) if k in logged else v for k, v in module.DEFAULTS.items()}


Fold = dict[str, tuple[np.ndarray, list[float]]]  # system -> (predictions, validation residual quantiles)


def _fold_predictions(store: pd.DataFrame, first: dt.date, last: dt.date, systems: tuple[str, ...],
                      params: dict[str, dict], seed: int) -> tuple[pd.DataFrame, Fold]:
    """The played games in [first, last], each system's predictions for them and its validation
    residual quantiles (for the probability of the over)."""
    splits = time_splits(store, end=last, test_start=first)
    out: Fold = {}
    val_preds: dict[str, np.ndarray] = {}
    test_preds: dict[str, np.ndarray] = {}
    for system in systems:
        if system == ENSEMBLE_V1:
            continue
        if system == MOVING_AVERAGE:
            module, model = moving_average, moving_average.fit(splits)
        else:
            module = TUNED[system]
            model = module.fit(params[system], splits, seed)
        val_preds[system], test_preds[system] = (module.predict(model, splits.x(part)) for part in ("val", "test"))
    if ENSEMBLE_V1 in systems:
        weights = ensemble.fit_weights(val_preds, splits.y("val"))
        val_preds[ENSEMBLE_V1] = ensemble.predict(weights, val_preds)
        test_preds[ENSEMBLE_V1] = ensemble.predict(weights, test_preds)
    for system in systems:
        out[system] = (test_preds[system], residual_quantiles(splits.y("val"), val_preds[system]))
    return splits.test, out


def backtest(start: dt.date, end: dt.date, systems: tuple[str, ...] = SYSTEMS, seed: int = 42,
             experiment_name: str = DEFAULT_EXPERIMENT, warehouse: Warehouse | None = None,
             progress: bool = True) -> BacktestResult:
    if start > end:
        raise ConfigError(f"start_date {start} is after end_date {end}")
    check_systems(systems)
    warehouse = warehouse or connect()
    store = ensure_store(warehouse, progress)
    window = store[(store["game_date"] >= start) & (store["game_date"] <= end) & store["points"].notna()]
    if window.empty:
        raise ConfigError(f"no played games in the feature store between {start} and {end}")
    mlflow.set_tracking_uri(settings.tracking_uri())
    experiment_id = experiment_id_for(experiment_name)
    entry_run = detach_entry_run()
    params = {s: fixed_params(TUNED[s]) for s in systems if s in TUNED}

    with mlflow.start_run(run_name=f"backtest {start}..{end}", experiment_id=experiment_id) as run:
        mlflow.set_tags({"kind": "backtest", "window": f"{start}..{end}", "retrain": "monthly"})
        mlflow.log_params({"start_date": start, "end_date": end, "systems": ",".join(systems), "seed": seed,
                           **{f"{s}.{k}": v for s, p in params.items() for k, v in p.items()}})
        source = f"backtest:{run.info.run_id}"
        rows = []
        for first, last in tqdm(month_chunks(start, end), desc="backtest", unit="month", disable=not progress):
            games = window[(window["game_date"] >= first) & (window["game_date"] <= last)]
            if games.empty:
                continue
            fold_games, folds = _fold_predictions(store, first, last, systems, params, seed)
            for system, (predicted, quantiles) in folds.items():
                bundle = Bundle({"residual_quantiles": quantiles}, None, {})
                p_over = bundle.p_over(predicted, fold_games["vegas_points_line"].to_numpy(float))
                rows.append(prediction_rows(fold_games, system, f"backtest-{first:%Y-%m}", predicted, p_over,
                                            source))
        predictions = pd.concat(rows, ignore_index=True)
        warehouse.write(PREDICTIONS_SCHEMA, predictions)

        joined = predictions.merge(window[["game_id", "player_id", "points", "vegas_points_line"]],
                                   on=["game_id", "player_id"])
        metrics: dict[str, dict[str, float]] = {}
        for system in systems:
            mine = joined[joined["system"] == system]
            values = {"test_mae": mae(mine["points"], mine["predicted_points"]),
                      "test_within_3_pct": within_pct(mine["points"], mine["predicted_points"]),
                      "n_test": float(len(mine)),
                      **line_metrics(mine, mine["predicted_points"].to_numpy())}
            metrics[system] = values
            mlflow.log_metrics({f"{system}.{k}": v for k, v in values.items()})
        mlflow.log_text(pd.DataFrame(metrics).T.round(3).to_string(), "backtest_metrics.txt")
    if entry_run:
        MlflowClient().set_tag(entry_run, "backtest_run", run.info.run_id)
    return BacktestResult(run.info.run_id, predictions, metrics)
