"""The main job, run for real on a slice of the shipped data: what a user finds in MLflow after it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from contracts import DEFAULT_EXPERIMENT, LINE_METRIC_KEYS, METRIC_KEYS, MOVING_AVERAGE, SYSTEMS
from features.definitions import feature_names
from features.store import read_store
from markets import MARKETS
from registry import systems
from registry.points_model import feature_signature, loaded_bundle
from tests.integration.test_model_schema import strict_json
from training.lineage import split_dataset
from training.spec import load_spec
from training.splits import SplitError, time_splits
from training.train import train
from training.tuning import StorageError
from warehouse import connect

POINTS_FEATURES = feature_names(MARKETS["points"])

COMBINED = [s for s in SYSTEMS if systems.module(s).COMBINES]
MEMBERS = [s for s in SYSTEMS if not systems.module(s).COMBINES]


def _members(system: str) -> tuple[str, ...]:
    """What a combining system of the table is fitted on: its pick of the systems before it."""
    return systems.members_of(system, SYSTEMS[:SYSTEMS.index(system)])


def test_every_system_has_a_run_with_the_contract_metrics(trained_env: dict, small_store: str) -> None:
    client = MlflowClient()
    actual = time_splits(read_store(connect(small_store)), end=dt.date(2025, 2, 15),
                         test_start=dt.date(2025, 1, 1)).y("test")
    experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    for system, result in trained_env["results"].items():
        run = client.get_run(result.run_id)
        assert run.info.experiment_id == experiment.experiment_id and run.info.status == "FINISHED"
        assert set(METRIC_KEYS) | set(LINE_METRIC_KEYS) <= set(run.data.metrics), system
        # the data ends at the last played date before end_date: 2025-02-13, the All-Star break
        assert run.data.tags["feature_version"] and run.data.tags["data_range"] == "2024-10-22..2025-02-13"
        assert run.data.tags["git_commit"]
        assert run.data.metrics["n_test"] == result.metrics["n_test"] > 5000
        shown = ~np.isnan(result.predictions["test"])  # a system that abstains is scored where it predicted
        within_3 = 100 * np.mean(np.abs(actual - result.predictions["test"])[shown] <= 3)
        assert run.data.metrics["test_within_3_pct"] == pytest.approx(within_3) and 30 < within_3 < 60, system
    assert set(trained_env["results"]) == set(SYSTEMS)


def test_tuned_systems_nest_their_trials(trained_env: dict) -> None:
    client = MlflowClient()
    for system in systems.tuned_systems():
        parent = trained_env["results"][system].run_id
        trials = client.search_runs([client.get_run(parent).info.experiment_id],
                                    f"tags.mlflow.parentRunId = '{parent}'")
        assert len(trials) == 2
        assert {t.data.tags["trial_state"] for t in trials} <= {"COMPLETE", "PRUNED"}
        assert all(t.info.status == "FINISHED" and "val_mae" in t.data.metrics for t in trials)
        run = client.get_run(parent)
        assert "optuna_study" in run.data.params
        # the registered model is the best trial's own model, its validation score exactly the trial's
        assert run.data.metrics["val_mae"] == pytest.approx(run.data.metrics["best_trial_val_mae"], abs=1e-9)


def test_runs_carry_plots_importances_and_dataset_lineage(trained_env: dict) -> None:
    client = MlflowClient()
    for system, result in trained_env["results"].items():
        files = {a.path for a in client.list_artifacts(result.run_id, "plots")}
        assert {"plots/residuals.png", "plots/predicted_vs_actual.png", "plots/calibration.png"} <= files
        name = "weights.json" if system in COMBINED else "feature_importance.json"
        values = json.loads(Path(client.download_artifacts(result.run_id, name)).read_text())
        assert values and all(v >= 0 for v in values.values())
        combined = set(_members(system))
        assert combined <= set(values) <= combined | set(POINTS_FEATURES) if system in COMBINED \
            else set(values) <= set(POINTS_FEATURES)
        inputs = client.get_run(result.run_id).inputs.dataset_inputs
        assert sorted(i.tags[0].value for i in inputs) == ["test", "train", "val"]
        assert all(i.dataset.digest and "ml_feature_store_v2" in i.dataset.name for i in inputs)


def test_split_datasets_record_the_schema_mlflow_infers(small_store: str) -> None:
    # the schema comes from the store's declaration (fast); it must be what MLflow's inference reads off the rows
    rows = read_store(connect(small_store), dt.date(2024, 12, 1), dt.date(2024, 12, 31))
    declared = split_dataset(rows, "test", small_store, "points")
    with pytest.warns(UserWarning, match="integer"):
        inferred = mlflow.data.from_pandas(rows, targets="points").schema
    assert declared.schema.to_dict() == inferred.to_dict()
    assert declared.digest == mlflow.data.from_pandas(rows, targets="points").digest


def test_registered_models_predict_what_the_run_measured(trained_env: dict, small_store: str) -> None:
    client = MlflowClient()
    test = read_store(connect(small_store), dt.date(2025, 1, 1), dt.date(2025, 2, 15))
    test = test[test.points.notna()]
    for system, result in trained_env["results"].items():
        version = client.get_model_version(system, result.version)
        assert f"test_mae {result.metrics['test_mae']:.3f}" in version.description
        experiment = client.get_run(result.run_id).info.experiment_id
        assert f"[Run {result.run_id}](#/experiments/{experiment}/runs/{result.run_id})" in version.description
        model = mlflow.pyfunc.load_model(f"models:/{system}/{result.version}")
        predicted = model.predict(test[POINTS_FEATURES].astype(float))
        assert np.isclose(np.nanmean(np.abs(predicted - test.points)), result.metrics["test_mae"])
    for system in COMBINED:  # the systems it combines join it, at their registered versions
        result = trained_env["results"][system]
        bundle = loaded_bundle(mlflow.pyfunc.load_model(f"models:/{system}/{result.version}"))
        assert set(bundle.members) == set(_members(system))
        assert bundle.meta["member_versions"] == {m: trained_env["results"][m].version for m in _members(system)}
    version = trained_env["results"]["ensemble_v1"].version
    ensemble = loaded_bundle(mlflow.pyfunc.load_model(f"models:/ensemble_v1/{version}"))
    assert set(ensemble.members) == set(MEMBERS) and np.isclose(sum(ensemble.meta["weights"].values()), 1.0)


def test_logged_models_are_named_after_their_system_with_the_features_signature(trained_env: dict) -> None:
    for system, result in trained_env["results"].items():
        uri = f"models:/{system}/{result.version}"
        info = mlflow.models.get_model_info(uri)
        assert info.name == system  # the experiment's model list tells them apart
        assert info.signature == feature_signature(POINTS_FEATURES)  # every feature an optional double
        example = Path(mlflow.artifacts.download_artifacts(f"{uri}/serving_input_example.json"))
        assert strict_json(example.read_text())["dataframe_split"]["columns"] == POINTS_FEATURES


def test_models_beat_the_moving_average_even_on_a_small_slice(trained_env: dict) -> None:
    results = trained_env["results"]
    best = min(r.metrics["test_mae"] for s, r in results.items() if s != MOVING_AVERAGE)
    assert best < results[MOVING_AVERAGE].metrics["test_mae"]
    assert all(r.metrics["train_val_gap"] < 1.5 for r in results.values())


def test_every_run_logs_the_spec_it_ran_with(trained_env: dict) -> None:
    client = MlflowClient()
    spec = trained_env["spec"]
    for result in trained_env["results"].values():
        run = client.get_run(result.run_id)
        assert run.data.params["experiment"] == "experiments/quick.yaml"
        assert (run.data.params["n_trials"], run.data.params["seed"]) == (str(spec.n_trials), str(spec.seed))
        logged = yaml.safe_load(Path(client.download_artifacts(result.run_id, "experiment.yaml")).read_text())
        assert logged["tuning"] == {"n_trials": 2, "timeout": 120} and set(logged["systems"]) == set(SYSTEMS)
        assert str(logged["data"]["end_date"]) == "2025-02-15"


def test_splits_are_ordered_in_time(small_store: str) -> None:
    splits = time_splits(read_store(connect(small_store)), end=dt.date(2025, 2, 15), test_start=dt.date(2025, 1, 1))
    assert max(splits.train.game_date) < splits.val_start <= min(splits.val.game_date)
    assert max(splits.val.game_date) < splits.test_start == min(splits.test.game_date)


def test_untuned_systems_fit_the_spec_parameters_and_register(small_store: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """n_trials 0 (the weekly retrain, the season replay): no study, no trials, the spec's fixed
    parameters, and a registered model as usual."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    spec = load_spec("experiments/quick.yaml").override(n_trials=0, systems=(MOVING_AVERAGE, "xgboost_v1"),
                                                        end_date=dt.date(2025, 1, 20))
    results = train(spec, connect(small_store), optuna_storage="sqlite:////no/such/dir/optuna.db", progress=False)
    client = MlflowClient()
    run = client.get_run(results["xgboost_v1"].run_id)
    fixed = spec.systems["xgboost_v1"].params
    assert {k: run.data.params[k] for k in fixed} == {k: str(v) for k, v in fixed.items()}
    assert run.data.params["tuned"] == "False" and "optuna_study" not in run.data.params
    assert not client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert client.get_model_version("xgboost_v1", results["xgboost_v1"].version).run_id == run.info.run_id


def test_unreachable_optuna_storage_is_one_sentence(small_store: str) -> None:
    spec = load_spec("experiments/quick.yaml").override(systems=("xgboost_v1",))
    with pytest.raises(StorageError, match=r"optuna_storage 'sqlite:////no/such/dir/optuna.db' cannot be opened"):
        train(spec, connect(small_store), optuna_storage="sqlite:////no/such/dir/optuna.db", progress=False)


def test_an_empty_range_names_the_dates(small_store: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    spec = load_spec().override(start_date=dt.date(2030, 1, 1), systems=(MOVING_AVERAGE,))
    with pytest.raises(SplitError, match="no played games in the feature store between 2030-01-01"):
        train(spec, connect(small_store), progress=False)
    assert not (tmp_path / "mlflow.db").exists()  # nothing was logged
