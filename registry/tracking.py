"""Where the platform's MLflow runs go: the project's experiment, and the entry run of ``mlflow run``.

It sits in ``registry/`` (not ``training/``) because ``compare`` logs runs too and the registry never
imports training code.
"""

from __future__ import annotations

import os
import sys

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import settings
from contracts import DEFAULT_EXPERIMENT

# MLflow 3 tells a GenAI experiment (opened on its traces overview) from a machine-learning one (opened
# on its runs) by this experiment tag; every experiment of this platform holds model runs. The open-source
# UI of 3.17 lets its own "GenAI | Model training" switch (default GenAI, kept per browser) override the
# tag, so the link that opens on the runs also names the view (``runs_page``).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MACHINE_LEARNING = "custom_model_development"
DEFAULT_EXPERIMENT_ID = "0"  # MLflow's "Default", where ``mlflow run`` puts a run whose experiment is not named

_claimed: dict[str, str] = {}  # entry point -> its ``mlflow run`` run id, named and not yet adopted by the job


def experiment_id_for(name: str) -> str:
    """The experiment's id, created (artifacts under ``settings.artifact_root()`` on a local store) and
    marked as machine learning where it is missing or was made before the mark."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        local = mlflow.get_tracking_uri().startswith(("sqlite:", "file:", "/"))
        try:
            return mlflow.create_experiment(name, artifact_location=settings.artifact_root() if local else None,
                                            tags={EXPERIMENT_KIND_TAG: MACHINE_LEARNING})
        except MlflowException:
            # another process (a second trainer sharing the study) created it between the look-up
            # and the insert: use theirs
            experiment = mlflow.get_experiment_by_name(name)
            if experiment is None:
                raise
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        try:
            MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MACHINE_LEARNING)
        except MlflowException:
            if EXPERIMENT_KIND_TAG not in mlflow.get_experiment(experiment.experiment_id).tags:
                raise  # not another process setting the same tag at the same moment
    return experiment.experiment_id


def runs_page(experiment_id: str) -> str:
    """The experiment's runs in the UI: a full URL on a tracking server, else the part after the
    address ``mlflow ui`` prints."""
    uri = mlflow.get_tracking_uri()
    server = uri.rstrip("/") if uri.startswith(("http://", "https://")) else ""
    return f"{server}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def run_link(experiment_id: str, run_id: str, text: str = "") -> str:
    """A Markdown link to a run, for descriptions the UI renders: relative to the UI's own address, so it
    opens wherever the UI is served."""
    return f"[{text or 'run ' + run_id}](#/experiments/{experiment_id}/runs/{run_id})"


def entry_run_name(entry_point: str) -> str:
    return f"mlflow run -e {entry_point}"


def project_experiment(option: str = "") -> str:
    """The experiment the platform's runs go to: ``option`` (``--experiment-name``) when given; else,
    under ``mlflow run``, the experiment MLflow put the entry run in (``MLFLOW_EXPERIMENT_ID``, from
    its ``--experiment-name`` or ``MLFLOW_EXPERIMENT_NAME``) unless that is "Default"; else
    ``MLFLOW_EXPERIMENT_NAME``; else nba-player-points. So the entry run and the runs its job starts
    share one experiment however the user named it, and none goes to "Default"."""
    if option:
        return option
    entry = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if entry and entry != DEFAULT_EXPERIMENT_ID:
        return MlflowClient(settings.tracking_uri()).get_experiment(entry).name
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def claim_entry_run(entry_point: str) -> str | None:
    """The first thing a command does: under ``mlflow run`` MLflow creates the entry point's run before
    the job starts, with a random name, and hands it over through ``MLFLOW_RUN_ID``. Named here, before
    any option is checked, a run that fails is named too. The id leaves the environment (no run started
    later resumes it, and no other store, a replay's, looks it up) and waits for the job to
    :func:`adopt_entry_run` it. MLflow cannot move a run between experiments, so one that landed in
    "Default" is explained. Returns the id; None outside ``mlflow run``."""
    run_id = os.environ.pop("MLFLOW_RUN_ID", None)
    if run_id is None:
        return None
    client = MlflowClient(settings.tracking_uri())  # the store `mlflow run` named, whatever MLflow's global says
    client.update_run(run_id, name=entry_run_name(entry_point))
    if client.get_run(run_id).info.experiment_id == DEFAULT_EXPERIMENT_ID:
        wanted = project_experiment()
        print(f"{entry_point}: `mlflow run` put its run {run_id} in experiment 'Default' for want of a name: "
              f"export MLFLOW_EXPERIMENT_NAME={wanted} or add --experiment-name {wanted} to `mlflow run` to keep "
              "it with the runs it starts", file=sys.stderr)
    _claimed[entry_point] = run_id
    return run_id


def adopt_entry_run(entry_point: str, experiment_id: str | None = None) -> str | None:
    """The ``mlflow run -e ENTRY_POINT`` run for the job to log its results on (claimed now when the
    command line did not), once: None when this process is no ``mlflow run`` of ``entry_point`` (the
    training inside ``mlflow run -e retrain``). Where the job's runs go to ``experiment_id`` and the
    entry run is in another experiment than that or "Default", the user is told the option that keeps
    them together."""
    if entry_point not in _claimed:
        claim_entry_run(entry_point)
    run_id = _claimed.pop(entry_point, None)
    if run_id is None or experiment_id is None:
        return run_id
    client = MlflowClient()
    landed = client.get_run(run_id).info.experiment_id
    if landed not in (experiment_id, DEFAULT_EXPERIMENT_ID):
        wanted, where = client.get_experiment(experiment_id).name, client.get_experiment(landed).name
        print(f"{entry_point}: the `mlflow run` entry run {run_id} is in experiment {where!r}, its job's runs in "
              f"{wanted!r}: add --experiment-name {wanted} to `mlflow run` to keep them together", file=sys.stderr)
    return run_id
