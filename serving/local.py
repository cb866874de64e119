"""A worker started inside the current process on a free loopback port, for one-off commands
(``predict`` without ``--worker-url``) and tests: the same HTTP path as production, no setup."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from serving import deadlines
from serving.coordinator import CoordinatorError
from serving.worker import SHUTDOWN_SECONDS, create_app
from warehouse import Warehouse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 until the block ends; yields its base URL once it accepts requests."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                           timeout_graceful_shutdown=SHUTDOWN_SECONDS, http=deadlines.HTTP))
    started = threading.Event()
    original = server.startup

    async def startup(sockets: list | None = None) -> None:
        await original(sockets)
        started.set()

    server.startup = startup  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, name="local-worker", daemon=True)
    thread.start()
    if not started.wait(timeout=120) or server.should_exit:
        raise CoordinatorError("the local worker did not start within 120 s")
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def local_worker(warehouse: Warehouse) -> Iterator[str]:
    with running(create_app(warehouse=warehouse, poll_seconds=0)) as url:
        yield url
