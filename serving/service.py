"""The coordinator's HTTP service, and ``serve``: the worker and the coordinator on one machine.

``POST /start`` (bearer token) predicts a game date in the background; ``GET /jobs/{id}`` reports
it. ``POST /backfill`` (bearer token) rebuilds feature-store dates and, through the event bus,
starts a prediction of every date it completes (the event trigger, ``serving/events.py``).
Its files must lie under the data root (``DATA_ROOT``): a token holder names inputs, not any path
on the server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
import uuid
from typing import Any

import pandas as pd
import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

import settings
from features.backfill import backfill
from features.slate import slate_frame
from serving.auth import bearer_guard
from serving.coordinator import CoordinatorError, DateRun, predict_date
from serving.docs import offline_docs
from serving.events import DateReady, EventBus, bus_from_url
from serving.worker import create_app
from warehouse import Warehouse, WarehouseError, connect
from warehouse.ingest import InputError, confined_sources

MAX_JOBS = 500  # jobs kept for GET /jobs: the oldest finished ones are forgotten first
MAX_INPUT_BYTES = 256 * 2**20  # the files one /backfill may read, all together


class SlateGame(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: str = Field(min_length=2, max_length=3)
    opponent: str = Field(min_length=2, max_length=3)
    is_home: bool
    players: list[int] | None = None


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    game_date: dt.date
    slate: list[SlateGame] | None = Field(default=None, description="games not yet in the store")


class BackfillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start_date: dt.date
    end_date: dt.date
    box_scores: str = Field(default="", max_length=500, description="file, folder or glob under the data root")
    lines: str = Field(default="", max_length=500, description='the same, or "none"')


class Jobs:
    """Prediction runs started over HTTP or by events, one thread each, the last ``MAX_JOBS`` kept
    for ``GET /jobs`` (a coordinator that runs for months must not keep every job it ever ran)."""

    def __init__(self, worker_url: str, warehouse: Warehouse) -> None:
        self.worker_url, self.warehouse = worker_url, warehouse
        self.state: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, game_date: dt.date, slate: pd.DataFrame | None = None, source: str = "coordinator") -> str:
        job = uuid.uuid4().hex[:12]
        with self._lock:
            self.state[job] = {"job": job, "game_date": str(game_date), "status": "running", "source": source}
            finished = [old for old, state in self.state.items() if state["status"] != "running"]
            for old in finished[:max(0, len(self.state) - MAX_JOBS)]:
                del self.state[old]
                self.threads.pop(old, None)

        def run() -> None:
            try:
                result: DateRun = predict_date(game_date, self.worker_url, self.warehouse, slate, source=source)
                self.state[job].update(status="done" if result.ok else "partial", summary=result.render(),
                                       written=result.written, failed_batches=result.failed_batches)
            except CoordinatorError as exc:
                self.state[job].update(status="failed", summary=str(exc))
            except Exception as exc:  # a job must end in a state a caller can read, whatever failed
                self.state[job].update(status="failed", summary=f"{exc.__class__.__name__}: {exc}")

        self.threads[job] = threading.Thread(target=run, name=f"predict-{game_date}", daemon=True)
        self.threads[job].start()
        return job

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
        return self.state.get(job, {"job": job, "status": "forgotten", "summary": f"more than {MAX_JOBS} later jobs"})


def create_coordinator_app(worker_url: str, warehouse: Warehouse | None = None, token: str | None = None,
                           bus: EventBus | None = None) -> FastAPI:
    warehouse = warehouse or connect()
    token = token if token is not None else settings.worker_token()
    jobs = Jobs(worker_url, warehouse)
    if bus is not None:
        bus.subscribe(lambda event: jobs.run_for_event(event.game_date))
    app = FastAPI(title="NBA points prediction coordinator")
    app.state.jobs = jobs

    authorised = bearer_guard(token, "coordinator")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "worker": settings.public_text(worker_url)}

    @app.post("/start", status_code=202, dependencies=[Depends(authorised)])
    def start(request: StartRequest) -> dict[str, Any]:
        slate = slate_frame(request.game_date, [g.model_dump() for g in request.slate]) if request.slate else None
        return jobs.state[jobs.start(request.game_date, slate)]

    @app.get("/jobs/{job}")
    def job_state(job: str) -> dict[str, Any]:
        if job not in jobs.state:
            raise HTTPException(404, f"no job {job!r}")
        state = dict(jobs.state[job])  # an open answer: a failure's text without password or path
        if "summary" in state:
            state["summary"] = settings.public_text(state["summary"])
        if "failed_batches" in state:
            state["failed_batches"] = [settings.public_text(batch) for batch in state["failed_batches"]]
        return state

    @app.post("/backfill", dependencies=[Depends(authorised)])
    def run_backfill(request: BackfillRequest) -> dict[str, Any]:
        if request.start_date > request.end_date:
            raise HTTPException(422, f"start_date {request.start_date} is after end_date {request.end_date}")
        publish = (lambda day: bus.publish(DateReady(day))) if bus is not None else None
        root = settings.data_root()
        try:
            box_scores = (confined_sources("box_scores", request.box_scores, root, MAX_INPUT_BYTES)
                          if request.box_scores else settings.BOX_SCORES_DEFAULT)
            lines = None if request.lines == "none" else (
                confined_sources("lines", request.lines, root, MAX_INPUT_BYTES) if request.lines
                else settings.LINES_DEFAULT)
            summary = backfill(warehouse, box_scores, lines,
                               request.start_date, request.end_date, progress=False, on_date_complete=publish)
        except (InputError, WarehouseError) as exc:  # files named as the request named them, not by server path
            raise HTTPException(422, str(exc).replace(f"{root}{os.sep}", "")) from None
        return {"summary": summary.render(), "dates": summary.dates, "rows": summary.rows}

    offline_docs(app)
    return app


def serve(host: str = "127.0.0.1", port: int = 8080, poll_seconds: float = 30.0, event_bus: str = "inprocess") -> None:
    """The worker on ``port`` and the coordinator on ``port + 1``, in one process."""
    warehouse = connect()
    bus = bus_from_url(event_bus)
    worker = create_app(warehouse=warehouse, poll_seconds=poll_seconds)
    coordinator = create_coordinator_app(f"http://{host}:{port}", warehouse, bus=bus)
    servers = [uvicorn.Server(uvicorn.Config(app, host=host, port=p, log_level="info"))
               for app, p in ((worker, port), (coordinator, port + 1))]

    async def both() -> None:
        await asyncio.gather(*(s.serve() for s in servers))

    try:
        asyncio.run(both())
    finally:
        if bus is not None:
            bus.close()
