"""The coordinator's HTTP service, and ``serve``: the worker and the coordinator on one machine.

``POST /start`` predicts a game date and ``POST /backfill`` rebuilds feature-store dates; both are
jobs, accepted at once (202) with a job id, their progress and result at ``GET /jobs/{id}``. A
backfill announces each date it completes on the event bus, which starts that date's prediction
(the event trigger, ``serving/events.py``).

Every request has a bounded cost, since the coordinator shares its event loop with the worker: the
bearer token is checked and the body's size bounded before the body is read; every field is
checked before any work (paths within a filesystem's limits and under the data root
``DATA_ROOT``, so a token holder names inputs, not any path on the server; dates within the
league's seasons and one season ahead); one rebuild runs at a time, and a second is refused with
409 naming the running one; at most ``MAX_PENDING_PREDICTIONS`` predictions wait or run, then 429 (a
4xx: the client is asked to slow down, the server has not failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import multiprocessing
import os
import re
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

import settings
from contracts import season_window
from features.backfill import backfill
from features.slate import slate_frame
from serving import deadlines
from serving.auth import BEARER, bearer_guard
from serving.coordinator import CoordinatorError, DateRun, predict_date
from serving.docs import offline_docs
from serving.events import DateReady, EventBus, bus_from_url
from serving.openapi import AUTH, INVALID, NOT_JSON, TOO_LARGE, Problem, problem
from serving.worker import SHUTDOWN_SECONDS, Siblings, create_app, validation_errors
from warehouse import Warehouse, WarehouseError, connect
from warehouse.ingest import InputError, InputTooLarge, confined_sources

MAX_JOBS = 500  # jobs kept for GET /jobs: the oldest finished ones are forgotten first
MAX_INPUT_BYTES = 256 * 2**20  # the files one /backfill may read, all together, a gzip file as it inflates
MAX_BODY_BYTES = 2**20  # a slate of every game of a date with its players listed takes a few KiB
MAX_RUNNING_PREDICTIONS = 2  # predictions run at once; the others wait their turn, queued
MAX_PENDING_PREDICTIONS = 32  # predictions queued or running; /start past it is a 429
RETRY_AFTER_SECONDS = 5
PATH_MAX, NAME_MAX = 4096, 255  # Linux's limits on a path and on one of its components, in bytes
SLATE_SIDES = 30  # 15 games a date at most, each listed from one side or both
ROSTER_LIMIT = 30
ACTIVE = ("queued", "running")

JobStatus = Literal["queued", "running", "done", "partial", "failed"]
# Requests are validated strictly (a 1 is not true, "5" is not a player id), as their schema states
# them; a date is the one thing JSON carries as text, and only as YYYY-MM-DD.
STRICT = ConfigDict(extra="forbid", strict=True)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: object) -> object:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise PydanticCustomError("date_type", "expected a date as YYYY-MM-DD")


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]


def _not_after_window(day: dt.date) -> dt.date:
    last = season_window(dt.date.today())[1]
    if day > last:
        raise PydanticCustomError("date_too_late", "after {last}, the end of the season after this one",
                                  {"last": str(last)})
    return day


def _not_before_window(day: dt.date) -> dt.date:
    if day < season_window(dt.date.today())[0]:
        raise PydanticCustomError("date_too_early", "before the league's first season (1946-47)")
    return day


class SlateGame(BaseModel):
    model_config = STRICT
    team: str = Field(pattern=r"^[A-Z]{2,3}$", description="tricode, e.g. BOS")
    opponent: str = Field(pattern=r"^[A-Z]{2,3}$")
    is_home: bool
    players: list[PositiveInt] | None = Field(default=None, min_length=1, max_length=ROSTER_LIMIT,
                                              json_schema_extra={"uniqueItems": True},
                                              description="NBA person ids; default: the team's recent roster")

    @model_validator(mode="after")
    def _two_teams(self) -> SlateGame:
        if self.team == self.opponent:
            raise PydanticCustomError("same_team", "team and opponent are both {team}", {"team": self.team})
        if self.players is not None and len(set(self.players)) < len(self.players):
            raise PydanticCustomError("duplicate_player", "players of {team} list a player twice", {"team": self.team})
        return self


class StartRequest(BaseModel):
    model_config = STRICT
    game_date: IsoDate = Field(description="within the league's seasons and one season ahead")
    slate: list[SlateGame] | None = Field(default=None, max_length=SLATE_SIDES,
                                          description="games not yet in the store")

    @field_validator("game_date")
    @classmethod
    def _sane_date(cls, value: dt.date) -> dt.date:
        return _not_before_window(_not_after_window(value))

    @model_validator(mode="after")
    def _one_game_per_team(self) -> StartRequest:
        opponents: dict[str, str] = {}
        for game in self.slate or []:
            for team, opponent in ((game.team, game.opponent), (game.opponent, game.team)):
                if opponents.setdefault(team, opponent) != opponent:
                    raise PydanticCustomError("team_plays_twice", "slate: {team} plays both {a} and {b} on {day}",
                                              {"team": team, "a": opponents[team], "b": opponent,
                                               "day": str(self.game_date)})
        return self


class BackfillRequest(BaseModel):
    model_config = STRICT
    start_date: IsoDate = Field(description="a range reaching past the league's seasons and one season ahead is "
                                            "clipped to them; one wholly outside is refused")
    end_date: IsoDate
    box_scores: str = Field(default="", max_length=PATH_MAX, description="file, folder or glob under the data root")
    lines: str = Field(default="", max_length=PATH_MAX, description='the same, or "none"')

    @field_validator("start_date")
    @classmethod
    def _starts_in_window(cls, value: dt.date) -> dt.date:
        return _not_after_window(value)

    @field_validator("end_date")
    @classmethod
    def _ends_in_window(cls, value: dt.date, info: ValidationInfo) -> dt.date:
        start = info.data.get("start_date")
        if start is not None and start > value:
            raise PydanticCustomError("date_order", "before start_date {start}", {"start": str(start)})
        return _not_before_window(value)

    @field_validator("box_scores", "lines")
    @classmethod
    def _a_path_the_filesystem_takes(cls, value: str) -> str:
        """Checked here, since the operating system refuses such a path with an error the
        request would not otherwise name."""
        if "\x00" in value:
            raise PydanticCustomError("path_nul", "a path cannot hold a NUL character")
        longest = max((len(part.encode()) for part in value.split("/")), default=0)
        if longest > NAME_MAX:
            raise PydanticCustomError("path_component", "a name of {n} bytes; at most {limit} per file or folder name",
                                      {"n": longest, "limit": NAME_MAX})
        if len(value.encode()) > PATH_MAX:
            raise PydanticCustomError("path_length", "a path of {n} bytes; at most {limit}",
                                      {"n": len(value.encode()), "limit": PATH_MAX})
        return value

    def clipped(self) -> tuple[dt.date, dt.date]:
        first, last = season_window(dt.date.today())
        return max(self.start_date, first), min(self.end_date, last)


class Health(BaseModel):
    status: Literal["ok"]
    worker: str = Field(description="the worker this coordinator predicts through")


class PredictionJob(BaseModel):
    kind: Literal["predict"]
    job: str
    status: JobStatus
    game_date: dt.date
    source: str = Field(description='"coordinator" (POST /start) or "event" (a backfilled date)')
    summary: str | None = None
    written: int | None = Field(default=None, description="predictions written")
    failed_batches: list[str] | None = None


class BackfillJob(BaseModel):
    kind: Literal["backfill"]
    job: str
    status: JobStatus
    start_date: dt.date = Field(description="the range rebuilt, clipped to the league's seasons and one ahead")
    end_date: dt.date
    dates_total: int | None = Field(default=None, description="game dates to rebuild, once the features are built")
    dates_rebuilt: list[dt.date] = Field(description="game dates committed so far, each announced on the event bus")
    summary: str | None = None
    rows: int | None = Field(default=None, description="feature rows rebuilt")


class RebuildBusy(Problem):
    job: str = Field(description="the rebuild that is running")


Job = Annotated[PredictionJob | BackfillJob, Field(discriminator="kind")]


class Saturated(RuntimeError):
    """As many predictions are queued or running as the coordinator takes."""


class RebuildRunning(RuntimeError):
    def __init__(self, job: str) -> None:
        super().__init__(f"a rebuild is running as job {job}: follow it at GET /jobs/{job}, then retry")
        self.job = job


class Jobs:
    """Prediction and rebuild runs started over HTTP or by events, one thread each, the last
    ``MAX_JOBS`` kept for ``GET /jobs`` (a coordinator that runs for months must not keep every job
    it ever ran). At most ``MAX_RUNNING_PREDICTIONS`` predictions run at once and one rebuild."""

    def __init__(self, worker_url: str, warehouse: Warehouse) -> None:
        self.worker_url, self.warehouse = worker_url, warehouse
        self.state: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._predicting = threading.Semaphore(MAX_RUNNING_PREDICTIONS)
        self._rebuild: str | None = None

    def _register(self, state: dict[str, Any]) -> str:
        """A new job's id; the caller holds the lock."""
        job = uuid.uuid4().hex[:12]
        self.state[job] = {"job": job, **state}
        finished = [old for old, known in self.state.items() if known["status"] not in ACTIVE]
        for old in finished[:max(0, len(self.state) - MAX_JOBS)]:
            del self.state[old]
            self.threads.pop(old, None)
        return job

    def _update(self, job: str, **fields: Any) -> None:
        with self._lock:
            self.state[job].update(fields)

    def _launch(self, job: str, name: str, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except (CoordinatorError, InputError, WarehouseError) as exc:
                self._update(job, status="failed", summary=str(exc))
            except Exception as exc:  # a job must end in a state a caller can read, whatever failed
                self._update(job, status="failed", summary=f"{exc.__class__.__name__}: {exc}")

        self.threads[job] = threading.Thread(target=run, name=name, daemon=True)
        self.threads[job].start()

    def start(self, game_date: dt.date, slate: pd.DataFrame | None = None, source: str = "coordinator") -> str:
        """Queue a prediction of ``game_date``. An event's is never refused: the bus hands over one
        date at a time and waits for it, and a refusal would lose the date."""
        with self._lock:
            pending = sum(s["kind"] == "predict" and s["status"] in ACTIVE for s in self.state.values())
            if source != "event" and pending >= MAX_PENDING_PREDICTIONS:
                raise Saturated(f"{pending} predictions are queued or running, the most this coordinator takes; "
                                f"retry in {RETRY_AFTER_SECONDS} s")
            job = self._register({"kind": "predict", "game_date": str(game_date), "status": "queued",
                                  "source": source})

        def work() -> None:
            with self._predicting:
                self._update(job, status="running")
                result: DateRun = predict_date(game_date, self.worker_url, self.warehouse, slate, source=source)
                self._update(job, status="done" if result.ok else "partial", summary=result.render(),
                             written=result.written, failed_batches=result.failed_batches)

        self._launch(job, f"predict-{game_date}", work)
        return job

    def start_backfill(self, box_scores: list[Path] | Path, lines: list[Path] | Path | None, start: dt.date,
                       end: dt.date, publish: Callable[[dt.date], None] | None, root: Path) -> str:
        """Rebuild [start, end] unless a rebuild runs (:class:`RebuildRunning`): two would rewrite the
        same months in turns and double the work of both. A file the run cannot use fails the job
        with the sentence naming it, relative to the data ``root``, as the request named it."""
        with self._lock:
            if self._rebuild is not None and self.state.get(self._rebuild, {}).get("status") in ACTIVE:
                raise RebuildRunning(self._rebuild)
            job = self._register({"kind": "backfill", "status": "running", "start_date": str(start),
                                  "end_date": str(end), "dates_total": None, "dates_rebuilt": []})
            self._rebuild = job

        def completed(day: dt.date) -> None:
            day = pd.Timestamp(day).date()
            with self._lock:
                self.state[job]["dates_rebuilt"].append(str(day))
            if publish is not None:
                publish(day)

        def work() -> None:
            try:
                summary = backfill(self.warehouse, box_scores, lines, start, end, progress=False,
                                   on_date_complete=completed,
                                   on_dates_planned=lambda dates: self._update(job, dates_total=len(dates)))
            except InputError as exc:
                raise InputError(str(exc).replace(f"{root}{os.sep}", "")) from None
            self._update(job, status="done", summary=summary.render(), rows=summary.rows)

        self._launch(job, "backfill", work)
        return job

    def snapshot(self, job: str) -> dict[str, Any] | None:
        """The job's state as it is now, copied, so an answer never reads a list while a run appends to it."""
        with self._lock:
            state = self.state.get(job)
            return None if state is None else {k: list(v) if isinstance(v, list) else v for k, v in state.items()}

    def run_for_event(self, game_date: dt.date) -> None:
        """An event's prediction runs to the end before the bus takes the next event; a failure
        raises, so Pub/Sub redelivers the message instead of losing the date."""
        state = self.wait(self.start(game_date, source="event"))
        if state["status"] != "done":
            raise CoordinatorError(f"predictions for {game_date} ended {state['status']}: {state.get('summary')}")

    def wait(self, job: str, timeout: float | None = None) -> dict[str, Any]:
        thread = self.threads.get(job)
        if thread is not None:
            thread.join(timeout)
        return self.snapshot(job) or {"job": job, "status": "forgotten", "summary": f"more than {MAX_JOBS} later jobs"}


def _sources(field: str, value: str, default: Path | None, root: Path) -> list[Path] | Path | None:
    """The files a backfill field names, each checked by its ``stat`` alone (nothing is opened)."""
    if not value:
        return default
    try:
        return confined_sources(field, value, root, MAX_INPUT_BYTES)
    except OSError as exc:
        raise InputError(f"{field}: {value[:120]!r} cannot be looked up under the data root: {exc.strerror}") from None


def token_first(check: Callable[[str | None], None]) -> type[APIRoute]:
    """A route class whose requests are refused on their ``Authorization`` header alone, before
    FastAPI reads and parses the body (its dependencies run only after that): a client without the
    token cannot make the coordinator receive megabytes, nor stall the worker sharing its event loop."""

    class TokenFirst(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            read_and_handle = super().get_route_handler()

            async def handle(request: Request) -> Response:
                check(request.headers.get("authorization"))
                return await read_and_handle(request)

            return handle

    return TokenFirst


DESCRIPTION = f"""Predicts game dates through the worker and rebuilds the feature store.

`POST /start` and `POST /backfill` are jobs: accepted at once (202) with a job id, followed at
`GET /jobs/{{id}}`. One rebuild runs at a time: a second `POST /backfill` is refused with 409, naming
the running job; retry once it has ended. At most {MAX_PENDING_PREDICTIONS} predictions wait or run:
past that `POST /start` answers 429 with `Retry-After`. Both need `Authorization: Bearer <WORKER_TOKEN>`,
checked before the body is read; a body over {MAX_BODY_BYTES // 1024} KiB is refused unread (413)."""


def create_coordinator_app(worker_url: str, warehouse: Warehouse | None = None, token: str | None = None,
                           bus: EventBus | None = None) -> FastAPI:
    warehouse = warehouse or connect()
    token = token if token is not None else settings.worker_token()
    jobs = Jobs(worker_url, warehouse)
    if bus is not None:
        bus.subscribe(lambda event: jobs.run_for_event(event.game_date))
    app = FastAPI(title="NBA points prediction coordinator", description=DESCRIPTION, max_body_size=MAX_BODY_BYTES)
    app.state.jobs = jobs

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_errors(list(exc.errors())), status_code=422)

    guarded = APIRouter(route_class=token_first(bearer_guard(token, "coordinator")), dependencies=[Security(BEARER)],
                        responses={**NOT_JSON, **AUTH, **TOO_LARGE, **INVALID})

    @app.get("/health")
    def health() -> Health:
        return Health(status="ok", worker=settings.public_text(worker_url))

    @guarded.post("/start", status_code=202, response_model=PredictionJob,
                  responses={429: problem("as many predictions are queued or running as the coordinator takes")})
    def start(request: StartRequest) -> dict[str, Any]:
        slate = slate_frame(request.game_date, [g.model_dump() for g in request.slate]) if request.slate else None
        try:
            job = jobs.start(request.game_date, slate)
        except Saturated as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
        return jobs.snapshot(job)

    @app.get("/jobs/{job}", response_model=Job, responses={404: problem("no such job, or one forgotten since")})
    def job_state(job: str) -> dict[str, Any]:
        state = jobs.snapshot(job)
        if state is None:
            raise HTTPException(404, f"no job {job[:40]!r}")
        # an open answer: a failure's text without password or path
        if "summary" in state:
            state["summary"] = settings.public_text(state["summary"])
        if "failed_batches" in state:
            state["failed_batches"] = [settings.public_text(batch) for batch in state["failed_batches"]]
        return state

    @guarded.post("/backfill", status_code=202, response_model=BackfillJob,
                  responses={409: {"model": RebuildBusy, "description": "a rebuild is running; retry once it ends"},
                             413: {**TOO_LARGE[413], **problem(
                                 f"the body is over the limit (text), or the files it names hold over "
                                 f"{MAX_INPUT_BYTES // 2**20} MiB, a gzip file counted decompressed (a problem)")}})
    def start_backfill(request: BackfillRequest) -> Any:
        root = settings.data_root()
        try:
            box_scores = _sources("box_scores", request.box_scores, settings.BOX_SCORES_DEFAULT, root)
            lines = None if request.lines == "none" else _sources("lines", request.lines, settings.LINES_DEFAULT, root)
            job = jobs.start_backfill(box_scores, lines, *request.clipped(),
                                      (lambda day: bus.publish(DateReady(day))) if bus is not None else None, root)
        except InputError as exc:
            raise HTTPException(413 if isinstance(exc, InputTooLarge) else 422, str(exc)) from None
        except RebuildRunning as exc:
            return JSONResponse({"detail": str(exc), "job": exc.job}, status_code=409)
        return jobs.snapshot(job)

    app.include_router(guarded)
    offline_docs(app)
    return app


def _worker_process(host: str, port: int, poll_seconds: float, wake: Event, asked: Event) -> None:
    """One of ``serve``'s worker processes: its own production models, registry poll and feature
    cache, listening on the shared port (the kernel spreads connections over the processes)."""
    app = create_app(warehouse=connect(), poll_seconds=poll_seconds, siblings=Siblings(wake, asked.set))
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    uvicorn.Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=SHUTDOWN_SECONDS,
                                  http=deadlines.HTTP)).run(sockets=[listener])


