"""The main job: train, log and register every prediction system of an experiment spec on one time-ordered split.

Each system gets its own top-level MLflow run in ``experiment_name`` with the same metric keys, so
the UI compares them column by column; tuned systems carry their Optuna trials as nested runs.
Every run logs the spec it ran with. Training registers a new version of each system's model; it
never promotes one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import optuna
import pandas as pd
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.tracking import MlflowClient

import settings
from contracts import DEFAULT_EXPERIMENT, FEATURE_VERSION
from features.backfill import backfill
from features.store import read_store
from markets import MARKETS
from registry import systems
from registry.points_model import PYFUNC_ENTRY, Bundle, feature_signature, input_example, model_code_paths
from registry.tracking import adopt_entry_run, experiment_id_for, run_link, runs_page
from training import plots
from training.lineage import log_split, split_dataset
from training.metrics import contract_metrics
from training.spec import DEFAULT_SPEC, RunSpec, load_spec
from training.splits import Splits, time_splits
from training.tuning import open_storage, tune
from warehouse import Warehouse, connect

log = logging.getLogger(__name__)

PARTS = ("train", "val", "test")
SPEC_ARTIFACT = "experiment.yaml"


@dataclass(frozen=True)
class Tuning:
    """Where trials are kept: ``study_name`` "" is a new study per run; a name shares one between processes."""

    storage: str
    study_name: str = ""


@dataclass
class SystemResult:
    system: str
    market: str
    name: str  # the registered model's name (markets.Market.registered_name)
    run_id: str
    version: str
    metrics: dict[str, float]
    predictions: dict[str, np.ndarray]
    bundle: Bundle


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=settings.REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _requirements() -> list[str]:
    packages = ("mlflow", "xgboost", "catboost", "pandas", "numpy", "scikit-learn")
    return [f"{p}=={metadata.version(p)}" for p in packages]


def _log_figure(fig: plt.Figure, name: str) -> None:
    mlflow.log_figure(fig, f"plots/{name}.png")
    plt.close(fig)


def _log_study_plots(study: optuna.Study, system: str) -> None:
    _log_figure(plots.optuna_history(study, f"{system}: Optuna trials"), "optuna_history")
    importances = plots.param_importances(study, f"{system}: parameter importance")
    if importances is None:
        complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        mlflow.log_text(f"Parameter importance needs {plots.IMPORTANCE_MIN_TRIALS} complete trials; "
                        f"the study has {complete}.\n", "plots/optuna_param_importances.txt")
    else:
        _log_figure(importances, "optuna_param_importances")


def _fit(system: str, spec: RunSpec, splits: Splits, done: dict[str, SystemResult], tuning: Tuning,
         progress: bool) -> Bundle:
    """Fit one system with the spec's parameters (tuned first where the spec says so); its bundle,
    holding the bundles of the systems before it when it combines them."""
    module, settings_ = systems.module(system), spec.systems[system]
    params, model = dict(settings_.params), None
    if spec.tuned(system):
        shared = bool(tuning.study_name)
        name = splits.market.registered_name(system)
        study_name = f"{tuning.study_name}-{name}" if shared else f"{name}-{mlflow.active_run().info.run_id}"
        tuned = tune(module, settings_.search_space, params, splits, n_trials=spec.n_trials, timeout=spec.timeout,
                     storage=tuning.storage, study_name=study_name, seed=spec.seed, shared=shared, progress=progress)
        study, model = tuned.study, tuned.model
        states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
        mlflow.log_params({"optuna_study": study_name, "best_trial": study.best_trial.number})
        mlflow.log_metrics({"trials_complete": states.get("COMPLETE", 0), "trials_pruned": states.get("PRUNED", 0),
                            "best_trial_val_mae": study.best_value})
        _log_study_plots(study, system)
        params.update(study.best_params)
    if params:
        mlflow.log_params(params)
    members = {name: done[name].bundle for name in systems.members_of(system, tuple(done))}
    if model is None:  # untuned, or the best trial ran in another process sharing the study
        model = module.fit(params, splits, spec.seed, None, members)
    meta = {"kind": module.KIND, "system": system, "market": splits.market.name, "features": splits.features,
            "feature_version": FEATURE_VERSION}
    if members:
        meta["member_versions"] = {name: done[name].version for name in members}
    return Bundle(meta, model, members)


def _train_system(system: str, spec: RunSpec, splits: Splits, experiment_id: str, warehouse_url: str,
                  done: dict[str, SystemResult], workdir: Path, tuning: Tuning, progress: bool,
                  inputs: dict[str, PandasDataset]) -> SystemResult:
    market = splits.market
    name = market.registered_name(system)
    with mlflow.start_run(run_name=name, experiment_id=experiment_id) as run:
        mlflow.set_tags({
            "system": system, "market": market.name, "feature_version": FEATURE_VERSION, "git_commit": _git_commit(),
            "data_range": f"{splits.start}..{splits.end}", "val_start": str(splits.val_start),
            "test_start": str(splits.test_start), "warehouse": warehouse_url,
        })
        mlflow.log_params({"system": system, "market": market.name, "start_date": splits.start, "end_date": splits.end,
                           "test_start": splits.test_start, "val_start": splits.val_start,
                           "tuned": spec.tuned(system), **spec.log_params()})
        mlflow.log_dict(spec.raw, SPEC_ARTIFACT)
        for part in PARTS:
            log_split(inputs[part], part)

        bundle = _fit(system, spec, splits, done, tuning, progress)
        known = {p: {(name, r.version): r.predictions[p] for name, r in done.items()} for p in PARTS}
        preds = {p: bundle.predict(splits.x(p), known[p]) for p in PARTS}
        actual = {p: splits.y(p) for p in PARTS}
        # the validation rows' posted lines (where the store has them) fit how far to trust the line over the model
        val_line = splits.val[market.line_feature].to_numpy(float)
        bundle.meta["probability"] = systems.fit_distribution(system, bundle.model, market.distribution, actual["val"],
                                                              preds["val"], val_line)
        metrics = contract_metrics(actual, preds, splits.test, market, bundle.meta["probability"])
        mlflow.log_metrics(metrics)
        folder = workdir / name
        bundle.save(folder)

        importances = bundle.system.importances(bundle.model, splits)
        label = "weights" if bundle.members else "feature_importance"
        mlflow.log_dict(dict(sorted(importances.items(), key=lambda kv: -kv[1])), f"{label}.json")
        _log_figure(plots.feature_importance(importances, f"{system}: {label.replace('_', ' ')}"), label)
        shown = ~np.isnan(preds["test"])  # a system that abstains is plotted on the games it predicted
        if shown.any():
            test_actual, test_pred = actual["test"][shown], preds["test"][shown]
            _log_figure(plots.residuals(test_actual, test_pred, f"{system}: test residuals"), "residuals")
            _log_figure(plots.predicted_vs_actual(test_actual, test_pred, f"{system}: test"), "predicted_vs_actual")
            _log_figure(plots.calibration(test_actual, test_pred, f"{system}: calibration (test)"), "calibration")

        info = mlflow.pyfunc.log_model(
            name=name.replace(".", "-"), python_model=str(PYFUNC_ENTRY), artifacts={"bundle": str(folder)},
            code_paths=model_code_paths(workdir / f"{name}-code"),
            signature=feature_signature(bundle.features), input_example=input_example(splits.x("test")),
            pip_requirements=_requirements(), registered_model_name=name)
        version = str(info.registered_model_version)
        client = MlflowClient()
        client.update_model_version(
            name, version,
            description=f"test_mae {metrics['test_mae']:.3f} on {len(actual['test'])} games from "
                        f"{splits.test_start} to {splits.end}; val_mae {metrics['val_mae']:.3f}. "
                        f"{run_link(experiment_id, run.info.run_id, f'Run {run.info.run_id}')} in experiment "
                        f"{mlflow.get_experiment(experiment_id).name}.")
        for key, value in {"test_start": str(splits.test_start), "market": market.name, "system": system}.items():
            client.set_model_version_tag(name, version, key, value)
        return SystemResult(system, market.name, name, run.info.run_id, version, metrics, preds, bundle)


def ensure_store(warehouse: Warehouse, progress: bool, start: dt.date | None = None,
                 end: dt.date | None = None) -> pd.DataFrame:
    """The feature store's rows from ``start`` to ``end`` (all of them by default; a retrain reads only
    its window), the store built first from the shipped data when it is empty."""
    store = read_store(warehouse, start, end)
    if store.empty and read_store(warehouse).empty:
        log.info("ml_feature_store_v2 is empty: building it from the shipped data first")
        log.info(backfill(warehouse, settings.BOX_SCORES_DEFAULT, settings.LINES_DEFAULT, progress=progress).render())
        store = read_store(warehouse, start, end)
    return store


def summary_table(results: dict[str, SystemResult]) -> str:
    keys = ("test_mae", "val_mae", "train_val_gap", "test_within_3_pct", "test_model_mae_on_lines",
            "test_line_mae", "test_hit_rate")
    rows = ["| market | system | version | " + " | ".join(keys) + " |", "|---|---|---|" + "---|" * len(keys)]
    for r in results.values():
        cells = [f"{r.metrics[k]:.3f}" if r.metrics.get(k, np.nan) == r.metrics.get(k, np.nan) else "" for k in keys]
        rows.append(f"| {r.market} | {r.system} | {r.version} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def train(spec: RunSpec, warehouse: Warehouse | None = None, *, optuna_storage: str | None = None,
          study_name: str = "", experiment_name: str = DEFAULT_EXPERIMENT,
          progress: bool = True) -> dict[str, SystemResult]:
    """Train every system of ``spec`` for each of its markets (``load_spec(...).override(...)`` for a
    variant of a file); the results keyed by registered model name."""
    tuning = Tuning(optuna_storage or settings.optuna_storage_default(), study_name)
    if any(spec.tuned(s) for s in spec.systems):
        open_storage(tuning.storage)
    warehouse = warehouse or connect()
    store = ensure_store(warehouse, progress, spec.start_date, spec.end_date)
    split_of = {m: time_splits(store, spec.start_date, spec.end_date, spec.test_start, spec.val_fraction,
                               MARKETS[m]) for m in spec.markets}
    mlflow.set_tracking_uri(settings.tracking_uri())
    experiment_id = experiment_id_for(experiment_name)
    entry_run = adopt_entry_run("train", experiment_id)
    results: dict[str, SystemResult] = {}
    with tempfile.TemporaryDirectory(prefix="train-") as tmp:
        for market, splits in split_of.items():
            done: dict[str, SystemResult] = {}
            # every system of the market logs the same three splits: each dataset is built once
            inputs = {part: split_dataset(getattr(splits, part), part, warehouse.url, market) for part in PARTS}
            for system in spec.systems:  # the table's order: members before the ensemble
                log.info("training %s %s on %s", market, system,
                         ", ".join(f"{n:,} {part}" for part, n in splits.sizes.items()))
                done[system] = _train_system(system, spec, splits, experiment_id, warehouse.url, done,
                                             Path(tmp), tuning, progress, inputs)
                results[done[system].name] = done[system]
    if entry_run:
        client = MlflowClient()
        client.log_text(entry_run, summary_table(results), "train_summary.md")
        client.log_dict(entry_run, spec.raw, SPEC_ARTIFACT)
        client.set_tag(entry_run, "system_runs", json.dumps({n: r.run_id for n, r in results.items()}))
    log.info("runs in the MLflow UI: %s", runs_page(experiment_id))
    return results


def train_for_retrain(*, end_date: dt.date, test_start: dt.date, warehouse: Warehouse | None = None,
                      experiment: str | None = None, start_date: dt.date | None = None,
                      markets: tuple[str, ...] | None = None) -> dict[str, SystemResult]:
    """The scheduled retrain: every system of the spec on a moved data window, untuned (``n_trials``
    0: the spec's fixed parameters), registered the normal way; ``markets`` default the spec's."""
    spec = load_spec(experiment or DEFAULT_SPEC).override(start_date=start_date, end_date=end_date,
                                                          test_start=test_start, n_trials=0, markets=markets)
    return train(spec, warehouse, progress=False)
