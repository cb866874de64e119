"""Promotion, refusal, rollback and the audit trail, on models really trained and registered."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pytest
import xgboost as xgb
from mlflow.tracking import MlflowClient

import settings
from contracts import DEFAULT_EXPERIMENT, PRODUCTION_ALIAS
from features.definitions import FEATURE_NAMES
from features.store import read_store
from registry import probability
from registry.compare import compare
from registry.points_model import PYFUNC_ENTRY, write_meta
from registry.promotion import PromotionError, history, production_version, promote, rollback
from registry.tracking import experiment_id_for
from training.splits import time_splits
from warehouse import connect


def _stage_holders(client: MlflowClient, system: str) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        versions = client.search_model_versions(f"name = '{system}'")
    return [str(v.version) for v in versions if v.current_stage == "Production"]


def register_weak_xgboost(small_store: str, tmp_path: Path) -> str:
    """A deliberately weak challenger: one shallow tree, registered as a new xgboost_v1 version."""
    import datetime as dt

    splits = time_splits(read_store(connect(small_store)), end=dt.date(2025, 2, 15), test_start=dt.date(2025, 1, 1))
    booster = xgb.train({"max_depth": 1, "eta": 0.3}, xgb.DMatrix(splits.x("train"), splits.y("train")), 1)
    folder = tmp_path / "weak"
    folder.mkdir(parents=True)
    booster.save_model(str(folder / "model.json"))
    val_pred = booster.predict(xgb.DMatrix(splits.x("val")))
    write_meta(folder, {"kind": "xgboost", "model_file": "model.json", "system": "xgboost_v1",
                        "features": splits.features,
                        "probability": probability.fit("normal", splits.y("val"), val_pred)})
    with mlflow.start_run(experiment_id=experiment_id_for(DEFAULT_EXPERIMENT), run_name="weak challenger") as run:
        mlflow.set_tags({"test_start": str(splits.test_start), "data_range": f"{splits.start}..{splits.end}"})
        mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_ENTRY), artifacts={"bundle": str(folder)},
                                registered_model_name="xgboost_v1")
    versions = MlflowClient().search_model_versions(f"run_id = '{run.info.run_id}'")
    return str(versions[0].version)


def test_promote_load_both_ways_rollback_and_history(trained_env: dict, small_store: str, tmp_path: Path) -> None:
    client = MlflowClient()
    store = connect(small_store)
    first = trained_env["results"]["xgboost_v1"].version

    baseline = promote("moving_average", warehouse=store)  # the baseline needs no champion
    assert baseline.promoted
    # no champion: judged against the baseline, here asked for far more than the few hundredths of a point
    # XGBoost gains on this small slice, so the verdict does not hang on the interval's last digit
    refused = promote("xgboost_v1", first, min_improvement=1.0, warehouse=store)
    assert not refused.promoted and refused.message.startswith(f"refused: xgboost_v1 v{first} MAE ")
    assert "vs moving_average v" in refused.message and "95% CI" in refused.message
    assert refused.event.figures["improvement"] < 1.0 and production_version(client, "xgboost_v1") is None
    decision = promote("xgboost_v1", first, force=True, reason="test: small slice", warehouse=store)
    assert decision.promoted and decision.event.reason == "test: small slice"

    rows = read_store(store)
    rows = rows[rows.points.notna()].head(200)[list(FEATURE_NAMES)].astype(float)
    by_alias = mlflow.pyfunc.load_model(f"models:/xgboost_v1@{PRODUCTION_ALIAS}").predict(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        by_stage = mlflow.pyfunc.load_model("models:/xgboost_v1/Production").predict(rows)
    np.testing.assert_array_equal(by_alias, by_stage)
    assert _stage_holders(client, "xgboost_v1") == [first]

    again = promote("xgboost_v1", first, warehouse=store)  # safe to repeat: nothing changes
    assert again.promoted and "already in production" in again.message

    forced = promote("xgboost_v1", register_weak_xgboost(small_store, tmp_path), force=True,
                     reason="test: forced over the gate", warehouse=store)
    assert forced.promoted and forced.event.forced and production_version(client, "xgboost_v1") != first
    back = rollback("xgboost_v1", reason="test")
    assert production_version(client, "xgboost_v1") == first and back.event.from_version == forced.event.version
    assert _stage_holders(client, "xgboost_v1") == [first]

    events = [e for e in history("xgboost_v1") if e.action != "refuse"]
    assert [e.action for e in events] == ["promote", "promote", "rollback"]
    assert events[1].reason == "test: forced over the gate" and events[1].who
    with pytest.raises(PromotionError, match="no earlier production version"):
        rollback("xgboost_v1")


def test_weaker_challenger_is_refused_with_figures(trained_env: dict, small_store: str, tmp_path: Path) -> None:
    store = connect(small_store)
    weak = register_weak_xgboost(small_store, tmp_path)
    promote("xgboost_v1", trained_env["results"]["xgboost_v1"].version, force=True, reason="setup", warehouse=store)
    decision = promote("xgboost_v1", weak, warehouse=store)
    assert not decision.promoted
    assert "refused" in decision.message and "95% CI" in decision.message
    assert decision.event.figures["challenger_mae"] > decision.event.figures["baseline_mae"]
    assert production_version(MlflowClient(), "xgboost_v1") == trained_env["results"]["xgboost_v1"].version
    assert history("xgboost_v1")[-1].action == "refuse"


def test_cli_refusal_exits_non_zero_and_bad_names_are_one_sentence(trained_env: dict, small_store: str,
                                                                   tmp_path: Path) -> None:
    env = {**os.environ, "WAREHOUSE_URL": small_store}
    weak = register_weak_xgboost(small_store, tmp_path)
    promote("xgboost_v1", trained_env["results"]["xgboost_v1"].version, force=True, reason="setup",
            warehouse=connect(small_store))
    refused = subprocess.run([sys.executable, "cli.py", "promote", "--system", "xgboost_v1", "--version", weak],
                             cwd=settings.REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and refused.stdout.startswith("refused: xgboost_v1 v")
    unknown = subprocess.run([sys.executable, "cli.py", "promote", "--system", "xgboost_v1", "--version", "999"],
                             cwd=settings.REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert unknown.returncode == 2 and unknown.stderr.startswith("promote: xgboost_v1 has no version '999'")


def test_parallel_promotions_leave_one_production_and_a_true_history(trained_env: dict, small_store: str,
                                                                      tmp_path: Path) -> None:
    client = MlflowClient()
    candidates = [register_weak_xgboost(small_store, tmp_path / str(i)) for i in range(2)]
    env = {**os.environ, "WAREHOUSE_URL": small_store}
    procs = [subprocess.Popen([sys.executable, "cli.py", "promote", "--system", "xgboost_v1", "--version", v,
                               "--force", "true", "--reason", f"parallel {v}"], cwd=settings.REPO_ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for v in candidates]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    current = production_version(client, "xgboost_v1")
    assert current in candidates and _stage_holders(client, "xgboost_v1") == [current]
    promotions = [e for e in history("xgboost_v1") if e.action == "promote"]
    assert promotions[-1].version == current
    assert promotions[-1].from_version == promotions[-2].version  # each saw the other's result
    assert {promotions[-1].version, promotions[-2].version} == set(candidates)


def test_compare_matches_the_logged_run_metrics(trained_env: dict, small_store: str) -> None:
    comparison = compare(connect(small_store))
    client = MlflowClient()
    for system, result in trained_env["results"].items():
        row = comparison.table[(comparison.table.system == system)
                               & (comparison.table.version == int(result.version))].iloc[0]
        assert row.test_mae == client.get_run(result.run_id).data.metrics["test_mae"]
    assert 0 <= comparison.disagreement["disagree_pct"] <= 100
    assert "| system | version | production |" in comparison.markdown()
    assert "<table" in comparison.html()
