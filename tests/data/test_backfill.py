"""The backfill a user runs: counts on the real data, reruns, a kill half way, and bad files."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import settings
from contracts import BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA
from features.backfill import INPUT_STEPS, backfill, month_chunks
from features.definitions import FEATURE_NAMES, FEATURE_STORE_SCHEMA
from tests.conftest import SEASON_2024_25, write_csv
from warehouse import Warehouse, connect
from warehouse.ingest import InputError


def store(warehouse: Warehouse) -> pd.DataFrame:
    return warehouse.read(FEATURE_STORE_SCHEMA)


def test_full_backfill_has_one_row_per_player_game(warehouse: Warehouse) -> None:
    summary = backfill(warehouse, settings.BOX_SCORES_DEFAULT, settings.LINES_DEFAULT,
                       dt.date(2021, 10, 19), dt.date(2025, 4, 13), progress=False)
    rows = store(warehouse)
    assert summary.rows == len(rows) == 104_641
    assert summary.dates == rows.game_date.nunique() == 652
    assert not rows.duplicated(["player_id", "game_id"]).any()
    assert [c for c in rows.columns if c in FEATURE_NAMES] == list(FEATURE_NAMES)
    assert rows.game_date.min() == dt.date(2021, 10, 19) and rows.game_date.max() == dt.date(2025, 4, 13)
    # history before the range feeds the first night's features: few debuts on opening night
    assert rows[rows.game_date == dt.date(2021, 10, 19)].points_avg_last_10.notna().mean() > 0.9
    assert rows.vegas_points_line.notna().sum() == 6_145


def test_rerun_leaves_exactly_the_same_rows(warehouse: Warehouse, two_months_csv: Path) -> None:
    backfill(warehouse, two_months_csv, None, progress=False)
    first = store(warehouse)
    backfill(warehouse, two_months_csv, None, progress=False)
    pd.testing.assert_frame_equal(store(warehouse), first)
    assert warehouse.count(BOX_SCORES_SCHEMA) == len(first) == len(pd.read_csv(two_months_csv)) == 6_382


def test_rebuilding_part_of_the_range_keeps_the_rest(warehouse: Warehouse, two_months_csv: Path) -> None:
    backfill(warehouse, two_months_csv, None, progress=False)
    whole = store(warehouse)
    backfill(warehouse, two_months_csv, None, dt.date(2024, 11, 10), dt.date(2024, 11, 12), progress=False)
    pd.testing.assert_frame_equal(store(warehouse), whole)


def test_malformed_file_stops_and_leaves_the_warehouse_unchanged(
        warehouse: Warehouse, two_months_csv: Path, tmp_path: Path, box_csv_lines: list[str]) -> None:
    backfill(warehouse, two_months_csv, None, progress=False)
    before = {s.name: warehouse.read(s) for s in (BOX_SCORES_SCHEMA, FEATURE_STORE_SCHEMA)}
    header = box_csv_lines[0].strip().split(",")
    cells = box_csv_lines[9].split(",")
    cells[header.index("PTS")] = "twelve"
    bad = write_csv(tmp_path / "bad.csv", [*box_csv_lines[:9], ",".join(cells), *box_csv_lines[10:]])
    with pytest.raises(InputError, match=r"bad\.csv row 10: PTS is 'twelve'"):
        backfill(warehouse, bad, None, progress=False)
    for schema in (BOX_SCORES_SCHEMA, FEATURE_STORE_SCHEMA):
        pd.testing.assert_frame_equal(warehouse.read(schema), before[schema.name])


def test_start_after_end_is_refused_before_any_work(warehouse: Warehouse, two_months_csv: Path) -> None:
    with pytest.raises(InputError, match="start_date 2024-11-30 is after end_date 2024-11-01"):
        backfill(warehouse, two_months_csv, None, dt.date(2024, 11, 30), dt.date(2024, 11, 1), progress=False)
    assert warehouse.count(BOX_SCORES_SCHEMA) == 0


def test_months_are_the_units_of_commit() -> None:
    assert month_chunks(dt.date(2024, 10, 22), dt.date(2024, 12, 5)) == [
        (dt.date(2024, 10, 22), dt.date(2024, 10, 31)), (dt.date(2024, 11, 1), dt.date(2024, 11, 30)),
        (dt.date(2024, 12, 1), dt.date(2024, 12, 5))]


def _cli(url: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "WAREHOUSE_URL": url}
    return subprocess.Popen([sys.executable, "cli.py", "backfill", "--box-scores", str(SEASON_2024_25),
                             *args], cwd=settings.REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_killed_backfill_finishes_on_rerun_with_the_same_result(small_store: str, tmp_path: Path) -> None:
    reference_url = small_store  # the same season and lines, backfilled once without a stop
    url = f"duckdb:///{tmp_path / 'killed.duckdb'}"

    proc = _cli(url)
    seen = b""
    two_months = f"| {len(INPUT_STEPS) + 2}/".encode()  # the bar's steps: reading inputs, features, then months
    while two_months not in seen:  # the progress bar says two months are committed: kill it there
        chunk = os.read(proc.stderr.fileno(), 4096)
        assert chunk, f"backfill ended before the kill point: {seen[-500:]!r}"
        seen += chunk
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    partial = connect(url).count(FEATURE_STORE_SCHEMA)
    assert 0 < partial < 26_306

    rerun = _cli(url)
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0 and b"26306 player-games" in out
    pd.testing.assert_frame_equal(store(connect(url)), store(connect(reference_url)))
    pd.testing.assert_frame_equal(connect(url).read(PROP_LINES_SCHEMA), connect(reference_url).read(PROP_LINES_SCHEMA))


def test_cli_reports_a_bad_date_in_one_sentence(tmp_path: Path) -> None:
    proc = _cli(f"duckdb:///{tmp_path / 'w.duckdb'}", "--start-date", "2024-13-01")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.decode().strip() == "backfill: start_date is '2024-13-01', expected a date YYYY-MM-DD"
