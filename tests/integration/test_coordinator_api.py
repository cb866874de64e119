"""The coordinator's API (issue 18, issue 15 row 4): rebuilds are jobs, every input is refused
before any work when it cannot be used, the token and the body's size are checked before the body
is read, and every status is in the OpenAPI schema.

Both ports also go through a schema-driven fuzz: Schemathesis generates requests from each
service's own ``/openapi.json``, valid and invalid, with the token set, and checks every answer: no
5xx, no status the schema does not list, no body that breaks its schema, none slower than
``MAX_RESPONSE_SECONDS``. It reads the project's ``schemathesis.toml``, as a user's own
``schemathesis run`` does; ``API_FUZZ_EXAMPLES=100`` gives it the issue's full budget.

The worker and the coordinator run as ``serve`` runs them, on one event loop, over a throw-away
data root holding two weeks of the real 2024-25 season, and a moving-average system stands in for
the trained ones (it loads in milliseconds).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI

import settings
from features.backfill import backfill
from features.definitions import FEATURE_STORE_SCHEMA
from serving import service
from serving.events import DateReady, EventBus
from serving.local import free_port
from serving.service import MAX_BODY_BYTES, Jobs, create_coordinator_app
from serving.worker import create_app
from tests.conftest import SEASON_2024_25
from tests.integration.test_worker_hardening import GOOD, Installed
from warehouse import Warehouse, connect

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIRST, LAST = dt.date(2025, 1, 1), dt.date(2025, 1, 14)  # the box scores of the throw-away data root
WAIT = 60  # seconds any wait of these tests may last before it fails
FUZZ_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "10"))  # per operation
MAX_RESPONSE_SECONDS = 5


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two weeks of box scores and their lines, as a user's data root holds them."""
    root = tmp_path_factory.mktemp("data")
    (root / "box").mkdir()
    frame = pd.read_csv(SEASON_2024_25, dtype=str)
    frame[frame["GAME_DATE"].between(str(FIRST), str(LAST))].to_csv(root / "box" / "jan_2025.csv", index=False)
    (root / "lines").mkdir()
    for day in pd.date_range(FIRST, LAST):  # a day without lines has no file
        for snapshot in settings.LINES_DEFAULT.glob(f"{day:%m_%d_%Y}.csv.gz"):
            shutil.copy(snapshot, root / "lines")
    return root


