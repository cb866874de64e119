"""The worker under hostile or unlucky conditions (issue 9, and issue 15 row 3 at the end): each test
reproduces one reported failure.

Small moving-average bundles registered in a throw-away SQLite registry stand in for the trained
systems (they load in milliseconds), and a throw-away DuckDB file holds a few feature rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

import settings
from contracts import FEATURE_VERSION, PRODUCTION_ALIAS
from features.definitions import FEATURE_NAMES, FEATURE_STORE_SCHEMA, feature_names
from markets import MARKETS
from registry import probability
from registry.points_model import PYFUNC_ENTRY, load_bundle, write_meta
from serving.local import free_port, running
from serving.models import LoadedSystem, ProductionModels
from serving.worker import CACHE_DATES, MAX_BODY_BYTES, MAX_DATES, MAX_ITEMS, RETRY_AFTER_SECONDS, create_app
from warehouse import Warehouse, connect
from warehouse.duckdb_backend import DuckDBWarehouse

POINTS_FEATURES = feature_names(MARKETS["points"])

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DAY = dt.date(2025, 1, 10)
PLAYERS = (101, 102, 103)
SYSTEMS = ("moving_average", "xgboost_v1")
GOOD = {"kind": "moving_average", "columns": ["points_avg_last_5"], "fallback": 10.0}
BROKEN = {**GOOD, "fallback": "n/a"}  # loads; fails where a row has no average to stand in for


# --- a registry, a store and a worker -----------------------------------------------------------
def write_bundle(folder: Path, system: str, meta: dict) -> Path:
    write_meta(folder, {**meta, "system": system, "features": POINTS_FEATURES, "feature_version": FEATURE_VERSION,
                        "probability": probability.fit("normal", np.array([0.0, 10.0, 20.0, 30.0]),
                                                       np.array([5.0, 10.0, 15.0, 30.0]))})
    return folder


class Registry:
    """A SQLite MLflow registry, with its artifacts next to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.client = MlflowClient()
        found = self.client.get_experiment_by_name("hardening")
        self.experiment = found.experiment_id if found else self.client.create_experiment(
            "hardening", artifact_location=(root / "artifacts").as_uri())

    def register(self, system: str, meta: dict, promote: bool = True) -> str:
        folder = write_bundle(self.root / "bundles" / f"{system}-{len(list(self.root.glob('bundles/*')))}",
                              system, meta)
        with mlflow.start_run(experiment_id=self.experiment):
            info = mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_ENTRY), pip_requirements=[],
                                           artifacts={"bundle": str(folder)}, registered_model_name=system)
        version = str(info.registered_model_version)
        if promote:
            self.client.set_registered_model_alias(system, PRODUCTION_ALIAS, version)
        return version


