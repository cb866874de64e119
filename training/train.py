"""The main job: train, log and register every prediction system on one time-ordered split.

Each system gets its own top-level MLflow run in ``experiment_name`` with the same metric keys, so
the UI compares them column by column; tuned systems carry their Optuna trials as nested runs.
Training registers a new version of each system's model; it never promotes one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

import settings
from contracts import (
    CATBOOST_V8,
    DEFAULT_EXPERIMENT,
    ENSEMBLE_V1,
    FEATURE_VERSION,
    MOVING_AVERAGE,
    SYSTEMS,
    TUNED_SYSTEMS,
    XGBOOST_V1,
)
from features.backfill import backfill, read_store
from features.definitions import FEATURE_NAMES
from registry.points_model import PYFUNC_ENTRY, residual_quantiles, write_meta
from training import catboost_v8, ensemble, moving_average, plots, xgboost_v1
from training.lineage import log_split
from training.metrics import contract_metrics
from training.splits import Splits, time_splits
from training.tuning import open_storage, tune
from warehouse import Warehouse, connect

TUNED: dict[str, ModuleType] = {XGBOOST_V1: xgboost_v1, CATBOOST_V8: catboost_v8}


class ConfigError(ValueError):
    """A training setting that cannot work; raised before any work starts."""


def check_systems(systems: tuple[str, ...]) -> None:
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise ConfigError(f"systems includes {unknown[0]!r}; known systems are {', '.join(SYSTEMS)}")
    if not systems:
        raise ConfigError("systems is empty; name at least one of " + ", ".join(SYSTEMS))
    if tuple(systems) == (ENSEMBLE_V1,):
        raise ConfigError("systems is only ensemble_v1, which needs at least one other system to combine")


@dataclass
class TrainConfig:
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    test_start: dt.date | None = None
    systems: tuple[str, ...] = SYSTEMS
    n_trials: int = 12
    timeout: float | None = 300.0  # seconds of tuning per system
    optuna_storage: str = field(default_factory=settings.optuna_storage_default)
    study_name: str = ""  # "" = a new study per run; give a name to share one between processes
    seed: int = 42
    experiment_name: str = DEFAULT_EXPERIMENT
    val_fraction: float = 0.2

    def validate(self) -> None:
        check_systems(self.systems)
        if self.n_trials < 1:
            raise ConfigError(f"n_trials is {self.n_trials}; it must be at least 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"timeout is {self.timeout}; it must be a positive number of seconds")
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise ConfigError(f"start_date {self.start_date} is after end_date {self.end_date}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction is {self.val_fraction}; it must be between 0 and 1")
        if any(s in TUNED_SYSTEMS for s in self.systems):
            open_storage(self.optuna_storage)


@dataclass
class SystemResult:
    system: str
    run_id: str
    version: str
    metrics: dict[str, float]
    predictions: dict[str, np.ndarray]
    bundle: Path


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=settings.REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def experiment_id_for(name: str) -> str:
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    local = mlflow.get_tracking_uri().startswith(("sqlite:", "file:", "/"))
    return mlflow.create_experiment(name, artifact_location=settings.artifact_root() if local else None)


def _requirements() -> list[str]:
    packages = ("mlflow", "xgboost", "catboost", "pandas", "numpy", "scikit-learn")
    return [f"{p}=={metadata.version(p)}" for p in packages]


def _log_figure(fig: plt.Figure, name: str) -> None:
    mlflow.log_figure(fig, f"plots/{name}.png")
    plt.close(fig)


def _fit(system: str, cfg: TrainConfig, splits: Splits, done: dict[str, SystemResult],
         folder: Path, progress: bool) -> tuple[dict[str, np.ndarray], dict, dict[str, float]]:
    """Fit one system; return its predictions per split, its bundle meta and its importances."""
    parts = ("train", "val", "test")
    if system == MOVING_AVERAGE:
        model = moving_average.fit(splits)
        mlflow.log_params({"average": model.columns[0], "fallback_points": round(model.fallback, 3)})
        preds = {p: model.predict(splits.x(p)) for p in parts}
        return preds, moving_average.save(model, folder), moving_average.importances(model)
    if system == ENSEMBLE_V1:
        members = {name: r for name, r in done.items() if name != ENSEMBLE_V1}
        weights = ensemble.fit_weights({n: r.predictions["val"] for n, r in members.items()}, splits.y("val"))
        mlflow.log_params({f"weight_{n}": w for n, w in weights.items()})
        for name in members:
            shutil.copytree(members[name].bundle, folder / name)
        preds = {p: ensemble.predict(weights, {n: r.predictions[p] for n, r in members.items()}) for p in parts}
        meta = {"kind": ensemble.KIND, "weights": weights,
                "member_versions": {n: r.version for n, r in members.items()}}
        return preds, meta, weights
    module = TUNED[system]
    shared = bool(cfg.study_name)
    study_name = f"{cfg.study_name}-{system}" if shared else f"{system}-{mlflow.active_run().info.run_id}"
    study = tune(module, splits, n_trials=cfg.n_trials, timeout=cfg.timeout, storage=cfg.optuna_storage,
                 study_name=study_name, seed=cfg.seed, shared=shared, progress=progress)
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
    mlflow.log_params({**study.best_params, "optuna_study": study_name, "best_trial": study.best_trial.number})
    mlflow.log_metrics({"trials_complete": states.get("COMPLETE", 0), "trials_pruned": states.get("PRUNED", 0),
                        "best_trial_val_mae": study.best_value})
    model = module.fit(study.best_params, splits, cfg.seed)
    preds = {p: module.predict(model, splits.x(p)) for p in parts}
    return preds, module.save(model, folder), module.importances(model)


def _train_system(system: str, cfg: TrainConfig, splits: Splits, experiment_id: str, warehouse_url: str,
                  done: dict[str, SystemResult], workdir: Path, progress: bool) -> SystemResult:
    with mlflow.start_run(run_name=system, experiment_id=experiment_id) as run:
        mlflow.set_tags({
            "system": system, "feature_version": FEATURE_VERSION, "git_commit": _git_commit(),
            "data_range": f"{splits.start}..{splits.end}", "val_start": str(splits.val_start),
            "test_start": str(splits.test_start), "warehouse": warehouse_url,
        })
        mlflow.log_params({"system": system, "start_date": splits.start, "end_date": splits.end,
                           "test_start": splits.test_start, "val_start": splits.val_start, "seed": cfg.seed,
                           "n_trials": cfg.n_trials, "timeout": cfg.timeout})
        for part in ("train", "val", "test"):
            log_split(getattr(splits, part), part, warehouse_url)

        folder = workdir / system
        preds, meta, importances = _fit(system, cfg, splits, done, folder, progress)
        actual = {p: splits.y(p) for p in preds}
        metrics = contract_metrics(actual, preds, splits.test)
        mlflow.log_metrics(metrics)

        write_meta(folder, {**meta, "system": system, "features": list(FEATURE_NAMES),
                            "feature_version": FEATURE_VERSION,
                            "residual_quantiles": residual_quantiles(actual["val"], preds["val"])})
        label = "weights" if system == ENSEMBLE_V1 else "feature_importance"
        mlflow.log_dict(dict(sorted(importances.items(), key=lambda kv: -kv[1])), f"{label}.json")
        _log_figure(plots.feature_importance(importances, f"{system}: {label.replace('_', ' ')}"), label)
        _log_figure(plots.residuals(actual["test"], preds["test"], f"{system}: test residuals"), "residuals")
        _log_figure(plots.predicted_vs_actual(actual["test"], preds["test"], f"{system}: test"),
                    "predicted_vs_actual")
        _log_figure(plots.calibration(actual["test"], preds["test"], f"{system}: calibration (test)"),
                    "calibration")

        example = splits.x("test").head(5)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(PYFUNC_ENTRY), artifacts={"bundle": str(folder)},
            signature=infer_signature(example, preds["test"][:5]), input_example=example,
            pip_requirements=_requirements(), registered_model_name=system)
        version = str(info.registered_model_version)
        MlflowClient().update_model_version(
            system, version,
            description=f"test_mae {metrics['test_mae']:.3f} on {len(actual['test'])} games from "
                        f"{splits.test_start} to {splits.end}; val_mae {metrics['val_mae']:.3f}. "
                        f"Run {run.info.run_id} (experiment {cfg.experiment_name}, "
                        f"#/experiments/{experiment_id}/runs/{run.info.run_id}).")
        MlflowClient().set_model_version_tag(system, version, "test_start", str(splits.test_start))
        return SystemResult(system, run.info.run_id, version, metrics, preds, folder)


def detach_entry_run() -> str | None:
    """Under ``mlflow run`` the entry point's own run is active through ``MLFLOW_RUN_ID`` and holds
    the project parameters as MLflow wrote them. Runs of this job's own go to the experiment named
    by the user instead, so the id is taken out of the environment and returned for a summary."""
    return os.environ.pop("MLFLOW_RUN_ID", None)


def ensure_store(warehouse: Warehouse, progress: bool) -> pd.DataFrame:
    """The feature store, built first from the shipped data when it is empty."""
    store = read_store(warehouse)
    if store.empty:
        print("ml_feature_store_v2 is empty: building it from the shipped data first")
        print(backfill(warehouse, settings.BOX_SCORES_DEFAULT, settings.LINES_DEFAULT, progress=progress).render())
        store = read_store(warehouse)
    return store


def summary_table(results: dict[str, SystemResult]) -> str:
    keys = ("test_mae", "val_mae", "train_val_gap", "test_within_3_pct", "test_model_mae_on_lines",
            "test_line_mae", "test_hit_rate")
    rows = ["| system | version | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for r in results.values():
        cells = [f"{r.metrics[k]:.3f}" if k in r.metrics else "" for k in keys]
        rows.append(f"| {r.system} | {r.version} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def train(cfg: TrainConfig, warehouse: Warehouse | None = None, progress: bool = True) -> dict[str, SystemResult]:
    cfg.validate()
    warehouse = warehouse or connect()
    splits = time_splits(ensure_store(warehouse, progress), cfg.start_date, cfg.end_date, cfg.test_start,
                         cfg.val_fraction)
    mlflow.set_tracking_uri(settings.tracking_uri())
    experiment_id = experiment_id_for(cfg.experiment_name)
    entry_run = detach_entry_run()
    order = [s for s in SYSTEMS if s in cfg.systems]  # members before the ensemble
    results: dict[str, SystemResult] = {}
    with tempfile.TemporaryDirectory(prefix="train-") as tmp:
        for system in order:
            print(f"training {system} on {splits.sizes}")
            results[system] = _train_system(system, cfg, splits, experiment_id, warehouse.url, results,
                                            Path(tmp), progress)
    table = summary_table(results)
    if entry_run:
        client = MlflowClient()
        client.log_text(entry_run, table, "train_summary.md")
        client.set_tag(entry_run, "system_runs", json.dumps({s: r.run_id for s, r in results.items()}))
    print(table)
    return results
