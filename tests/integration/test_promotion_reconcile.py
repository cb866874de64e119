"""A promotion interrupted half way is finished or undone, and rollback still finds the earlier version.

A real SQLite MLflow registry in tmp, holding small moving-average versions in the registry's model
format (cheap to register, loaded and scored by the real gate); the failure is injected by making one
MLflow client call raise after the alias has moved.
"""

from __future__ import annotations

import datetime as dt
import shutil
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import cli
from contracts import MOVING_AVERAGE, PRODUCTION_STAGE, SYSTEMS
from features.backfill import backfill
from features.definitions import feature_names
from markets import MARKETS
from registry import probability
from registry.points_model import PYFUNC_ENTRY, write_meta
from registry.promotion import EVENT_PREFIX, PromotionError, history, production_version, promote, rollback
from tests.conftest import SEASON_2024_25
from warehouse import Warehouse, connect

POINTS_FEATURES = feature_names(MARKETS["points"])

SYSTEM = MOVING_AVERAGE
WINDOW = (dt.date(2024, 10, 22), dt.date(2024, 10, 31))


@pytest.fixture(scope="module")
def october_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("october")
    season = pd.read_csv(SEASON_2024_25, dtype=str)
    season[season["GAME_DATE"] <= str(WINDOW[1])].to_csv(folder / "box.csv", index=False)
    url = f"duckdb:///{folder / 'warehouse.duckdb'}"
    backfill(connect(url), folder / "box.csv", None, progress=False)
    return url


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry holding three versions of the system, none in production: built once, copied per test."""
    folder = tmp_path_factory.mktemp("registry")
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = mlflow.create_experiment("reconcile", artifact_location=(folder / "artifacts").as_uri())
    for fallback in (10.0, 11.0, 12.0):
        bundle = folder / f"bundle_{fallback:.0f}"
        write_meta(bundle, {"kind": "moving_average", "system": SYSTEM, "features": POINTS_FEATURES,
                            "columns": ["points_avg_last_10"], "fallback": fallback,
                            "probability": probability.fit("normal", np.array([0.0, 10.0, 20.0, 30.0]),
                                                           np.array([5.0, 10.0, 15.0, 30.0]))})
        with mlflow.start_run(experiment_id=experiment):
            mlflow.set_tags({"test_start": str(WINDOW[0]), "data_range": f"{WINDOW[0]}..{WINDOW[1]}"})
            mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_ENTRY), artifacts={"bundle": str(bundle)},
                                    registered_model_name=SYSTEM, pip_requirements=[])
    return folder / "mlflow.db"


@pytest.fixture
def registry(registered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, october_store: str) -> None:
    """This test's own copy of the registry (the versions' artifacts stay shared, read only)."""
    shutil.copy(registered, tmp_path / "mlflow.db")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "WAREHOUSE_URL": october_store,
           "PROMOTED_BY": "ops"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PROMOTION_LOCK_URL", raising=False)
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])


def stage_holders(client: MlflowClient) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return [str(v.version) for v in client.search_model_versions(f"name = '{SYSTEM}'")
                if v.current_stage == PRODUCTION_STAGE]


def fail_after_the_alias_moved(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """``method`` of the MLflow client raises as a lost tracking server would; event tags only for the
    tag setter, since a promotion writes its intent with that same call before the alias moves."""
    original = getattr(MlflowClient, method)

    def broken(self, *args, **kwargs):
        if method != "set_registered_model_tag" or args[1].startswith(EVENT_PREFIX):
            raise MlflowException("API request to the tracking server failed: connection reset")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, method, broken)


def promote_forced(version: str, store: Warehouse, reason: str) -> None:
    promote(SYSTEM, version, force=True, reason=reason, warehouse=store)


def test_rollback_after_an_audit_failure_finds_the_earlier_version(
        registry: None, october_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client, store = MlflowClient(), connect(october_store)
    assert promote(SYSTEM, "1", warehouse=store).promoted  # the baseline needs no champion
    promote_forced("2", store, "second")
    with monkeypatch.context() as patch:
        fail_after_the_alias_moved(patch, "set_registered_model_tag")
        with pytest.raises((PromotionError, MlflowException)) as interrupted:
            promote_forced("3", store, "third")
    assert production_version(client, SYSTEM) == "3"  # the alias moved, its event was never written

    back = rollback(SYSTEM, reason="third misbehaves")
    assert (back.event.from_version, back.event.version) == ("3", "2")
    assert back.message.splitlines()[0].startswith("reconciled: recorded the interrupted promote of "
                                                   f"{SYSTEM} v2 -> v3")
    assert production_version(client, SYSTEM) == "2" and stage_holders(client) == ["2"]
    events = history(SYSTEM)
    assert [(e.action, e.from_version, e.version) for e in events] == [
        ("promote", None, "1"), ("promote", "1", "2"), ("promote", "2", "3"), ("rollback", "3", "2")]
    assert (events[2].reason, events[2].who, events[2].forced) == ("third", "ops", True)
    assert isinstance(interrupted.value, PromotionError)
    assert str(interrupted.value) == (
        f"the promote of {SYSTEM} to v3 was interrupted (API request to the tracking server failed: connection "
        f"reset); `python cli.py reconcile --system {SYSTEM}` finishes or undoes it, as the next promote or "
        "rollback does first")


def test_alias_and_stage_left_apart_are_rejoined_when_the_promotion_is_retried(
        registry: None, october_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client, store = MlflowClient(), connect(october_store)
    promote(SYSTEM, "1", warehouse=store)
    with monkeypatch.context() as patch:
        fail_after_the_alias_moved(patch, "transition_model_version_stage")
        with pytest.raises((PromotionError, MlflowException)):  # the old code let MLflow's error through
            promote_forced("2", store, "second")
    assert (production_version(client, SYSTEM), stage_holders(client)) == ("2", ["1"])

    again = promote(SYSTEM, "2", warehouse=store)  # what an operator does next: the same command
    assert again.promoted and again.message.endswith("v2 is already in production: nothing changed")
    assert (production_version(client, SYSTEM), stage_holders(client)) == ("2", ["2"])
    assert [(e.action, e.version, e.reason) for e in history(SYSTEM)][-1] == ("promote", "2", "second")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        by_stage = mlflow.pyfunc.load_model(f"models:/{SYSTEM}/{PRODUCTION_STAGE}")
    assert by_stage.metadata.run_id == client.get_model_version_by_alias(SYSTEM, "production").run_id


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> str:
    """The command as a user types it, in this process (the registry is this test's environment)."""
    assert cli.main(list(args)) == 0
    return capsys.readouterr().out


def test_cli_reconcile_drops_a_move_that_never_reached_the_alias(
        registry: None, october_store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    client = MlflowClient()
    promote(SYSTEM, "1", warehouse=connect(october_store))
    with monkeypatch.context() as patch:
        fail_after_the_alias_moved(patch, "set_registered_model_alias")  # the alias itself fails to move
        with pytest.raises(PromotionError):
            promote_forced("2", connect(october_store), "second")
    shown = run_cli(capsys, "history", "--system", SYSTEM)
    assert "unconfirmed:" in shown and "v1 -> v2" in shown

    repaired = run_cli(capsys, "reconcile").splitlines()  # every system
    assert repaired[SYSTEMS.index(SYSTEM)].startswith(f"{SYSTEM}: dropped the promote of {SYSTEM} to v2 (")
    assert repaired[SYSTEMS.index(SYSTEM)].endswith("it stopped before the alias moved, production is still v1")
    assert [(e.action, e.version) for e in history(SYSTEM)] == [("promote", "1")]
    assert (production_version(client, SYSTEM), stage_holders(client)) == ("1", ["1"])
    assert run_cli(capsys, "reconcile", "--system", SYSTEM) == f"{SYSTEM}: alias, stage and history agree\n"
    assert "unconfirmed" not in run_cli(capsys, "history", "--system", SYSTEM)
