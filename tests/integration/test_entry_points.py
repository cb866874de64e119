"""Every MLproject entry point as a user runs it: ``mlflow run . -e NAME --env-manager local``.

One trained platform is built through the entry points themselves, in the order a user would go
(backfill, train, promote, retrain, promote, rollback, history, ...), in stores of a temporary folder,
with the experiment named the README's way (``MLFLOW_EXPERIMENT_NAME``, no ``--experiment-name``).
The replay, which keeps its own stores, runs beside that chain. Each test then checks one entry
point's exit status and what it left behind.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

import settings
from contracts import DATA_CHECKS_SCHEMA, DEFAULT_EXPERIMENT, ENTRY_POINTS, MONITORING_SCHEMA, PREDICTIONS_SCHEMA
from registry.tracking import DEFAULT_EXPERIMENT_ID, entry_run_name
from serving.local import free_port
from tests.conftest import SEASON_2024_25, write_csv
from warehouse import connect
from warehouse.checks import DayCheck, record_checks

pytestmark = pytest.mark.slow

PREDICT_DAY = dt.date(2025, 1, 10)
DAILY_DAY = dt.date(2025, 4, 14)  # the day after the store's last results: nothing to ingest, the monitor runs
HELD_DAY = dt.date(2025, 4, 13)  # the store's last day, held by hand so that held and accept have a day
REPLAY = {"start_date": "2024-12-02", "end_date": "2024-12-04", "results": str(SEASON_2024_25), "lines": "shipped",
          "retrain_every": "0", "gate_days": "5", "train_years": "1"}
TIMEOUT = 600


def command(entry: str, **params: str) -> list[str]:
    """``mlflow run`` of the repository: no ``--experiment-name``, the environment names the experiment."""
    line = [sys.executable, "-m", "mlflow", "run", str(settings.REPO_ROOT), "-e", entry, "--env-manager", "local"]
    for key, value in params.items():
        line += ["-P", f"{key}={value}"]
    return line


def mlflow_run(entry: str, env: dict, cwd: Path, **params: str) -> subprocess.CompletedProcess:
    """Run from ``cwd``: the experiment ``mlflow run`` creates keeps its artifacts under the working
    directory (``./mlruns``), so a test's must not be the checkout."""
    return subprocess.run(command(entry, **params), cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def serve_briefly(env: dict, cwd: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """``mlflow run -e serve`` until the worker answers ``GET /``, then stopped as a user stops it (Ctrl+C:
    SIGINT to its process group); returns the run and the worker's answer."""
    port = free_port()
    proc = subprocess.Popen(command("serve", port=str(port), poll="3600"), cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    answer: dict = {}
    deadline = time.monotonic() + 180
    try:
        while not answer and proc.poll() is None and time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json()
            except httpx.TransportError:
                time.sleep(0.5)  # the worker is still starting: poll again
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, ""), answer


@pytest.fixture(scope="module")
def platform(small_store: str, box_csv_lines: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every entry point run once, through ``mlflow run``; returns the runs by entry point and the stores."""
    root = tmp_path_factory.mktemp("entry-points")
    warehouse = root / "warehouse.duckdb"
    shutil.copy(small_store.removeprefix("duckdb:///"), warehouse)
    stores = {"WAREHOUSE_URL": f"duckdb:///{warehouse}", "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
              "MLFLOW_ARTIFACT_ROOT": (root / "artifacts").as_uri(),
              "OPTUNA_STORAGE": f"sqlite:///{root / 'optuna.db'}"}
    env = {**{k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")}, **stores,
           "MLFLOW_EXPERIMENT_NAME": DEFAULT_EXPERIMENT, "PROMOTED_BY": "entry-point-test"}
    # the store and its experiment made before two `mlflow run`s (the replay's and the chain's) race to make them
    MlflowClient(stores["MLFLOW_TRACKING_URI"]).create_experiment(DEFAULT_EXPERIMENT,
                                                                  artifact_location=stores["MLFLOW_ARTIFACT_ROOT"])
    replay_home = root / "replay"
    replay = subprocess.Popen(command("replay", **REPLAY, home=str(replay_home), output=str(root / "replay.json")),
                              cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs: dict[str, subprocess.CompletedProcess] = {}
    try:
        # a backfill of 400 real rows into a warehouse of its own (the shared one holds the season)
        box = write_csv(root / "box.csv", box_csv_lines)
        runs["backfill"] = mlflow_run("backfill", {**env, "WAREHOUSE_URL": f"duckdb:///{root / 'backfill.duckdb'}"},
                                      root, box_scores=str(box), lines="none")
        runs["train"] = mlflow_run("train", env, root, experiment="experiments/quick.yaml", systems="moving_average")
        runs["promote"] = mlflow_run("promote", env, root, system="moving_average")
        # moving_average v2 (and the other systems) fitted on under three weeks, judged on the last 5 game days
        runs["retrain"] = mlflow_run("retrain", env, root, date="2024-12-20", gate_days="5", train_start="2024-12-01")
        forced = mlflow_run("promote", env, root, system="moving_average", version="2", force="true",
                            reason="entry-point test")
        assert forced.returncode == 0, forced.stderr[-3000:]
        runs["rollback"] = mlflow_run("rollback", env, root, system="moving_average", reason="entry-point test")
        runs["history"] = mlflow_run("history", env, root, system="moving_average")
        runs["reconcile"] = mlflow_run("reconcile", env, root, system="moving_average")
        runs["compare"] = mlflow_run("compare", env, root)
        runs["backtest"] = mlflow_run("backtest", env, root, experiment="experiments/quick.yaml",
                                      systems="moving_average")
        runs["predict"] = mlflow_run("predict", env, root, game_date=str(PREDICT_DAY))
        runs["daily"] = mlflow_run("daily", env, root, date=str(DAILY_DAY), results="shipped", retrain_every="0")
        problem = f"{HELD_DAY} game 0022401199: BOS minutes 139, expected 240 (240 +25 per OT)"
        record_checks(connect(stores["WAREHOUSE_URL"]), [DayCheck(HELD_DAY, (problem,))])
        runs["held"] = mlflow_run("held", env, root)
        runs["accept"] = mlflow_run("accept", env, root, date=str(HELD_DAY), reason="box score checked by hand")
        runs["serve"], worker = serve_briefly(env, root)
    finally:
        out, err = replay.communicate(timeout=TIMEOUT)
    runs["replay"] = subprocess.CompletedProcess(replay.args, replay.returncode, out, err)
    return {"runs": runs, "env": env, "root": root, "worker": worker, "replay_home": replay_home,
            "client": MlflowClient(stores["MLFLOW_TRACKING_URI"]), "warehouse": connect(stores["WAREHOUSE_URL"])}


def entry_run(platform: dict, entry: str):
    client = platform["client"]
    experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    found = client.search_runs([experiment.experiment_id], f"tags.`mlflow.project.entryPoint` = '{entry}'")
    assert found, f"no entry run of {entry}"
    return found[0]


def test_every_entry_point_ran_and_succeeded(platform: dict) -> None:
    assert set(platform["runs"]) == set(ENTRY_POINTS)
    for entry, run in platform["runs"].items():
        if entry != "serve":  # stopped by Ctrl+C: `mlflow run` says "Aborted!", exit 1 (test_serve_...)
            assert run.returncode == 0, f"{entry}: {run.stdout[-2000:]}\n{run.stderr[-3000:]}"
        assert "Traceback" not in run.stdout + run.stderr, entry


def test_one_experiment_with_named_runs_and_nothing_in_default(platform: dict) -> None:
    client = platform["client"]
    experiments = client.search_experiments()
    default = [e for e in experiments if e.experiment_id == DEFAULT_EXPERIMENT_ID]
    assert not default or not client.search_runs([DEFAULT_EXPERIMENT_ID])
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=5000)
    assert runs and all(r.info.run_name for r in runs)
    entry_runs = [r for r in runs if "mlflow.project.entryPoint" in r.data.tags]
    assert len(entry_runs) == len(ENTRY_POINTS) + 1  # and the forced promote
    for run in entry_runs:
        assert run.info.run_name == entry_run_name(run.data.tags["mlflow.project.entryPoint"])
        assert client.get_experiment(run.info.experiment_id).name == DEFAULT_EXPERIMENT
    # the runs the jobs started sit beside them (monitoring keeps its own sibling experiment)
    train = entry_run(platform, "train")
    system_runs = json.loads(train.data.tags["system_runs"])
    assert {client.get_run(r).info.experiment_id for r in system_runs.values()} == {train.info.experiment_id}


def test_backfill_writes_its_rows(platform: dict) -> None:
    assert "backfill 2024-10-26 .. 2024-10-28: 3 game dates, 400 player-games" in platform["runs"]["backfill"].stdout


def test_train_registers_and_prints_only_its_result(platform: dict) -> None:
    run = platform["runs"]["train"]
    client = platform["client"]
    assert client.get_registered_model("moving_average").latest_versions
    # stdout: the result table and the link; stderr: no third-party chatter at the default level
    # (Optuna's: tests/unit/test_cli.py, a tuned run costs more than this whole file should)
    lines = run.stdout.splitlines()
    assert lines[0].startswith("| market | system | version | test_mae")
    assert lines[-1].startswith("runs in the MLflow UI: ")
    assert "INFO training.train: training points moving_average on " in run.stderr
    for chatter in ("Validating input example", "Downloading artifacts", "{'train'"):
        assert chatter not in run.stdout + run.stderr, chatter
    assert "train_summary.md" in [a.path for a in client.list_artifacts(entry_run(platform, "train").info.run_id)]


def test_promote_rollback_history_reconcile_move_and_show_production(platform: dict) -> None:
    runs, client = platform["runs"], platform["client"]
    assert "promoted" in runs["promote"].stdout.lower()
    assert str(client.get_model_version_by_alias("moving_average", "production").version) == "1"  # back from 2
    assert "moving_average: production is v1" in runs["history"].stdout
    assert "alias, stage and history agree" in runs["reconcile"].stdout
    assert "retrained as of 2024-12-20" in runs["retrain"].stdout
    assert {v.tags.get("retrained_as_of") for v in client.search_model_versions("name = 'moving_average'")} \
        >= {"2024-12-20"}


def test_compare_and_backtest_log_their_runs(platform: dict) -> None:
    client, store = platform["client"], platform["warehouse"]
    assert "compare_run" in entry_run(platform, "compare").data.tags
    backtest_run = entry_run(platform, "backtest").data.tags["backtest_run"]
    stored = store.read(PREDICTIONS_SCHEMA, date_range=(dt.date(2025, 1, 1), dt.date(2025, 1, 13)))
    assert {s for s in stored.source if s.startswith("backtest:")} == {f"backtest:{backtest_run}"}
    assert (stored.source == f"backtest:{backtest_run}").sum() > 1000  # beside predict's rows of PREDICT_DAY
    children = client.search_runs([client.get_run(backtest_run).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{backtest_run}'")
    assert [c.data.tags["system"] for c in children] == ["moving_average"]


def test_predict_and_daily_write_their_rows(platform: dict) -> None:
    store = platform["warehouse"]
    assert len(store.read(PREDICTIONS_SCHEMA, date_range=(PREDICT_DAY, PREDICT_DAY))) > 100
    assert f"daily {DAILY_DAY}" in platform["runs"]["daily"].stdout
    assert len(store.read(MONITORING_SCHEMA, date_range=(DAILY_DAY, DAILY_DAY))) > 0


def test_held_lists_the_day_and_accept_lets_it_in_with_who_and_why(platform: dict) -> None:
    assert f"held      {HELD_DAY}  {HELD_DAY} game 0022401199" in platform["runs"]["held"].stdout
    check = platform["warehouse"].read(DATA_CHECKS_SCHEMA, equals={"game_date": HELD_DAY}).iloc[0]
    assert check["status"] == "accepted"
    assert check["problems"].endswith("accepted by entry-point-test: box score checked by hand")


def test_serve_answers_until_stopped(platform: dict) -> None:
    assert "moving_average" in platform["worker"]["systems"]
    stopped = platform["runs"]["serve"]
    # Ctrl+C reaches `mlflow run` and the worker alike: whichever of them sees it first, the run
    # ends as interrupted (the worker exits 130 when Ctrl+C stopped it), never as a finished one
    assert stopped.returncode == 1, stopped.stdout[-3000:]
    assert "interrupted, cancelling run" in stopped.stdout or "failed" in stopped.stdout, stopped.stdout[-3000:]
    assert entry_run(platform, "serve").info.status in ("FAILED", "KILLED")


def test_replay_through_mlflow_run_reports_to_the_users_store(platform: dict) -> None:
    root = platform["root"]
    figures = json.loads((root / "replay.json").read_text())
    assert figures["played"] > 0 and "moving_average" in figures["systems"]
    run = entry_run(platform, "replay")
    assert run.data.tags["window"] == "2024-12-02..2024-12-04"
    live_mae = figures["systems"]["moving_average"]["live_mae"]
    assert run.data.metrics["moving_average.live_mae"] == pytest.approx(live_mae)
    # the replay's own store holds its runs, and no trace of the user's entry run
    own = MlflowClient(f"sqlite:///{platform['replay_home'] / 'mlflow.db'}")
    ids = [e.experiment_id for e in own.search_experiments()]
    assert all("mlflow.project.entryPoint" not in r.data.tags for r in own.search_runs(ids, max_results=1000))
