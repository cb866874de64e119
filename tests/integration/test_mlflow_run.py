"""The entry points as a user runs them: ``mlflow run . -e NAME --env-manager local``."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

import settings
from contracts import PREDICTIONS_SCHEMA
from warehouse import connect


def mlflow_run(entry: str, env: dict, cwd: Path, **params: str) -> subprocess.CompletedProcess:
    """``mlflow run`` of the repository from ``cwd``: the experiment MLflow creates for the entry run
    keeps its artifacts under the working directory (``./mlruns``), so a test's must not be the checkout."""
    command = [sys.executable, "-m", "mlflow", "run", str(settings.REPO_ROOT), "-e", entry, "--env-manager", "local",
               "--experiment-name", "entry-points"]
    for key, value in params.items():
        command += ["-P", f"{key}={value}"]
    return subprocess.run(command, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)


def test_train_then_backtest_through_mlflow_run(small_store: str, tmp_path: Path) -> None:
    work = tmp_path / "w.duckdb"
    work.write_bytes(Path(small_store.removeprefix("duckdb:///")).read_bytes())
    env = {"WAREHOUSE_URL": f"duckdb:///{work}", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "MLFLOW_ARTIFACT_ROOT": (tmp_path / "artifacts").as_uri()}
    # empty defaults (start_date, test_start, ...) reach the CLI as "not given"
    trained = mlflow_run("train", env, tmp_path, systems="moving_average", end_date="2025-01-31",
                         test_start="2025-01-01")
    assert trained.returncode == 0, trained.stderr[-2000:]
    backtest = mlflow_run("backtest", env, tmp_path, start_date="2025-01-01", end_date="2025-01-13",
                          systems="moving_average")
    assert backtest.returncode == 0, backtest.stderr[-2000:]

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    entry = client.search_runs([client.get_experiment_by_name("entry-points").experiment_id],
                               "tags.backtest_run != ''")
    assert len(entry) == 1
    backtest_run = entry[0].data.tags["backtest_run"]
    stored = connect(env["WAREHOUSE_URL"]).read(PREDICTIONS_SCHEMA, date_range=(dt.date(2025, 1, 1),
                                                                                dt.date(2025, 1, 13)))
    assert set(stored.source) == {f"backtest:{backtest_run}"} and len(stored) > 1000
    children = client.search_runs([client.get_run(backtest_run).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{backtest_run}'")
    assert [c.data.tags["system"] for c in children] == ["moving_average"]
    assert "test_line_mae" in children[0].data.metrics
    entry_runs = client.search_runs([client.get_experiment_by_name("entry-points").experiment_id])
    assert sorted(r.info.run_name for r in entry_runs) == ["mlflow run -e backtest", "mlflow run -e train"]
