"""Walk-forward backtest: retrain every month on what was known before it (from the spec's data start),
predict the month, for every market of the spec.

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
from markets import MARKETS, Market
from registry import probability, systems
from registry.points_model import Bundle
from registry.predictions import PRICE_COLUMNS, prediction_rows, priced
from registry.tracking import adopt_entry_run, experiment_id_for
from training.metrics import mae, priced_metrics, within_pct
from training.spec import ConfigError, RunSpec, SystemSpec
from training.splits import time_splits
from training.train import SPEC_ARTIFACT, ensure_store
from warehouse import Warehouse, connect


@dataclass
class BacktestResult:
    run_id: str
    predictions: pd.DataFrame
    metrics: dict[str, dict[str, float]]  # registered model name -> the window's metrics

    def render(self) -> str:
        """One row per market and system: the figures issue readers compare (MAE, the line's, Brier, ...)."""
        keys = ("test_mae", "test_model_mae_on_lines", "test_line_mae", "test_hit_rate", "test_brier", "test_ece",
                "test_brier_graded", "test_ece_graded", "n_test_lines")
        rows = ["| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for name, values in self.metrics.items():
            rows.append(f"| {name} | " + " | ".join(f"{values[k]:.4f}" if k in values else "" for k in keys) + " |")
        return "\n".join(rows)


def fixed_params(system: str, spec: SystemSpec) -> dict:
    """The spec's parameters, with those of its search space taken from the latest registered
    version of this registered model where there is one (what tuning chose last)."""
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


Fold = dict[str, tuple[np.ndarray, dict]]  # system -> (predictions, its distribution fitted on validation)


def _fold_predictions(store: pd.DataFrame, first: dt.date, last: dt.date, spec: RunSpec, market: Market,
                      params: dict[str, dict]) -> tuple[pd.DataFrame, Fold]:
    """The played games in [first, last], each system's predictions of the market for them and its
    predictive distribution fitted on validation (for P(over), P(push), P(under))."""
    splits = time_splits(store, spec.start_date, last, first, spec.val_fraction, market)
    bundles: dict[str, Bundle] = {}
    out: Fold = {}
    for system in spec.systems:  # the table's order: members before the ensemble
        module = systems.module(system)
        members = {name: bundles[name] for name in systems.members_of(system, tuple(bundles))}
        model = module.fit(params[system], splits, spec.seed, None, members)
        bundles[system] = bundle = Bundle({"kind": module.KIND, "features": splits.features}, model, members)
        val, test = (bundle.predict(splits.x(part)) for part in ("val", "test"))
        out[system] = (test, systems.fit_distribution(system, model, market.distribution, splits.y("val"), val,
                                                      splits.val[market.line_feature].to_numpy(float)))
    return splits.test, out


def window_metrics(games: pd.DataFrame, market: Market) -> dict[str, float]:
    """The training runs' test keys over some backtest predictions joined to their games' outcomes."""
    if games.empty:
        return {}
    out = {"test_mae": mae(games[market.name], games["predicted_points"]),
           "test_within_3_pct": within_pct(games[market.name], games["predicted_points"]),
           "n_test": float(len(games))}
    lined = games[games["line"].notna()]
    out.update(priced_metrics(lined[market.name], lined["predicted_points"],
                              {c: lined[c].to_numpy() for c in PRICE_COLUMNS}))
    return out


def _epoch_ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)


def _log_system_run(market: Market, system: str, joined: pd.DataFrame, months: list[tuple[int, dt.date]],
                    end: dt.date, params: dict, experiment_id: str, parent_id: str) -> dict[str, float]:
    """One child run of the backtest per market and system, with the training runs' metric keys so the
    two line up in the runs table: step ``i`` is the ``i``-th month of the window (timestamp its first
    day), and the whole window is logged last, at the step after the last month, so it is the value shown."""
    mine = joined[(joined["system"] == system) & (joined["market"] == market.name)]
    client = MlflowClient()
    with mlflow.start_run(run_name=f"{market.registered_name(system)} backtest", experiment_id=experiment_id,
                          nested=True, parent_run_id=parent_id) as run:
        mlflow.set_tags({"system": system, "market": market.name, "kind": "backtest",
                         "mlflow.note.content": "Steps are the months of the window; the last step is the "
                                                "whole window, the value the runs table shows."})
        if params:
            mlflow.log_params(params)
        for step, first in months:
            month = mine[mine["model_version"] == _fold_version(first)]
            client.log_batch(run.info.run_id, [Metric(k, v, _epoch_ms(first), step)
                                               for k, v in window_metrics(month, market).items()])
        whole = window_metrics(mine, market)
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
    window = store[(store["game_date"] >= start) & (store["game_date"] <= end)]
    if window.empty:
        raise ConfigError(f"no played games in the feature store between {start} and {end}")
    mlflow.set_tracking_uri(settings.tracking_uri())
    experiment_id = experiment_id_for(experiment_name)
    entry_run = adopt_entry_run("backtest", experiment_id)
    markets = [MARKETS[m] for m in spec.markets]
    params = {(m.name, s): fixed_params(m.registered_name(s), settings_) for m in markets
              for s, settings_ in spec.systems.items()}

    with mlflow.start_run(run_name=f"backtest {start}..{end}", experiment_id=experiment_id) as run:
        mlflow.set_tags({"kind": "backtest", "window": f"{start}..{end}", "retrain": "monthly"})
        mlflow.log_params({"start_date": start, "end_date": end, "systems": ",".join(spec.systems),
                           "markets": ",".join(spec.markets), **spec.log_params()})
        mlflow.log_dict(spec.raw, SPEC_ARTIFACT)
        source = f"backtest:{run.info.run_id}"
        rows, months = [], []
        chunks = month_chunks(start, end)
        steps = [(m, step, chunk) for m in markets for step, chunk in enumerate(chunks)]
        for market, step, (first, last) in tqdm(steps, desc="backtest", unit="month", disable=not progress):
            games = window[(window["game_date"] >= first) & (window["game_date"] <= last) & window[market.name].notna()]
            if games.empty:
                continue
            if market is markets[0]:
                months.append((step, first))
            mine = {s: params[(market.name, s)] for s in spec.systems}
            fold_games, folds = _fold_predictions(store, first, last, spec, market, mine)
            line = fold_games[market.line_feature].to_numpy(float)
            for system, (predicted, distribution) in folds.items():
                prices = priced(probability.probabilities(distribution, predicted, line), line)
                rows.append(prediction_rows(fold_games, market.name, system, _fold_version(first), predicted, prices,
                                            source))
        predictions = pd.concat(rows, ignore_index=True)
        warehouse.write(PREDICTIONS_SCHEMA, predictions)

        joined = predictions.merge(window[["game_id", "player_id", *spec.markets]], on=["game_id", "player_id"])
        metrics = {m.registered_name(s): _log_system_run(m, s, joined, months, end, params[(m.name, s)], experiment_id,
                                                         run.info.run_id) for m in markets for s in spec.systems}
        result = BacktestResult(run.info.run_id, predictions, metrics)
        mlflow.log_text(result.render(), "backtest_metrics.md")
    if entry_run:
        MlflowClient().set_tag(entry_run, "backtest_run", run.info.run_id)
    return result
