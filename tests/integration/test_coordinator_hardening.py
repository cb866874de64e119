"""The coordinator's HTTP inputs under attack (issue 9): /backfill reads only regular files under the
data root, and the job list stays bounded."""

from __future__ import annotations

import datetime as dt
import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving import service
from serving.service import create_coordinator_app
from warehouse import connect, ingest

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OUTSIDE = "is not a file under the data root"


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    (root / "box").mkdir(parents=True)
    monkeypatch.setenv("DATA_ROOT", str(root))
    return root


@pytest.fixture
def coordinator(data_root: Path, tmp_path: Path) -> Iterator[TestClient]:
    app = create_coordinator_app("http://127.0.0.1:9", connect(f"duckdb:///{tmp_path / 'w.duckdb'}"), token=TOKEN)
    with TestClient(app) as client:
        yield client


def backfill(client: TestClient, **files: str) -> tuple[int, str]:
    response = client.post("/backfill", headers=AUTH, json={"start_date": "2025-01-10", "end_date": "2025-01-10",
                                                            **files})
    return response.status_code, response.json()["detail"]


@pytest.mark.timeout(60)  # the old server blocked forever opening a FIFO
def test_a_named_pipe_under_the_root_is_refused_without_being_opened(coordinator: TestClient, data_root: Path) -> None:
    os.mkfifo(data_root / "box" / "pipe.csv")
    assert backfill(coordinator, box_scores="box/pipe.csv") == (
        422, "box_scores: box/pipe.csv under the data root is not a regular file")
    assert backfill(coordinator, box_scores="box") == (
        422, "box_scores: box/pipe.csv under the data root is not a regular file")


def test_paths_outside_the_root_get_one_answer_whether_they_exist_or_not(
        coordinator: TestClient, data_root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("PLAYER_ID\n1\n")
    (data_root / "box" / "link.csv").symlink_to(secret)
    answers = {name: backfill(coordinator, box_scores=name) for name in
               (str(secret), str(tmp_path / "absent.csv"), "../secret.csv", "../absent.csv",
                "box/link.csv", str(tmp_path / "*.csv"))}
    assert {status for status, _ in answers.values()} == {422}
    assert all(detail.endswith(OUTSIDE) and detail.startswith("box_scores: ") for _, detail in answers.values())
    assert backfill(coordinator, lines="../secret.csv") == (422, f"lines: '../secret.csv' {OUTSIDE}")


def test_inputs_over_the_size_cap_are_refused(coordinator: TestClient, data_root: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (data_root / "box" / "big.csv").write_bytes(b"x" * 2048)
    monkeypatch.setattr(service, "MAX_INPUT_BYTES", 1024)
    status, detail = backfill(coordinator, box_scores="box/*.csv")
    assert status == 413 and detail.startswith("box_scores: 1 file(s) hold") and "limit of one request" in detail


def test_issue_15_row_11_the_size_cap_counts_a_gzip_file_as_it_inflates(
        coordinator: TestClient, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gzip bomb: 64 KiB that inflate to 64 MiB, under a 1 MiB cap. The cap counted compressed bytes,
    so the request was taken and its job inflated all of it; now the request is refused, having
    inflated no more than the cap, one bounded chunk at a time."""
    (data_root / "box" / "bomb.csv.gz").write_bytes(gzip.compress(b"0" * 64 * 2**20))
    (data_root / "box" / "small.csv.gz").write_bytes(gzip.compress(b"PLAYER_ID\n1\n"))
    monkeypatch.setattr(service, "MAX_INPUT_BYTES", 2**20)
    reads: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        stream = opened(*args, **kwargs)
        read = stream.read
        stream.read = lambda size=-1: reads.append(len(chunk := read(size))) or chunk
        return stream

    opened = gzip.open
    monkeypatch.setattr(gzip, "open", counted)
    status, detail = backfill(coordinator, box_scores="box/bomb.csv.gz")
    assert (status, detail) == (413, "box_scores: 1 file(s) hold over 1 MiB (a gzip file counted decompressed), "
                                     "the limit of one request")
    assert 2**20 < sum(reads) <= 2**20 + 1 and max(reads) <= ingest.INFLATE_CHUNK
    assert backfill(coordinator, box_scores="box/*.csv.gz")[0] == 413
    answer = coordinator.post("/backfill", headers=AUTH, json={"start_date": "2025-01-10", "end_date": "2025-01-10",
                                                               "box_scores": "box/small.csv.gz", "lines": "none"})
    assert answer.status_code == 202  # a small gzip file is taken; its job says what is wrong with it
    coordinator.app.state.jobs.wait(answer.json()["job"], timeout=60)


def test_the_job_list_keeps_the_last_jobs(coordinator: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "MAX_JOBS", 3)
    jobs = coordinator.app.state.jobs
    started = []
    for day in range(1, 8):  # nothing is stored for these dates: each job fails at once
        started.append(jobs.start(dt.date(2025, 1, day)))
        assert jobs.wait(started[-1], timeout=30)["status"] == "failed"
    assert list(jobs.state) == started[-3:] and set(jobs.threads) == set(started[-3:])
    assert coordinator.get(f"/jobs/{started[0]}").status_code == 404
    assert coordinator.get(f"/jobs/{started[-1]}").json()["game_date"] == "2025-01-07"