class _Server(uvicorn.Server):
    """A server that leaves SIGINT and SIGTERM to ``serve``: uvicorn's own handler stops only the
    server that installed it last, then raises the signal again, which ends this process before it
    has stopped its worker processes (they would keep serving the port, orphaned)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(host: str = "127.0.0.1", port: int = 8080, poll_seconds: float = 30.0, event_bus: str = "inprocess",
          workers: int = 1) -> signal.Signals | None:
    """The worker on ``port`` and the coordinator on ``port + 1``. One worker shares this process
    and its event loop with the coordinator; ``workers`` > 1 runs that many worker processes on the
    port (SO_REUSEPORT), each answering with its own GIL. A ``POST /reload`` that reaches one of
    them is passed on to all within half a second; a worker process that exits ends the service,
    as the one process's exit does. SIGTERM or SIGINT stops every server and worker process, the
    requests in flight given ``SHUTDOWN_SECONDS`` to finish; returns the signal that stopped it (None
    when a worker process's exit ended it), so that the command can exit as an interrupted one does."""
    if workers < 1:
        raise ValueError(f"serve: workers is {workers}; give 1 or more processes")
    warehouse = connect()
    bus = bus_from_url(event_bus)
    coordinator = create_coordinator_app(f"http://{host}:{port}", warehouse, bus=bus)
    servers = [_Server(uvicorn.Config(coordinator, host=host, port=port + 1, log_level="info",
                                      timeout_graceful_shutdown=SHUTDOWN_SECONDS, http=deadlines.HTTP))]
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no DuckDB or MLflow state forked
    asked, wakes = spawn.Event(), [spawn.Event() for _ in range(workers if workers > 1 else 0)]
    processes = [spawn.Process(target=_worker_process, args=(host, port, poll_seconds, wake, asked),
                               name=f"worker-{i}", daemon=True) for i, wake in enumerate(wakes)]
    if not processes:
        worker = create_app(warehouse=warehouse, poll_seconds=poll_seconds)
        servers.append(_Server(uvicorn.Config(worker, host=host, port=port, log_level="info",
                                              timeout_graceful_shutdown=SHUTDOWN_SECONDS, http=deadlines.HTTP)))

    received: list[signal.Signals] = []

    def stop(sig: signal.Signals) -> None:
        received.append(sig)
        for server in servers:
            if server.should_exit and sig == signal.SIGINT:
                server.force_exit = True  # a second Ctrl+C: stop without waiting for the requests in flight
            server.should_exit = True

    async def watch() -> None:
        """Relay a reload to every worker process; end the service when one of them has exited."""
        while not servers[0].should_exit:
            if await asyncio.to_thread(asked.wait, 0.5):
                asked.clear()
                for wake in wakes:
                    wake.set()
            ended = [p for p in processes if p.exitcode is not None]
            if ended and not servers[0].should_exit:
                for server in servers:
                    server.should_exit = True
                raise SystemExit(f"serve: worker process {ended[0].name} exited with {ended[0].exitcode}")

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop, sig)
        for process in processes:
            process.start()
        await asyncio.gather(*(s.serve() for s in servers), *([watch()] if processes else []))

    try:
        # the event loop uvicorn would pick itself (uvloop where installed), as each worker process's has
        with asyncio.Runner(loop_factory=servers[0].config.get_loop_factory()) as runner:
            runner.run(run())
    finally:
        for process in processes:
            process.terminate()  # SIGTERM: each stops as this process does
        for process in processes:
            process.join(timeout=SHUTDOWN_SECONDS + 5)
            if process.exitcode is None:
                process.kill()
                process.join()
        if bus is not None:
            bus.close()
    return received[0] if received else None
