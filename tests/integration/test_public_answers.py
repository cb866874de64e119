"""Issue 15 row 5 on the servers: the open answers (``GET /``, ``/health``, 503s, ``/jobs``) carry no
password of a tracking URI and no path on the server."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serving.local import free_port
from serving.service import create_coordinator_app
from tests.integration.test_worker_hardening import (  # noqa: F401 (fixtures)
    AUTH,
    games,
    registry,
    store,
    template,
    worker,
)
from warehouse import Warehouse

PASSWORD = "tr4cking-pw"


def test_a_tracking_uri_password_is_in_no_open_answer(worker: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://ops:{PASSWORD}@127.0.0.1:{free_port()}")  # nothing listens
    reloaded = worker.post("/reload", headers=AUTH).json()
    assert reloaded["changes"]["registry"].startswith("tracking server unreachable")
    index, health = worker.get("/"), worker.get("/health")
    assert "tracking server unreachable" in index.json()["errors"]["registry"]
    assert health.json()["status"] == "degraded"
    for answer in (index, health):
        assert PASSWORD not in answer.text


def test_a_broken_warehouse_file_is_named_without_its_path(worker: TestClient, store: Warehouse) -> None:  # noqa: F811
    # before: the 503 and /health showed the warehouse's absolute path (and so the server's layout)
    worker.app.state.cache.clear()
    store.path.write_bytes(b"not a duckdb file" * 100)
    refused = worker.post("/predict", json=games(101))
    health = worker.get("/health")
    assert refused.status_code == 503 and "the feature store cannot be read now" in refused.json()["detail"]
    assert "store.duckdb" in refused.json()["detail"] and "store.duckdb" in health.json()["errors"]["warehouse"]
    folder = str(store.path.parent)
    for answer in (refused, health, worker.get("/")):
        assert folder not in answer.text and "/tmp/" not in answer.text


def test_the_coordinator_shows_the_worker_url_without_credentials(store: Warehouse) -> None:  # noqa: F811
    app = create_coordinator_app(f"http://ops:{PASSWORD}@127.0.0.1:9", store, token="t")
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok", "worker": "http://ops:***@127.0.0.1:9"}
