"""The worker a daily run predicts through: one already running, or one started for the run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

import settings
from live.daily import Worker
from warehouse import Warehouse


@contextmanager
def worker_for(warehouse: Warehouse, url: str = "") -> Iterator[Worker]:
    """A running worker at ``url`` (reloaded over ``POST /reload`` with ``WORKER_TOKEN``), or a worker
    in this process on a loopback port for the length of the block (reloaded directly)."""
    if url:
        def reload() -> None:
            token = settings.worker_token()
            response = httpx.post(f"{url.rstrip('/')}/reload", timeout=60.0,
                                  headers={"Authorization": f"Bearer {token}"} if token else {})
            response.raise_for_status()

        yield Worker(url, reload)
        return
    from serving.local import running
    from serving.worker import create_app

    app = create_app(warehouse=warehouse, token="", poll_seconds=0)
    with running(app) as local_url:
        yield Worker(local_url, lambda: (app.state.models.refresh(), app.state.cache.clear()))
