"""A throw-away PostgreSQL server on loopback, for the team-deployment tests; a cheap registry for the
promotion, audit and serving tests.

PostgreSQL refuses to run as root, so under root (CI, containers) the cluster is created and run as
the ``postgres`` user that Debian's package adds, in a temporary folder that user owns (pytest's own
temporary folders are private to the user running pytest). Without the binaries the tests skip with
the reason on a laptop, and fail in CI (``CI`` set), where ``.ci/run`` installs them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import psycopg2
import pytest

from contracts import MOVING_AVERAGE
from features.backfill import backfill
from features.definitions import feature_names
from features.store import read_store
from markets import MARKETS
from registry import probability
from registry.points_model import PYFUNC_ENTRY, feature_signature, input_example, model_code_paths, write_meta
from serving.local import free_port
from tests.conftest import SEASON_2024_25
from warehouse import connect

POINTS_FEATURES = feature_names(MARKETS["points"])

SUPERUSER = "postgres"


def _postgres_bin() -> Path | None:
    """Debian keeps the server binaries off PATH, under /usr/lib/postgresql/VERSION/bin."""
    found = shutil.which("pg_ctl") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)),
                                           None)
    return Path(found).parent if found else None


@pytest.fixture(scope="session")
def postgres() -> Iterator[Callable[[str], str]]:
    """Start a cluster; yields ``database(name) -> URL``, which creates the database on first use. The URL
    names the driver (``postgresql+psycopg2://``): SQLAlchemy 2.1 would pick psycopg 3 for ``postgresql://``,
    with which MLflow's stage transition fails on PostgreSQL (it compares an integer column to a string)."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        missing = "PostgreSQL's server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql"
        if os.environ.get("CI"):
            pytest.fail(f"{missing}; CI must run the PostgreSQL tests (.ci/run installs it)", pytrace=False)
        pytest.skip(missing)
    as_root = os.geteuid() == 0
    run_as = {"user": SUPERUSER, "group": SUPERUSER, "extra_groups": []} if as_root else {}
    folder = Path(tempfile.mkdtemp(prefix="nba-props-pg-"))
    if as_root:
        shutil.chown(folder, SUPERUSER, SUPERUSER)
    data, port = folder / "data", free_port()
    base = f"{SUPERUSER}@127.0.0.1:{port}"
    created: set[str] = set()

    def database(name: str) -> str:
        if name not in created:
            connection = psycopg2.connect(f"postgresql://{base}/postgres")
            connection.autocommit = True  # CREATE DATABASE runs outside a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
            connection.close()
            created.add(name)
        return f"postgresql+psycopg2://{base}/{name}"

    try:
        subprocess.run([bin_dir / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8"],
                       check=True, capture_output=True, **run_as)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder} -F"
        subprocess.run([bin_dir / "pg_ctl", "-D", data, "-o", options, "-l", folder / "server.log", "-w", "-t", "60",
                        "start"], check=True, capture_output=True, **run_as)
        yield database
    finally:
        subprocess.run([bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True,
                       **run_as)
        shutil.rmtree(folder, ignore_errors=True)


# --- a cheap registry: small moving-average versions in the registry's model format -----------------
CHEAP_SYSTEM = MOVING_AVERAGE
WINDOW = (dt.date(2024, 10, 22), dt.date(2024, 10, 31))  # their test window, and the store's whole range


@pytest.fixture(scope="session")
def october_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("october")
    season = pd.read_csv(SEASON_2024_25, dtype=str)
    season[season["GAME_DATE"] <= str(WINDOW[1])].to_csv(folder / "box.csv", index=False)
    url = f"duckdb:///{folder / 'warehouse.duckdb'}"
    backfill(connect(url), folder / "box.csv", None, progress=False)
    return url


@pytest.fixture(scope="session")
def registered(october_store: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry holding three versions of the system, none in production, logged as training logs
    them (signature, input example, code): built once, copied per test (``registry``)."""
    example = input_example(read_store(connect(october_store))[POINTS_FEATURES])
    folder = tmp_path_factory.mktemp("registry")
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = mlflow.create_experiment("reconcile", artifact_location=(folder / "artifacts").as_uri())
    for fallback in (10.0, 11.0, 12.0):
        bundle = folder / f"bundle_{fallback:.0f}"
        write_meta(bundle, {"kind": "moving_average", "system": CHEAP_SYSTEM, "features": POINTS_FEATURES,
                            "columns": ["points_avg_last_10"], "fallback": fallback,
                            "probability": probability.fit("normal", np.array([0.0, 10.0, 20.0, 30.0]),
                                                           np.array([5.0, 10.0, 15.0, 30.0]))})
        with mlflow.start_run(experiment_id=experiment, run_name=f"fallback {fallback:.0f}"):
            mlflow.set_tags({"test_start": str(WINDOW[0]), "data_range": f"{WINDOW[0]}..{WINDOW[1]}"})
            mlflow.pyfunc.log_model(name=CHEAP_SYSTEM, python_model=str(PYFUNC_ENTRY),
                                    artifacts={"bundle": str(bundle)}, signature=feature_signature(POINTS_FEATURES),
                                    input_example=example,
                                    code_paths=model_code_paths(folder / "code"), registered_model_name=CHEAP_SYSTEM,
                                    pip_requirements=[])
    mlflow.set_tracking_uri(before)
    return folder / "mlflow.db"


@pytest.fixture
def registry(registered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, october_store: str) -> Iterator[str]:
    """This test's own copy of the registry (the versions' artifacts stay shared, read only); its URI."""
    shutil.copy(registered, tmp_path / "mlflow.db")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "WAREHOUSE_URL": october_store,
           "PROMOTED_BY": "ops", "MLFLOW_ARTIFACT_ROOT": (tmp_path / "artifacts").as_uri()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PROMOTION_LOCK_URL", raising=False)
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    yield env["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(before)  # MLflow keeps the URI in a global: the next test must not find this copy


@contextlib.contextmanager
def spawned(command: list[str], ready: str, log: Path, seconds: float = 120.0, **popen: Any) -> Iterator[None]:
    """A server started by ``command`` (its output in ``log``: a pipe nobody reads would fill up and
    stall it), once its readiness endpoint ``ready`` answers 200; stopped with the processes it forked."""
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **popen)
        try:
            deadline = time.monotonic() + seconds
            while True:
                assert server.poll() is None, log.read_text()[-3000:]
                try:
                    if httpx.get(ready, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{ready} did not answer in {seconds} s: {log.read_text()[-3000:]}"
                time.sleep(0.2)  # bounded by the deadline: the server is starting, there is nothing to wait on
            yield
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
