"""Scaling out with existing engines: a real MLflow tracking server; backtests. (Two processes sharing
one Optuna study: test_team_setup.py, on the PostgreSQL storage a team shares.)"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow.tracking import MlflowClient

import settings
from contracts import PREDICTIONS_SCHEMA
from features.definitions import FEATURE_STORE_SCHEMA
from serving.local import free_port
from training.backtest import backtest
from training.spec import load_spec
from warehouse import connect

WINDOW = ("--start-date", "2024-10-22", "--end-date", "2025-01-31", "--test-start", "2025-01-01")


def _train(env: dict, *args: str, window: tuple[str, ...] = WINDOW) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "cli.py", "train", "--quiet", *window, *args], cwd=settings.REPO_ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_until_up(url: str, proc: subprocess.Popen, deadline_s: float = 120) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else "mlflow server exited"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling a starting server's readiness endpoint, bounded by the deadline
    raise AssertionError("mlflow server did not become ready")


@pytest.fixture
def tracking_server(tmp_path: Path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                             "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_training_against_a_tracking_server(small_store: str, tracking_server: str) -> None:
    proc = _train({"WAREHOUSE_URL": small_store, "MLFLOW_TRACKING_URI": tracking_server},
                  "--systems", "moving_average,xgboost_v1", "--n-trials", "1")
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, output
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("nba-player-points")
    runs = client.search_runs([experiment.experiment_id], "tags.system = 'xgboost_v1'")
    runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]  # the system's run, not its trial
    assert len(runs) == 1 and runs[0].data.metrics["test_mae"] > 0
    assert client.get_registered_model("xgboost_v1").name == "xgboost_v1"
    mlflow.set_tracking_uri(tracking_server)
    try:
        model = mlflow.pyfunc.load_model("models:/xgboost_v1/1")  # artifacts come through the server
    finally:
        mlflow.set_tracking_uri(settings.tracking_uri())
    assert model.metadata.run_id == runs[0].info.run_id


def test_backtest_writes_one_prediction_per_game_and_system(small_store: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    shutil.copy(small_store.removeprefix("duckdb:///"), tmp_path / "w.duckdb")
    store = connect(f"duckdb:///{tmp_path / 'w.duckdb'}")  # predictions go to a copy, not the shared store
    systems = ("moving_average", "xgboost_v1", "ensemble_v1")
    spec = load_spec().override(backtest_start=dt.date(2024, 12, 15), backtest_end=dt.date(2025, 1, 13),
                                systems=systems)
    result = backtest(spec, store, progress=False)
    stored = store.read(PREDICTIONS_SCHEMA, date_range=(dt.date(2024, 12, 15), dt.date(2025, 1, 13)))
    mine = stored[stored.source == f"backtest:{result.run_id}"]
    games = store.read(FEATURE_STORE_SCHEMA, date_range=(dt.date(2024, 12, 15), dt.date(2025, 1, 13)))
    assert len(mine) == len(games) * len(systems)
    assert not mine.duplicated(["game_id", "player_id", "system"]).any()
    assert set(mine.model_version) == {"backtest-2024-12", "backtest-2025-01"}
    client = MlflowClient()
    children = client.search_runs([client.get_run(result.run_id).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{result.run_id}'")
    by_system = {child.data.tags["system"]: child.data.metrics for child in children}
    assert set(by_system) == set(systems)
    for system in systems:  # the training runs' keys, the whole window as the shown value
        assert by_system[system]["test_line_mae"] == pytest.approx(result.metrics[system]["test_line_mae"])
        assert {"test_model_mae_on_lines", "test_hit_rate", "test_mae", "n_test"} <= set(by_system[system])
