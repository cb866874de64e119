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

# MLflow 3 tells a GenAI experiment (opened on its traces overview) from a machine-learning one (opened
# on its runs) by this experiment tag; every experiment of this platform holds model runs. The open-source
# UI of 3.17 lets its own "GenAI | Model training" switch (default GenAI, kept per browser) override the
# tag, so the link that opens on the runs also names the view (``runs_page``).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MACHINE_LEARNING = "custom_model_development"


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


def adopt_entry_run(entry_point: str, experiment_id: str) -> str | None:
    """Under ``mlflow run`` MLflow creates the entry point's run before the job starts, with a random
    name, in the experiment of ``--experiment-name`` (else ``MLFLOW_EXPERIMENT_NAME``, else "Default"),
    and hands it over as the active run through ``MLFLOW_RUN_ID``. The job's own runs go to the
    project's experiment instead, so the id is taken out of the environment and returned (the job
    tags its runs on it); the run is named after the entry point. MLflow cannot move a run between
    experiments, so where it landed elsewhere the user is told the option that keeps them together."""
    run_id = os.environ.pop("MLFLOW_RUN_ID", None)
    if run_id is None:
        return None
    client = MlflowClient()
    client.update_run(run_id, name=entry_run_name(entry_point))
    landed = client.get_run(run_id).info.experiment_id
    if landed != experiment_id:
        wanted, where = client.get_experiment(experiment_id).name, client.get_experiment(landed).name
        print(f"{entry_point}: the `mlflow run` entry run {run_id} is in experiment {where!r}, its job's runs in "
              f"{wanted!r}: add --experiment-name {wanted} to `mlflow run` to keep them together", file=sys.stderr)
    return run_id
