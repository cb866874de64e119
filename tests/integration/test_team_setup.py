"""The team deployment with real parts: PostgreSQL behind the Optuna study, the MLflow tracking server's
backend store and the promotion lock; the server's own artifact store; tuning, training, registration,
serving and promotions from two machines, all through that server."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import numpy as np
import optuna
import psycopg2
import pytest
from mlflow.tracking import MlflowClient

import settings
from contracts import MOVING_AVERAGE, PRODUCTION_ALIAS, PRODUCTION_STAGE
from features.definitions import FEATURE_NAMES
from features.store import read_store
from registry.locks import promotion_lock
from registry.promotion import PromotionError, history, production_version, promote, rollback
from serving.local import free_port, running
from serving.worker import create_app
from tests.integration.test_distributed import _train, _wait_until_up
from tests.integration.test_promotion import register_weak_xgboost
from warehouse import connect

SYSTEM = "xgboost_v1"
STUDY = "team"
WINDOW = ("--start-date", "2024-10-22", "--end-date", "2024-12-31", "--test-start", "2024-12-01")
SERVED_DAY = dt.date(2024, 12, 10)


@dataclass(frozen=True)
class Team:
    env: dict[str, str]  # what every team member sets
    backend_store: str  # the tracking server's PostgreSQL database
    artifacts: Path  # the tracking server's artifact store


@pytest.fixture(scope="module")
def team(postgres: Callable[[str], str], small_store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """A tracking server on PostgreSQL, through which two tuning processes trained moving_average and
    xgboost_v1 while sharing one Postgres-backed Optuna study (the suite's test of a shared study: the
    storage a team shares, reached by either way of naming it)."""
    root = tmp_path_factory.mktemp("team")
    port = free_port()
    team = Team({"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}", "WAREHOUSE_URL": small_store,
                 "OPTUNA_STORAGE": postgres("optuna"), "PROMOTION_LOCK_URL": postgres("promotion_locks")},
                postgres("mlflow"), root / "artifacts")
    log = (root / "server.log").open("w")  # a pipe nobody reads would fill up and stall the server
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", team.backend_store, "--artifacts-destination",
                               str(team.artifacts), "--workers", "1"],
                              env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no job runners
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_up(team.env["MLFLOW_TRACKING_URI"], server)
        # the experiment exists before both processes start: train's get-or-create is not atomic
        MlflowClient(team.env["MLFLOW_TRACKING_URI"]).create_experiment("nba-player-points")
        # one process names the storage by OPTUNA_STORAGE, the other by --optuna-storage (its environment's
        # OPTUNA_STORAGE is the session's SQLite file): both ways must reach the one study
        by_flag = {k: v for k, v in team.env.items() if k != "OPTUNA_STORAGE"}
        args = ("--systems", f"{MOVING_AVERAGE},{SYSTEM}", "--n-trials", "2", "--study-name", STUDY)
        tuning = [_train(team.env, *args, window=WINDOW),
                  _train(by_flag, *args, "--optuna-storage", team.env["OPTUNA_STORAGE"], window=WINDOW)]
        outputs = [p.communicate(timeout=300)[0] for p in tuning]
        assert [p.returncode for p in tuning] == [0, 0], outputs
        yield team
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and any worker it forked
        server.wait(timeout=30)
        log.close()
        mlflow.set_tracking_uri(settings.tracking_uri())


@pytest.fixture
def team_member(team: Team, monkeypatch: pytest.MonkeyPatch) -> Team:
    """This test process configured as one member of the team."""
    for key, value in team.env.items():
        monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(team.env["MLFLOW_TRACKING_URI"])
    return team


def _query(url: str, sql: str) -> list[tuple]:
    connection = psycopg2.connect(url.replace("+psycopg2", "", 1))
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    finally:
        connection.close()


def _stage_holders(client: MlflowClient) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        versions = client.search_model_versions(f"name = '{SYSTEM}'")
    return [str(v.version) for v in versions if v.current_stage == PRODUCTION_STAGE]


def test_two_tuning_processes_share_one_postgres_study(team: Team) -> None:
    study = optuna.load_study(study_name=f"{STUDY}-{SYSTEM}", storage=team.env["OPTUNA_STORAGE"])
    finished = [t for t in study.trials if t.state.is_finished()]
    assert 2 <= len(finished) <= 3  # together they stop at n_trials (one trial may be in flight at the stop)
    assert len({t.user_attrs["worker"] for t in finished}) == 2
    client = MlflowClient(team.env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("nba-player-points")
    runs = [r for r in client.search_runs([experiment.experiment_id], f"tags.system = '{SYSTEM}'")
            if "mlflow.parentRunId" not in r.data.tags]  # each process's system run, not its trials
    assert len(runs) == 2 and all(r.data.metrics["test_mae"] > 0 for r in runs)


def test_training_registration_and_serving_through_the_team_server(team_member: Team, small_store: str) -> None:
    store = connect(small_store)
    assert promote(MOVING_AVERAGE, warehouse=store).promoted
    decision = promote(SYSTEM, force=True, reason="team setup test", warehouse=store)
    assert decision.promoted
    registered = {name for (name,) in _query(team_member.backend_store, "SELECT name FROM registered_models")}
    assert {MOVING_AVERAGE, SYSTEM} <= registered  # the registry lives in PostgreSQL, behind the server
    assert list(team_member.artifacts.rglob("MLmodel"))  # the models in the server's artifact store

    rows = read_store(store, SERVED_DAY, SERVED_DAY).head(5)
    with running(create_app(warehouse=store, poll_seconds=0)) as url:
        index = httpx.get(f"{url}/", timeout=60).json()["systems"]
        answer = httpx.post(f"{url}/predict", timeout=60, json={
            "games": [{"player_id": int(p), "game_date": str(SERVED_DAY)} for p in rows.player_id],
            "systems": [SYSTEM]})
    assert index[SYSTEM]["version"] == decision.event.version
    assert answer.status_code == 200, answer.text
    expected = mlflow.pyfunc.load_model(f"models:/{SYSTEM}@{PRODUCTION_ALIAS}").predict(
        rows[list(FEATURE_NAMES)].astype(float))
    served = [item["systems"][SYSTEM]["predicted_points"] for item in answer.json()["predictions"]]
    np.testing.assert_allclose(served, expected, atol=1e-3)


def _waiting_for_the_lock(lock_url: str) -> int:
    return _query(lock_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")[0][0]


def test_promotions_from_two_machines_take_turns_on_the_postgres_lock(team_member: Team, small_store: str,
                                                                      tmp_path: Path) -> None:
    client = MlflowClient()
    lock_url = team_member.env["PROMOTION_LOCK_URL"]
    candidates = [register_weak_xgboost(small_store, tmp_path / f"candidate{i}") for i in range(2)]
    machines = [tmp_path / f"machine{i}" for i in range(2)]
    procs = []
    # a third machine is mid-promotion: both machines must queue on the PostgreSQL lock behind it
    with promotion_lock(SYSTEM, team_member.env["MLFLOW_TRACKING_URI"], lock_url, wait_s=60):
        for machine, version in zip(machines, candidates, strict=True):
            (machine / "home").mkdir(parents=True)
            env = {**os.environ, **team_member.env, "HOME": str(machine / "home"), "TMPDIR": str(machine),
                   "PROMOTED_BY": machine.name}
            procs.append(subprocess.Popen(
                [sys.executable, str(settings.REPO_ROOT / "cli.py"), "promote", "--system", SYSTEM, "--version",
                 version, "--force", "true", "--reason", f"from {machine.name}"],
                cwd=machine, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        deadline = time.monotonic() + 120
        while _waiting_for_the_lock(lock_url) < 2:
            assert time.monotonic() < deadline, "the two promotions never queued on the PostgreSQL lock"
            assert all(p.poll() is None for p in procs), [p.communicate()[0] for p in procs]
            time.sleep(0.1)  # polling PostgreSQL's lock table for both waiters, bounded by the deadline
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    current = production_version(client, SYSTEM)
    assert current in candidates and _stage_holders(client) == [current]
    promotions = [e for e in history(SYSTEM) if e.action == "promote"]
    assert {e.version for e in promotions[-2:]} == set(candidates)
    assert {e.who for e in promotions[-2:]} == {m.name for m in machines}
    assert promotions[-1].version == current
    assert promotions[-1].from_version == promotions[-2].version  # the second saw the first's result


def test_the_postgres_lock_holds_across_connections_and_frees_when_its_holder_dies(
        team_member: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    lock_url, tracking = team_member.env["PROMOTION_LOCK_URL"], team_member.env["MLFLOW_TRACKING_URI"]
    monkeypatch.setenv("PROMOTION_LOCK_WAIT", "0.5")
    with promotion_lock(SYSTEM, tracking, lock_url, wait_s=5):
        with pytest.raises(PromotionError, match=rf"^another promotion or rollback of {SYSTEM} has held the lock at "
                                                 r"postgresql\+psycopg2://postgres@127\.0\.0\.1:\d+/promotion_locks "
                                                 r"for more than 0\.5 s: try again when it has finished$"):
            rollback(SYSTEM)
        with promotion_lock(MOVING_AVERAGE, tracking, lock_url, wait_s=5):
            pass  # one lock per system: others promote meanwhile
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from registry.locks import promotion_lock as lock\n"
         f"with lock({SYSTEM!r}, {tracking!r}, {lock_url!r}, 5):\n print('held', flush=True); sys.stdin.read()"],
        cwd=settings.REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    holder.kill()  # a promoter killed mid-promotion: PostgreSQL ends its session and frees the lock
    holder.wait(timeout=30)
    with promotion_lock(SYSTEM, tracking, lock_url, wait_s=10):
        pass  # taken: the dead holder's lock did not outlive it
