"""Issue 15 row 6: a results or lines file that is not UTF-8, empty, header-only or ragged ends the CLI in
one sentence naming file and line with exit 2 (not 1, the "alert or held day" code) and ``POST /backfill``
in a 422, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import cli
from contracts import BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA
from features.definitions import FEATURE_STORE_SCHEMA
from serving.service import create_coordinator_app
from tests.conftest import write_csv
from warehouse import connect

TOKEN = "test-token"


def _ragged(lines: list[str]) -> list[str]:
    """Row 3 (line 4) with one cell too many."""
    return [*lines[:3], lines[3].rstrip("\n") + ",extra\n", *lines[4:]]


def _not_utf8(path: Path, lines: list[str]) -> Path:
    path.write_bytes("".join(lines[:2]).encode() + lines[2].replace(",", ",Jos\xe9 ", 1).encode("latin-1")
                     + "".join(lines[3:]).encode())
    return path


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    monkeypatch.setenv("WAREHOUSE_URL", url)
    return url


def _nothing_written(url: str) -> bool:
    warehouse = connect(url)
    return all(warehouse.count(s) == 0 for s in (BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA, FEATURE_STORE_SCHEMA))


def test_backfill_of_a_ragged_results_file_exits_2_naming_the_line(
        tmp_path: Path, store: str, box_csv_lines: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_csv(tmp_path / "box.csv", _ragged(box_csv_lines))
    assert cli.main(["-q", "backfill", "--box-scores", str(bad), "--lines", "none"]) == 2
    width = box_csv_lines[0].count(",") + 1
    expected = f"backfill: {bad} line 4: {width + 1} cell(s), expected {width} as in the header\n"
    assert capsys.readouterr().err == expected
    assert _nothing_written(store)


def test_backfill_with_a_header_only_lines_file_exits_2_and_writes_no_box_score(
        tmp_path: Path, store: str, box_csv_lines: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    box = write_csv(tmp_path / "box.csv", box_csv_lines)
    lines = write_csv(tmp_path / "01_10_2025.csv", ["player,market,bookmaker,side,line,price,home_team,away_team,"
                                                    "game_id,commence_time\n"])
    assert cli.main(["-q", "backfill", "--box-scores", str(box), "--lines", str(lines)]) == 2
    assert capsys.readouterr().err == f"backfill: {lines}: a header line and no rows\n"
    assert _nothing_written(store)


def test_coordinator_backfill_of_a_non_utf8_file_fails_its_job_naming_it_under_the_data_root(
        tmp_path: Path, store: str, box_csv_lines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    (root / "box").mkdir(parents=True)
    monkeypatch.setenv("DATA_ROOT", str(root))
    _not_utf8(root / "box" / "latin1.csv", box_csv_lines)
    app = create_coordinator_app("http://127.0.0.1:9", connect(store), token=TOKEN)
    with TestClient(app) as client:
        answer = client.post("/backfill", headers={"Authorization": f"Bearer {TOKEN}"},
                             json={"start_date": "2024-10-22", "end_date": "2024-10-23", "box_scores": "box/latin1.csv",
                                   "lines": "none"})
        assert answer.status_code == 202  # a rebuild is a job (issue 18): the file is read there, not in the request
        state = app.state.jobs.wait(answer.json()["job"], 60)
    assert state["status"] == "failed"
    assert state["summary"] == "box/latin1.csv line 3: byte 0xe9 is not UTF-8 text; save the file as UTF-8"
    assert _nothing_written(store)