def use_registry(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    mlflow.set_tracking_uri(f"sqlite:///{db}")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both systems registered and promoted once (creating an MLflow database takes seconds);
    each test gets a copy of the database, so none sees another's aliases."""
    root = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_registry(root / "mlflow.db", monkeypatch)
        registry = Registry(root)
        for system in SYSTEMS:
            registry.register(system, GOOD)
    return root


@pytest.fixture
def registry(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    shutil.copy(template / "mlflow.db", tmp_path / "mlflow.db")
    use_registry(tmp_path / "mlflow.db", monkeypatch)
    return Registry(template)


def feature_rows(day: dt.date, players: tuple[int, ...]) -> pd.DataFrame:
    frame = pd.DataFrame({"player_id": list(players), "player_name": [f"P{p}" for p in players],
                          "game_id": "0022400001", "game_date": day, "season": "2024-25", "team": "BOS",
                          "opponent": "NYK", **dict.fromkeys(MARKETS, 20.0), "feature_version": FEATURE_VERSION,
                          "missing_inputs": 0})
    for i, name in enumerate(FEATURE_NAMES):
        frame[name] = float(i)
    frame["points_avg_last_5"] = [15.0 + p % 10 for p in players]
    return frame


@pytest.fixture
def store(tmp_path: Path) -> Warehouse:
    warehouse = connect(f"duckdb:///{tmp_path / 'store.duckdb'}")
    warehouse.write(FEATURE_STORE_SCHEMA, feature_rows(DAY, PLAYERS))
    return warehouse


@pytest.fixture
def worker(registry: Registry, store: Warehouse) -> Iterator[TestClient]:
    app = create_app(ProductionModels(SYSTEMS), store, token=TOKEN, poll_seconds=0)
    with TestClient(app) as client:
        yield client


def games(*players: int, day: dt.date = DAY) -> dict:
    return {"games": [{"player_id": p, "game_date": str(day)} for p in players]}


# --- row 2: distinct dates and the feature cache are bounded ----------------------------------
def test_a_request_naming_hundreds_of_dates_is_refused_before_any_read(worker: TestClient) -> None:
    many = {"games": [{"player_id": 101, "game_date": str(DAY + dt.timedelta(days=i))} for i in range(500)]}
    response = worker.post("/predict", json=many)  # how fast: benchmarks/bounds.py
    assert response.status_code == 422
    assert f"500 distinct game dates; at most {MAX_DATES}" in response.json()["detail"][0]["msg"]
    assert worker.app.state.cache.size == 0


def test_the_feature_cache_keeps_at_most_its_number_of_dates(worker: TestClient) -> None:
    for i in range(CACHE_DATES + 5):
        day = DAY + dt.timedelta(days=i)
        assert worker.post("/predict", json=games(101, day=day)).status_code == 200
    assert worker.app.state.cache.size == CACHE_DATES
    assert worker.get("/").json()["cached_dates"] == CACHE_DATES


# --- row 3: a version that loads but cannot predict -------------------------------------------
def test_a_version_that_cannot_predict_is_not_swapped_in(worker: TestClient, registry: Registry) -> None:
    good = worker.get("/").json()["systems"]["xgboost_v1"]["version"]
    broken = registry.register("xgboost_v1", BROKEN)
    reload = worker.post("/reload", headers=AUTH).json()
    assert reload["changes"]["xgboost_v1"].startswith(f"v{broken} loads but cannot predict: ValueError")
    index = worker.get("/").json()
    assert index["systems"]["xgboost_v1"]["version"] == good and "cannot predict" in index["errors"]["xgboost_v1"]
    health = worker.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    answer = worker.post("/predict", json=games(101, 102))
    assert answer.status_code == 200
    assert [p["systems"]["xgboost_v1"]["version"] for p in answer.json()["predictions"]] == [good, good]


def test_a_first_version_that_cannot_predict_leaves_the_others_serving(registry: Registry, store: Warehouse) -> None:
    registry.register("xgboost_v1", BROKEN)
    with TestClient(create_app(ProductionModels(SYSTEMS), store, token=TOKEN, poll_seconds=0)) as worker:
        health = worker.get("/health")
        answer = worker.post("/predict", json=games(101))
    assert health.status_code == 200 and health.json()["systems"] == ["moving_average"]
    assert "xgboost_v1" in health.json()["errors"]
    assert answer.status_code == 200 and list(answer.json()["predictions"][0]["systems"]) == ["moving_average"]
    assert "cannot predict" in answer.json()["errors"]["xgboost_v1"]  # the answer says why it is missing


class Installed(ProductionModels):
    """Serves given bundles as they are, without the registry or the smoke test: how a model that
    fails only on some inputs reaches the predict path."""

    def __init__(self, folder: Path, bundles: dict[str, dict]) -> None:
        super().__init__(tuple(bundles))
        self.folders = {name: write_bundle(folder / name, name, meta) for name, meta in bundles.items()}

    def refresh(self) -> dict[str, str]:
        self._loaded = {name: LoadedSystem(name, "1", "run", "now", FEATURE_VERSION, load_bundle(folder))
                        for name, folder in self.folders.items()}
        return {}


def test_a_system_failing_at_predict_time_is_skipped_and_reported(store: Warehouse, tmp_path: Path) -> None:
    models = Installed(tmp_path, {"moving_average": GOOD, "xgboost_v1": BROKEN,
                        "catboost_v8": {**GOOD, "fallback": float("inf")}})  # infinite where a row has no average
    no_average = {"rows": [{**dict.fromkeys(FEATURE_NAMES, 1.0), "points_avg_last_5": None}]}
    with TestClient(create_app(models, store, poll_seconds=0)) as worker:
        answer = worker.post("/predict", json=no_average)
        index, health = worker.get("/").json(), worker.get("/health").json()
        only_broken = worker.post("/predict", json={**no_average, "systems": ["xgboost_v1"]})
    assert answer.status_code == 200 and "Infinity" not in answer.text
    body = answer.json()
    assert body["predictions"][0]["systems"]["moving_average"]["predicted_points"] == 10.0
    assert set(body["errors"]) == {"xgboost_v1", "catboost_v8"} and "non-finite" in body["errors"]["catboost_v8"]
    assert "failed to predict" in index["errors"]["xgboost_v1"]
    assert health["status"] == "degraded" and health["systems"] == ["moving_average"]
    assert only_broken.status_code == 503 and "xgboost_v1" in only_broken.json()["detail"]


# --- row 5: a dead tracking server ------------------------------------------------------------
def test_a_dead_tracking_server_is_reported_in_seconds_and_the_loaded_systems_serve(
        worker: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(response=worker.post("/reload", headers=AUTH)), daemon=True)
    thread.start()
    thread.join(timeout=60)  # a hang guard, not a stopwatch (benchmarks/bounds.py): MLflow's defaults retry ~4 min
    assert not thread.is_alive()
    changes = result["response"].json()["changes"]
    assert changes["registry"].startswith("tracking server unreachable") and "not promoted" not in changes["registry"]
    health = worker.get("/health").json()
    assert health["status"] == "degraded" and health["systems"] == list(SYSTEMS)
    assert worker.post("/predict", json=games(101)).status_code == 200


# --- row 6: body size, item count, no echo --------------------------------------------------------
def test_a_body_over_the_limit_is_refused_before_it_is_parsed(registry: Registry, store: Warehouse) -> None:
    body = b'{"table": {"columns": [], "data": [' + b"[1.0]," * (MAX_BODY_BYTES // 6) + b"[1.0]]}}"
    with running(create_app(ProductionModels(SYSTEMS), store, poll_seconds=0)) as url:
        response = httpx.post(f"{url}/predict", content=body, headers={"content-type": "application/json"},
                              timeout=30)
    assert response.status_code == 413 and len(response.content) < 200  # how fast: benchmarks/bounds.py


def test_a_refused_table_is_not_echoed_back(worker: TestClient) -> None:
    table = {"columns": list(FEATURE_NAMES), "data": [[1.0] * len(FEATURE_NAMES)] * (MAX_ITEMS + 1)}
    response = worker.post("/predict", json={"table": table})
    assert response.status_code == 422 and len(response.content) < 1000
    assert response.json()["detail"][0]["loc"] == ["body", "table", "data"]


def test_games_rows_and_table_share_one_item_limit(worker: TestClient) -> None:
    row = dict.fromkeys(FEATURE_NAMES, 1.0)
    request = {**games(*([101] * (MAX_ITEMS // 2))), "rows": [row] * (MAX_ITEMS // 2),
               "table": {"columns": list(FEATURE_NAMES), "data": [list(row.values())]}}
    response = worker.post("/predict", json=request)
    assert response.status_code == 422
    assert f"hold {MAX_ITEMS + 1} items together; at most {MAX_ITEMS}" in response.json()["detail"][0]["msg"]


# --- row 7: NaN and Infinity ------------------------------------------------------------------------
ROW = json.dumps(dict.fromkeys(FEATURE_NAMES, 1.0))[1:-1]


ONE_ROW = dict.fromkeys(FEATURE_NAMES, 1.0)
WITHOUT = [f for f in FEATURE_NAMES if f != "points_avg_season"]
SEND_POINTS = f"send its {len(POINTS_FEATURES)} features, null where a value is unknown"


@pytest.mark.parametrize(("body", "message"), [
    ({"rows": [{f: ONE_ROW[f] for f in WITHOUT}]},
     f"body: rows[0] lacks feature points_avg_season of the points market: {SEND_POINTS}"),
    ({"rows": [{**ONE_ROW, "points_avg_last_3": 1.0}]}, "rows.0.points_avg_last_3: Extra inputs are not permitted "
                                                        "(got 1.0)"),
    ({"table": {"columns": WITHOUT, "data": [[1.0] * len(WITHOUT)]}},
     f"body: table.columns lack feature points_avg_season of the points market: {SEND_POINTS}"),
    ({"table": {"columns": [*FEATURE_NAMES, "points_avg_last_3"], "data": [[1.0] * (len(FEATURE_NAMES) + 1)]}},
     "table: columns hold unknown column 'points_avg_last_3': send the market's features, null where a value "
     "is unknown"),
])
def test_a_missing_or_unknown_feature_is_a_422_in_one_sentence(worker: TestClient, body: dict, message: str) -> None:
    response = worker.post("/predict", json=body)
    assert response.status_code == 422 and [d["msg"] for d in response.json()["detail"]] == [message]


@pytest.mark.parametrize(("body", "loc"), [
    ('{"games": [{"player_id": 101, "game_date": "2025-01-10", "line": NaN}]}', ["body", "games", 0, "line"]),
    ('{"games": [{"player_id": Infinity, "game_date": "2025-01-10"}]}', ["body", "games", 0, "player_id"]),
    ('{"games": [{"player_id": NaN, "game_date": "2025-01-10"}]}', ["body", "games", 0, "player_id"]),
    ('{"games": [{"player_id": 101, "game_date": "2025-01-10"}], "systems": [NaN]}', ["body", "systems", 0]),
    ('{"rows": [{' + ROW.replace('"points_avg_last_5": 1.0', '"points_avg_last_5": Infinity') + "}]}",
     ["body", "rows", 0, "points_avg_last_5"]),
    ('{"rows": [{' + ROW + ', "line": -Infinity}]}', ["body", "rows", 0, "line"]),
    ('{"table": {"columns": ' + json.dumps(list(FEATURE_NAMES)) + ', "data": [['
     + ", ".join(["NaN"] * len(FEATURE_NAMES)) + "]]}}",
     ["body", "table", "data", 0, 0]),
])
def test_nan_and_infinity_are_422_naming_the_field(worker: TestClient, body: str, loc: list) -> None:
    response = worker.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert loc in [e["loc"] for e in response.json()["detail"]]
    assert "Infinity" not in response.text and "NaN" not in response.text


# --- row 9: another process holds the warehouse's write lock ------------------------------------
HOLD_LOCK = "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.read()"


@pytest.mark.timeout(60)
def test_a_locked_warehouse_is_a_quick_503_and_health_says_so(worker: TestClient, store: Warehouse) -> None:
    worker.app.state.cache.clear()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(store.path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        response = worker.post("/predict", json=games(101))  # how fast: benchmarks/bounds.py
        health = worker.get("/health").json()
        explicit = worker.post("/predict", json={"rows": [dict.fromkeys(FEATURE_NAMES, 1.0)]})
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert response.status_code == 503
    assert "busy: another process is writing it" in response.json()["detail"]
    assert health["status"] == "degraded" and "busy" in health["errors"]["warehouse"]
    assert explicit.status_code == 200  # rows given in the request need no warehouse
    assert worker.post("/predict", json=games(101)).status_code == 200
    assert worker.get("/health").json()["status"] == "ok"


def test_issue_15_row_10_a_deleted_warehouse_is_a_503_and_never_made_again(worker: TestClient,
                                                                            store: DuckDBWarehouse) -> None:
    """The warehouse file deleted while the worker serves: a read made an empty DuckDB file, and the
    answers became "no feature row" (or the cached rows) with ``/health`` ok."""
    assert worker.post("/predict", json=games(101)).status_code == 200  # the date is cached now
    store.path.unlink()
    response = worker.post("/predict", json=games(101))
    health = worker.get("/health")
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert detail.startswith("the feature store cannot be read now: the warehouse duckdb:///…/store.duckdb "
                             "does not exist (deleted, or never built)")
    assert detail.count(". ") == 0 and str(store.path.parent) not in detail  # one sentence, no server path
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert "does not exist" in health.json()["errors"]["warehouse"]
    assert worker.post("/predict", json={"rows": [dict.fromkeys(FEATURE_NAMES, 1.0)]}).status_code == 200
    assert not store.path.exists()
    assert store.read(FEATURE_STORE_SCHEMA).empty and store.count(FEATURE_STORE_SCHEMA) == 0
    assert not store.path.exists()  # a read answers empty without making the file
    store.write(FEATURE_STORE_SCHEMA, feature_rows(DAY, PLAYERS))  # a backfill builds it again
    assert worker.post("/predict", json=games(101)).status_code == 200
    assert worker.get("/health").json()["status"] == "ok"


def test_issue_15_row_10_a_read_never_makes_the_warehouse_folder(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(f"duckdb:///{tmp_path / 'absent' / 'store.duckdb'}")
    assert warehouse.read(FEATURE_STORE_SCHEMA).empty and warehouse.count(FEATURE_STORE_SCHEMA) == 0
    assert not (tmp_path / "absent").exists()


# --- row 12: the bearer scheme, a deleted alias -------------------------------------------------
@pytest.mark.parametrize(("header", "status"), [(TOKEN, 401), (f"Token {TOKEN}", 401), (f"Bearer {TOKEN}x", 401),
                                                (f"Bearer {TOKEN}", 200), (f"bearer {TOKEN}", 200)])
def test_reload_needs_the_bearer_scheme(worker: TestClient, header: str, status: int) -> None:
    assert worker.post("/reload", headers={"Authorization": header}).status_code == status


def test_a_deleted_production_alias_stops_that_system(worker: TestClient, registry: Registry) -> None:
    version = worker.get("/").json()["systems"]["xgboost_v1"]["version"]
    registry.client.delete_registered_model_alias("xgboost_v1", PRODUCTION_ALIAS)
    changes = worker.post("/reload", headers=AUTH).json()["changes"]
    assert changes == {"xgboost_v1": f"production alias removed (was v{version}); no longer served"}
    index = worker.get("/").json()
    assert set(index["systems"]) == {"moving_average"} and "alias removed" in index["errors"]["xgboost_v1"]
    answer = worker.post("/predict", json=games(101)).json()
    assert list(answer["predictions"][0]["systems"]) == ["moving_average"]
    registry.client.set_registered_model_alias("xgboost_v1", PRODUCTION_ALIAS, version)
    assert worker.post("/reload", headers=AUTH).json()["changes"] == {"xgboost_v1": f"v- -> v{version}"}
    assert worker.get("/health").json()["status"] == "ok"



# --- issue 15 row 3: a request's cost is bounded whatever else is in flight; SIGTERM stops the worker --
class WatchedStore(DuckDBWarehouse):
    """The store, counting its reads; with ``hold`` set, each read waits for ``release`` first."""

    def __init__(self, url: str, hold: bool = False) -> None:
        super().__init__(url)
        self.reads, self._count = 0, threading.Lock()
        self.hold, self.entered, self.release = hold, threading.Event(), threading.Event()

    def read(self, *args, **kwargs) -> pd.DataFrame:  # noqa: ANN002, ANN003
        with self._count:
            self.reads += 1
        if self.hold:
            self.entered.set()
            assert self.release.wait(timeout=60)
        return super().read(*args, **kwargs)


def dated_store(tmp_path: Path, days: int) -> str:
    """A store of ``days`` game dates from DAY on, players 101-103 on each."""
    frames = []
    for i in range(days):
        frame = feature_rows(DAY + dt.timedelta(days=i), PLAYERS)
        frame["game_id"] = f"00224{i:05d}"
        frames.append(frame)
    url = f"duckdb:///{tmp_path / 'dated.duckdb'}"
    connect(url).write(FEATURE_STORE_SCHEMA, pd.concat(frames, ignore_index=True))
    return url


def many_dates(first: int) -> dict:
    """Every player on MAX_DATES dates from DAY + ``first`` days, the dates interleaved."""
    return {"games": [{"player_id": p, "game_date": str(DAY + dt.timedelta(days=first + i))}
                      for p in PLAYERS for i in range(MAX_DATES)]}


def test_row_3_each_request_reads_all_its_dates_at_once_however_many_others_bring(
        registry: Registry, tmp_path: Path) -> None:
    """Eight clients at once, each asking for 31 dates none of the others asks for: 248 dates against
    a cache of 64. Today each date was its own read, and a date dropped by another request's read was
    read again; now a request is one read, whatever the others evict."""
    clients = 8
    assert clients * MAX_DATES > CACHE_DATES
    store = WatchedStore(dated_store(tmp_path, clients * MAX_DATES))
    answers: list[httpx.Response] = []
    with running(create_app(ProductionModels(SYSTEMS), store, token=TOKEN, poll_seconds=0)) as url:
        def ask(first: int) -> None:
            answers.append(httpx.post(f"{url}/predict", json=many_dates(first), timeout=60))

        threads = [threading.Thread(target=ask, args=(k * MAX_DATES,)) for k in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert [a.status_code for a in answers] == [200] * clients
    assert all(len(a.json()["predictions"]) == len(PLAYERS) * MAX_DATES and not a.json()["missing"] for a in answers)
    assert store.reads == clients


def test_row_3_reads_past_the_bound_are_a_503_with_retry_after(
        registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("serving.worker.MAX_STORE_READS", 1)
    monkeypatch.setattr("serving.worker.MAX_STORE_QUEUE", 0)
    store = WatchedStore(dated_store(tmp_path, 2), hold=True)
    first: list[httpx.Response] = []
    with running(create_app(ProductionModels(SYSTEMS), store, token=TOKEN, poll_seconds=0)) as url:
        reading = threading.Thread(target=lambda: first.append(httpx.post(f"{url}/predict", json=games(101),
                                                                          timeout=60)))
        reading.start()
        assert store.entered.wait(timeout=60)  # the one read allowed is running, and held there
        refused = httpx.post(f"{url}/predict", json=games(102, day=DAY + dt.timedelta(days=1)), timeout=30)
        explicit = httpx.post(f"{url}/predict", json={"rows": [dict.fromkeys(FEATURE_NAMES, 1.0)]}, timeout=30)
        health = httpx.get(f"{url}/health", timeout=30)
        store.release.set()
        reading.join(timeout=60)
        later = httpx.post(f"{url}/predict", json=games(102, day=DAY + dt.timedelta(days=1)), timeout=30)
    assert refused.status_code == 503 and refused.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert refused.json()["detail"] == ("1 feature-store reads run and 0 wait, the most this worker takes; "
                                        f"retry in {RETRY_AFTER_SECONDS} s")
    assert explicit.status_code == 200 and health.status_code == 200  # what needs no read is not held up
    assert first[0].status_code == 200 and later.status_code == 200


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("workers", "stop", "exit_code"),
                         [("1", signal.SIGTERM, 0), ("2", signal.SIGTERM, 0), ("2", signal.SIGINT, 130)])
def test_row_3_a_stop_signal_ends_serve_with_a_request_in_flight(registry: Registry, store: Warehouse,
                                                                  tmp_path: Path, workers: str, stop: signal.Signals,
                                                                  exit_code: int) -> None:
    """``cli.py serve`` stopped as a supervisor stops it (SIGTERM to its process alone, exit 0) or as
    Ctrl+C does (SIGINT, exit 130 as an interrupted command) while a client is midway through sending a
    /predict body. Today it waited for that client for ever with one process, and with ``--workers 2``
    died at once leaving its worker processes serving the port."""
    port = free_port()
    env = {**os.environ, "WAREHOUSE_URL": store.url, "WORKER_TOKEN": TOKEN}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        serve = subprocess.Popen([sys.executable, "cli.py", "serve", "--port", str(port), "--workers", workers,
                                  "--poll", "3600"], cwd=settings.REPO_ROOT, env=env, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert serve.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"serve did not answer in 60 s: {log.read_text()[-3000:]}"
            time.sleep(0.2)  # bounded by the deadline: the server is starting, there is nothing to wait on
        slow = socket.create_connection(("127.0.0.1", port), timeout=30)
        slow.sendall(b"POST /predict HTTP/1.1\r\nHost: worker\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n")
        assert slow.recv(100).startswith(b"HTTP/1.1 100")  # the worker is reading this request's body
        slow.sendall(b'{"games": [')
        serve.send_signal(stop)
        assert serve.wait(timeout=15) == exit_code, log.read_text()[-3000:]
        with pytest.raises(httpx.ConnectError):  # no worker process left behind on the port
            httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        slow.close()
    finally:
        if serve.poll() is None or workers != "1":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(serve.pid, signal.SIGKILL)
        serve.wait(timeout=30)
