"""Optuna tuning of one algorithm, each trial a nested MLflow run under the system's parent run.

One study per algorithm (their per-round validation scores are not comparable). The study lives in
``optuna_storage`` (a SQLite file by default, PostgreSQL or MySQL for a team), so several ``train``
processes given the same storage and study name share it: together they run ``n_trials`` trials.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import mlflow
import optuna
from optuna.trial import TrialState

from training.metrics import mae
from training.spec import Param
from training.splits import Splits

PRUNE_AFTER_ROUNDS = 50  # boosting rounds a trial always gets before it can be pruned
OPEN_RETRY_SECONDS = 30.0
OBJECTIVE = "val_mae"  # a trial's score: its validation MAE, the study's metric name and the trial run's metric
CURVE_KEY = "val_mae_by_round"  # a trial's validation MAE per boosting round; ``val_mae`` is its score


class StorageError(ValueError):
    """An Optuna storage that cannot be opened, or a study that produced no usable trial."""


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open the storage now, so a bad URL stops ``train`` before any work.

    Processes started together race to create the storage's tables; the loser of that race sees a
    locked or half-made schema, so opening is retried for ``OPEN_RETRY_SECONDS`` before giving up.
    """
    deadline = time.monotonic() + OPEN_RETRY_SECONDS
    while True:
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except Exception as exc:  # SQLAlchemy raises many kinds: all mean "cannot use this URL"
            transient = any(word in str(exc).lower() for word in ("locked", "already exists", "unique constraint"))
            if not transient or time.monotonic() > deadline:
                raise StorageError(f"optuna_storage {url!r} cannot be opened: {exc.__class__.__name__}: "
                                   f"{str(exc).splitlines()[0]}") from None
            time.sleep(0.2)  # another process is creating the schema: let it finish


def startup_trials(n_trials: int) -> int:
    """Random trials before TPE starts modelling the good and bad regions: Optuna's default of 10
    suits budgets of a hundred trials, but would make the default 12 almost random search. A third of
    the budget (at least 2, so TPE's first model has a better and a worse point; at most Optuna's 10)
    leaves two thirds guided, however small the budget."""
    return min(10, max(2, n_trials // 3))


def suggest(trial: optuna.Trial, space: dict[str, Param]) -> dict[str, Any]:
    """One trial's parameters, drawn from a spec's search space."""
    drawn: dict[str, Any] = {}
    for name, param in space.items():
        if param.type == "categorical":
            drawn[name] = trial.suggest_categorical(name, list(param.choices))
        elif param.type == "int":
            drawn[name] = trial.suggest_int(name, int(param.low), int(param.high), log=param.log)
        else:
            drawn[name] = trial.suggest_float(name, param.low, param.high, log=param.log)
    return drawn


@dataclass
class Tuned:
    """A finished study and, when this process ran its best trial, that trial's fitted model: the
    model the best parameters give, so it is not fitted a second time (a shared study's best trial
    may have run in another process: then ``model`` is None and the caller fits it)."""

    study: optuna.Study
    model: Any | None


def tune(system: ModuleType, space: dict[str, Param], fixed: dict[str, Any], splits: Splits, *, n_trials: int,
         timeout: float | None, storage: str, study_name: str, seed: int, shared: bool,
         progress: bool = True) -> Tuned:
    """Run trials until the study holds ``n_trials`` finished ones (or ``timeout`` seconds pass).
    Each trial fits ``fixed`` with the drawn parameters in place of those named in ``space``."""
    parent = mlflow.active_run()
    # processes sharing a study must not draw the same random start-up points
    sampler_seed = seed + (os.getpid() % 10_000 if shared else 0)
    study = optuna.create_study(
        storage=open_storage(storage), study_name=study_name, direction="minimize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(n_startup_trials=startup_trials(n_trials), seed=sampler_seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=PRUNE_AFTER_ROUNDS))
    study.set_user_attr("system", system.NAME)
    with warnings.catch_warnings():  # experimental since Optuna 3.2, still so in 5.0: the name is all we use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([OBJECTIVE])  # optuna-dashboard shows "val_mae", not "Objective 0"
    best: dict[int, tuple[float, Any]] = {}  # this process's best complete trial so far: {number: (score, model)}

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # who ran it, in a shared study
        pruned: optuna.TrialPruned | None = None
        with mlflow.start_run(run_name=f"{system.NAME}-trial-{trial.number}", nested=True,
                              parent_run_id=parent.info.run_id if parent else None,
                              experiment_id=parent.info.experiment_id if parent else None):
            mlflow.log_params(params)
            mlflow.set_tags({"optuna_study": study_name, "optuna_trial": trial.number, "system": system.NAME})

            def report(step: int, val_mae: float) -> None:
                trial.report(val_mae, step)
                mlflow.log_metric(CURVE_KEY, val_mae, step=step)
                if trial.should_prune():
                    mlflow.log_metric(OBJECTIVE, val_mae)  # its score when stopped
                    raise optuna.TrialPruned(f"pruned at round {step}: validation MAE {val_mae:.3f}")

            try:
                model = system.fit({**fixed, **params}, splits, seed, report)
            except optuna.TrialPruned as exc:
                pruned = exc  # raised after the run is closed, so MLflow records it as finished
                mlflow.set_tag("trial_state", TrialState.PRUNED.name)
            else:
                score = mae(splits.y("val"), system.predict(model, splits.x("val").to_numpy()))
                mlflow.log_metric(OBJECTIVE, score)
                if not best or score < next(iter(best.values()))[0]:
                    best.clear()
                    best[trial.number] = (score, model)
                mlflow.set_tag("trial_state", TrialState.COMPLETE.name)
        if pruned is not None:
            raise pruned
        return score

    stop_at_total = optuna.study.MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[stop_at_total],
                   gc_after_trial=True, show_progress_bar=progress)
    if not any(t.state == TrialState.COMPLETE for t in study.trials):
        raise StorageError(f"study {study_name!r} has no completed trial after {len(study.trials)} trial(s): "
                           "raise n_trials or timeout")
    kept = best.get(study.best_trial.number)
    return Tuned(study, kept[1] if kept else None)
