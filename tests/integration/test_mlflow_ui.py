"""What a user sees in the MLflow UI after training, a backtest and compare (real MLflow, SQLite stores)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

import cli
import settings
from contracts import DEFAULT_EXPERIMENT, MOVING_AVERAGE, SYSTEMS, XGBOOST_V1
from registry import systems
from registry.compare import compare
from registry.tracking import EXPERIMENT_KIND_TAG, MACHINE_LEARNING, adopt_entry_run, experiment_id_for, runs_page
from tests.conftest import QUICK_SPEC
from training.backtest import backtest
from training.spec import load_spec
from training.tuning import CURVE_KEY, OBJECTIVE
from warehouse import connect

BACKTEST_KEYS = {"test_mae", "test_within_3_pct", "n_test", "test_line_mae", "test_model_mae_on_lines",
                 "test_hit_rate"}


@pytest.fixture
def empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def test_the_experiment_opens_on_its_runs(trained_env: dict) -> None:
    """MLflow 3's UI opens an experiment without this tag as a GenAI one (its traces overview)."""
    experiment = MlflowClient().get_experiment_by_name(DEFAULT_EXPERIMENT)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MACHINE_LEARNING
    # 3.17's own GenAI/Model training switch overrides the tag: the link names the view
    assert runs_page(experiment.experiment_id) == \
        f"/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"


def test_an_experiment_made_before_the_mark_gets_it(empty_store: MlflowClient) -> None:
    made = empty_store.create_experiment("older")
    assert experiment_id_for("older") == made
    assert empty_store.get_experiment(made).tags[EXPERIMENT_KIND_TAG] == MACHINE_LEARNING


def test_each_trial_row_shows_the_trial_score(trained_env: dict) -> None:
    """The runs table shows a metric's latest value: a trial's ``val_mae`` is its Optuna score, and the
    per-round curve it was pruned on lives under its own key."""
    client = MlflowClient()
    storage = trained_env["env"]["MLFLOW_TRACKING_URI"].replace("mlflow.db", "optuna.db")
    for system in systems.tuned_systems():
        parent = client.get_run(trained_env["results"][system].run_id)
        study = optuna.load_study(study_name=parent.data.params["optuna_study"], storage=storage)
        assert study.metric_names == [OBJECTIVE]  # optuna-dashboard's name for the objective
        trials = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
        scores = {t.number: t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
        shown = {int(r.data.tags["optuna_trial"]): r.data.metrics["val_mae"] for r in trials
                 if r.data.tags["trial_state"] == "COMPLETE"}
        assert shown == pytest.approx(scores) and scores, system
        assert min(shown.values()) == pytest.approx(parent.data.metrics["best_trial_val_mae"])
        if system == XGBOOST_V1:  # boosting rounds reported during the fit
            first = next(r for r in trials if r.data.tags["trial_state"] == "COMPLETE").info.run_id
            assert len(client.get_metric_history(first, CURVE_KEY)) > 10
            assert len(client.get_metric_history(first, "val_mae")) == 1


def test_tuned_system_runs_carry_the_optuna_plots(trained_env: dict) -> None:
    client = MlflowClient()
    for system in systems.tuned_systems():
        files = {a.path for a in client.list_artifacts(trained_env["results"][system].run_id, "plots")}
        # experiments/quick.yaml runs 2 trials, both complete (the pruner waits for 3): enough for importance
        assert {"plots/optuna_history.png", "plots/optuna_param_importances.png"} <= files, system
    untuned = {a.path for a in client.list_artifacts(trained_env["results"][MOVING_AVERAGE].run_id, "plots")}
    assert not any("optuna" in path for path in untuned)


def test_the_entry_run_is_named_and_misplacement_is_explained(empty_store: MlflowClient,
                                                              monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    project = experiment_id_for(DEFAULT_EXPERIMENT)
    stray = empty_store.create_run("0").info.run_id  # `mlflow run` without --experiment-name: "Default"
    monkeypatch.setenv("MLFLOW_RUN_ID", stray)
    assert adopt_entry_run("train", project) == stray
    assert "MLFLOW_RUN_ID" not in os.environ
    assert empty_store.get_run(stray).info.run_name == "mlflow run -e train"
    assert f"add --experiment-name {DEFAULT_EXPERIMENT} to `mlflow run`" in capsys.readouterr().err

    placed = empty_store.create_run(project).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", placed)
    assert adopt_entry_run("backtest", project) == placed
    assert empty_store.get_run(placed).info.run_name == "mlflow run -e backtest"
    assert capsys.readouterr().err == ""


def test_backtest_logs_a_child_run_per_system_with_monthly_steps(small_store: str, empty_store: MlflowClient,
                                                                 tmp_path: Path) -> None:
    work = tmp_path / "w.duckdb"
    work.write_bytes(Path(small_store.removeprefix("duckdb:///")).read_bytes())
    fast = tmp_path / "fast.yaml"  # shallow quick trees: the test is about the runs, not the fit
    fast.write_text(f"base: {settings.REPO_ROOT / QUICK_SPEC}\nsystems:\n  {XGBOOST_V1}:\n"
                    "    params: {eta: 0.3, max_depth: 3}\n")
    spec = load_spec(fast).override(systems=(MOVING_AVERAGE, XGBOOST_V1), backtest_start=dt.date(2024, 12, 16),
                                    backtest_end=dt.date(2025, 1, 13))
    result = backtest(spec, connect(f"duckdb:///{work}"), progress=False)

    parent = empty_store.get_run(result.run_id)
    children = empty_store.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert sorted(c.data.tags["system"] for c in children) == [MOVING_AVERAGE, XGBOOST_V1]
    assert not parent.data.metrics  # the numbers live on the children, under the training runs' keys
    months = [dt.date(2024, 12, 16), dt.date(2025, 1, 1)]
    for child in children:
        system = child.data.tags["system"]
        assert set(child.data.metrics) >= BACKTEST_KEYS
        assert child.data.metrics == pytest.approx(result.metrics[system])  # the table shows the whole window
        history = sorted(empty_store.get_metric_history(child.info.run_id, "n_test"), key=lambda m: m.step)
        assert [m.step for m in history] == [0, 1, 2]
        assert [dt.datetime.fromtimestamp(m.timestamp / 1000, dt.UTC).date() for m in history[:2]] == months
        assert history[0].value + history[1].value == history[2].value == result.metrics[system]["n_test"]
    xgb = next(c for c in children if c.data.tags["system"] == XGBOOST_V1)
    assert xgb.data.params["eta"] == str(spec.systems[XGBOOST_V1].params["eta"])


def test_compare_on_an_empty_registry_says_so_and_logs_nothing(empty_store: MlflowClient, tmp_path: Path,
                                                               capsys) -> None:
    result = compare(connect(f"duckdb:///{tmp_path / 'w.duckdb'}"))
    assert result.markdown() == f"No registered version of any system ({', '.join(SYSTEMS)}) yet: " \
                                "run train first.\n"
    assert cli.main(["compare"]) == 0
    assert capsys.readouterr().out.strip() == result.markdown().strip()
    experiments = empty_store.search_experiments()
    assert [e.name for e in experiments] == ["Default"]
    assert not empty_store.search_runs([e.experiment_id for e in experiments])