@pytest.fixture
def defaults_in(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data root, and the default inputs of ``/backfill`` inside it (a rebuild takes a second)."""
    monkeypatch.setenv("DATA_ROOT", str(data_root))
    monkeypatch.setattr(settings, "BOX_SCORES_DEFAULT", data_root / "box")
    monkeypatch.setattr(settings, "LINES_DEFAULT", data_root / "lines")
    return data_root


@pytest.fixture(scope="module")
def built_store(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "warehouse.duckdb"
    backfill(connect(f"duckdb:///{path}"), data_root / "box", data_root / "lines", progress=False)
    return path


@pytest.fixture
def store(defaults_in: Path, built_store: Path, tmp_path: Path) -> Warehouse:
    """The data root's two weeks backfilled, in this test's own copy of the warehouse."""
    shutil.copy(built_store, tmp_path / "warehouse.duckdb")
    return connect(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")


class GatedBus:
    """An event bus whose first publish waits until the test opens the gate: a rebuild that is
    provably half way (its first date committed, the others not yet announced) while the test asks.
    It records the dates announced and delivers none (no prediction follows a date here)."""

    def __init__(self) -> None:
        self.reached, self.gate = threading.Event(), threading.Event()
        self.published: list[dt.date] = []
        self.handlers: list[Callable[[DateReady], None]] = []

    def publish(self, event: DateReady) -> None:
        self.reached.set()
        if not self.gate.wait(WAIT):
            raise TimeoutError("the test never opened the gate")
        self.published.append(event.game_date)

    def subscribe(self, handler: Callable[[DateReady], None]) -> None:
        self.handlers.append(handler)

    def close(self) -> None:
        self.gate.set()


@dataclass
class Services:
    worker: httpx.Client
    coordinator: httpx.Client
    worker_url: str
    coordinator_url: str
    jobs: Jobs

    def finished(self, job: str) -> dict:
        """The job's state over HTTP once its thread has ended (at most ``WAIT`` seconds)."""
        assert self.jobs.wait(job, WAIT)["status"] not in ("queued", "running"), f"job {job} still runs"
        return self.coordinator.get(f"/jobs/{job}").json()


@contextmanager
def serving(apps: dict[int, FastAPI]) -> Iterator[None]:
    """The apps served on their loopback ports, on one event loop in a background thread, as
    ``serve`` runs the worker and the coordinator; the block starts once every one accepts connections."""
    servers = [uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
               for port, app in apps.items()]
    started = [threading.Event() for _ in servers]
    for server, event in zip(servers, started, strict=True):
        async def startup(sockets: list | None = None, original=server.startup, event=event) -> None:
            await original(sockets)
            event.set()

        server.startup = startup  # type: ignore[method-assign]

    async def together() -> None:
        await asyncio.gather(*(s.serve() for s in servers))

    thread = threading.Thread(target=asyncio.run, args=(together(),), name="serve", daemon=True)
    thread.start()
    if not all(event.wait(WAIT) for event in started):
        raise RuntimeError(f"the servers did not start within {WAIT} s")
    try:
        yield
    finally:
        for server in servers:
            server.should_exit = True
        thread.join(timeout=WAIT)


def worker_and_coordinator(store: Warehouse, bundles: Path, bus: EventBus | None = None) -> dict[int, FastAPI]:
    """Ports are chosen here: the coordinator's worker URL must be known when it is made."""
    worker_port, coordinator_port = free_port(), free_port()
    worker = create_app(Installed(bundles, {"moving_average": GOOD}), store, token=TOKEN, poll_seconds=0)
    coordinator = create_coordinator_app(f"http://127.0.0.1:{worker_port}", store, token=TOKEN, bus=bus)
    return {worker_port: worker, coordinator_port: coordinator}


@pytest.fixture
def services(store: Warehouse, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Services]:
    """The worker (a moving-average system in production) and the coordinator on one loop; a test that
    asks for ``bus`` gets its coordinator wired to it."""
    bus = request.getfixturevalue("bus") if "bus" in request.fixturenames else None
    apps = worker_and_coordinator(store, tmp_path / "bundles", bus)
    (worker_url, worker), (coordinator_url, coordinator) = ((f"http://127.0.0.1:{p}", a) for p, a in apps.items())
    with serving(apps), httpx.Client(base_url=worker_url, timeout=WAIT) as w, \
            httpx.Client(base_url=coordinator_url, timeout=WAIT, headers=AUTH) as c:
        yield Services(w, c, worker_url, coordinator_url, coordinator.state.jobs)


@pytest.fixture
def bus() -> Iterator[GatedBus]:
    gated = GatedBus()
    yield gated
    gated.close()


# --- the reproductions of issue 18 -------------------------------------------------------------
def test_an_overlong_file_name_is_a_422_naming_the_field(services: Services) -> None:
    response = services.coordinator.post("/backfill", json={"box_scores": "", "lines": "0" * 500,
                                                            "start_date": "2000-01-01", "end_date": "2000-01-01"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "lines"] and error["msg"].startswith("lines: a name of 500 bytes; at most 255")


def test_a_rebuild_of_every_season_is_a_job_that_reports_its_dates(services: Services, store: Warehouse) -> None:
    response = services.coordinator.post("/backfill", json={"start_date": "2000-01-01", "end_date": "9989-01-01"})
    assert response.status_code == 202
    accepted = response.json()
    last = service.season_window(dt.date.today())[1]
    assert accepted["kind"] == "backfill" and accepted["status"] == "running"
    assert (accepted["start_date"], accepted["end_date"]) == ("2000-01-01", str(last))  # clipped to the window
    state = services.finished(accepted["job"])
    stored = sorted(str(d) for d in store.read(FEATURE_STORE_SCHEMA)["game_date"].unique())
    assert state["status"] == "done", state["summary"]
    assert state["dates_rebuilt"] == stored and state["dates_total"] == len(stored) == 14
    assert state["summary"].startswith(f"backfill {FIRST} .. {LAST}: 14 game dates")


# --- one rebuild at a time, and the services answer while it runs ------------------------------
def test_while_a_rebuild_runs_the_services_keep_answering(services: Services, bus: GatedBus, store: Warehouse) -> None:
    player = int(store.read(FEATURE_STORE_SCHEMA, date_range=(LAST, LAST))["player_id"].iloc[0])
    job = services.coordinator.post("/backfill", json={"start_date": str(FIRST), "end_date": str(LAST)}).json()["job"]
    assert bus.reached.wait(WAIT)  # the rebuild has committed a date and waits to announce it
    second = services.coordinator.post("/backfill", json={"start_date": str(FIRST), "end_date": str(FIRST)})
    health = services.coordinator.get("/health")
    started = services.coordinator.post("/start", json={"game_date": str(LAST)})
    predicted = services.worker.post("/predict", json={"games": [{"player_id": player, "game_date": str(LAST)}]})
    running = services.coordinator.get(f"/jobs/{job}").json()
    bus.gate.set()
    assert running["status"] == "running" and running["dates_rebuilt"] == [str(FIRST)]
    assert second.status_code == 409 and second.json()["job"] == job and f"GET /jobs/{job}" in second.json()["detail"]
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert started.status_code == 202 and started.json()["kind"] == "predict"
    assert predicted.status_code == 200 and predicted.json()["errors"] == {}
    state = services.finished(job)
    assert state["status"] == "done" and len(state["dates_rebuilt"]) == state["dates_total"] == 14
    assert bus.published == [dt.date.fromisoformat(d) for d in state["dates_rebuilt"]]  # one event per date
    again = services.coordinator.post("/backfill", json={"start_date": str(LAST), "end_date": str(LAST)})
    assert again.status_code == 202  # the next rebuild is taken once the first has ended


# --- every input checked before any work --------------------------------------------------------
@pytest.mark.parametrize(("path", "body", "loc", "message"), [
    ("/backfill", {"lines": "box/\x00.csv"}, ["body", "lines"], "lines: a path cannot hold a NUL character"),
    ("/backfill", {"box_scores": "a/" * 2100}, ["body", "box_scores"], "box_scores: String should have at most 4096"),
    ("/backfill", {"start_date": "2025-01-02", "end_date": "2025-01-01"}, ["body", "end_date"],
     "end_date: before start_date 2025-01-02"),
    ("/backfill", {"start_date": "1900-01-01", "end_date": "1900-01-02"}, ["body", "end_date"],
     "end_date: before the league's first season (1946-47)"),
    ("/backfill", {"start_date": "9000-01-01", "end_date": "9000-01-02"}, ["body", "start_date"], "start_date: after"),
    ("/start", {"game_date": "9999-12-31"}, ["body", "game_date"], "game_date: after"),
    ("/start", {"slate": [{"team": "BOS", "opponent": "BOS", "is_home": True}]}, ["body", "slate", 0],
     "slate.0: team and opponent are both BOS"),
    ("/start", {"slate": [{"team": "BOS", "opponent": "NYK", "is_home": True},
                          {"team": "MIA", "opponent": "BOS", "is_home": True}]}, ["body"],
     "body: slate: BOS plays both NYK and MIA on 2025-01-10"),
    ("/start", {"slate": [{"team": "BOS", "opponent": "NYK", "is_home": True, "players": [1, 1]}]},
     ["body", "slate", 0], "slate.0: players of BOS list a player twice"),
])
def test_an_input_that_cannot_be_used_is_a_422_naming_the_field(services: Services, path: str, body: dict,
                                                                loc: list, message: str) -> None:
    defaults = {"/backfill": {"start_date": str(FIRST), "end_date": str(LAST)}, "/start": {"game_date": "2025-01-10"}}
    response = services.coordinator.post(path, json={**defaults[path], **body})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [e["loc"] for e in errors] == [loc] and errors[0]["msg"].startswith(message), errors
    assert services.jobs.state == {}  # refused before any work: no job was started


def test_a_full_prediction_queue_is_a_429_with_retry_after(services: Services,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "MAX_PENDING_PREDICTIONS", 0)
    response = services.coordinator.post("/start", json={"game_date": "2025-01-10"})
    assert response.status_code == 429 and response.headers["retry-after"] == "5"
    assert "0 predictions are queued or running" in response.json()["detail"]


# --- issue 15 row 4: the token and the size are checked before the body is read ----------------
def answer_to_headers_alone(url: str, path: str, headers: dict[str, str], content_length: int) -> bytes:
    """What the server answers a request whose body never comes: a server that read the body
    before deciding would still be waiting when the socket's timeout ends."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
             f"Content-Length: {content_length}", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n{").encode())
        return conn.recv(4096)


@pytest.mark.parametrize(("headers", "content_length", "status"), [
    ({}, 1000, b"401"),  # no token: refused on the header, the body is never read
    ({"Authorization": "Bearer wrong"}, 200 * 2**20, b"413"),  # too large: refused on Content-Length
    (AUTH, MAX_BODY_BYTES + 1, b"413"),
])
@pytest.mark.parametrize("path", ["/backfill", "/start"])
def test_the_token_and_the_size_are_checked_before_the_body_is_read(services: Services, path: str, headers: dict,
                                                                    content_length: int, status: bytes) -> None:
    answer = answer_to_headers_alone(services.coordinator_url, path, headers, content_length)
    assert answer.split(b" ")[1] == status, answer[:200]


# --- the schema states every answer ------------------------------------------------------------
def test_every_status_is_in_the_openapi_schema(services: Services) -> None:
    coordinator = services.coordinator.get("/openapi.json").json()["paths"]
    worker = services.worker.get("/openapi.json").json()["paths"]
    statuses = {path: {method: set(op["responses"]) for method, op in ops.items()}
                for path, ops in {**{f"coordinator {p}": o for p, o in coordinator.items()},
                                  **{f"worker {p}": o for p, o in worker.items()}}.items()}
    assert statuses["coordinator /backfill"]["post"] == {"202", "400", "401", "403", "409", "413", "422"}
    assert statuses["coordinator /start"]["post"] == {"202", "400", "401", "403", "413", "422", "429"}
    assert statuses["coordinator /jobs/{job}"]["get"] == {"200", "404", "422"}
    assert statuses["worker /predict"]["post"] == {"200", "400", "413", "422", "503"}
    assert statuses["worker /reload"]["post"] >= {"200", "401", "403"}
    assert statuses["worker /health"]["get"] == {"200", "503"}



@pytest.mark.parametrize("side", ["worker",
                                  "coordinator"])
def test_generated_requests_get_documented_answers(services: Services, side: str, tmp_path: Path) -> None:
    url = services.worker_url if side == "worker" else services.coordinator_url
    run = subprocess.run(  # in tmp_path: Schemathesis keeps what it found under ./.schemathesis
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(settings.REPO_ROOT / "schemathesis.toml"),
         "--no-color", "run", f"{url}/openapi.json", "--header", f"Authorization: Bearer {TOKEN}",
         "--max-examples", str(FUZZ_EXAMPLES), "--seed", "18", "--generation-database", "none", "--workers", "1",
         "--max-response-time", str(MAX_RESPONSE_SECONDS), "--request-timeout", str(4 * MAX_RESPONSE_SECONDS)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
