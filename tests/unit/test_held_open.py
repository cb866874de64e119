"""A DuckDB store held open by one process (a replay's own) answers that process as a store opened
per operation does, and is free for any other process once the block ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.unit.test_rebuild_write import NEW, SCHEMA, STORED
from warehouse.cached import CachedTables
from warehouse.duckdb_backend import DuckDBWarehouse

COUNT_FROM_ANOTHER_PROCESS = ("import sys, duckdb; con = duckdb.connect(sys.argv[1], read_only=True); "
                              "print(con.execute('SELECT count(*) FROM player_games').fetchone()[0])")


def count_from_another_process(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", COUNT_FROM_ANOTHER_PROCESS, str(path)], capture_output=True,
                          text=True, timeout=60)


def test_a_store_held_open_reads_its_own_writes_and_is_free_once_the_block_ends(tmp_path: Path) -> None:
    path = tmp_path / "replay" / "warehouse.duckdb"
    store = CachedTables(DuckDBWarehouse(f"duckdb:///{path}"))
    with store.held_open():
        store.write(SCHEMA, STORED)
        store.write(SCHEMA, NEW)
        # another object of this process on the same file (the worker's, the trainer's) shares it
        elsewhere = DuckDBWarehouse(store.url)
        pd.testing.assert_frame_equal(elsewhere.read(SCHEMA), store.read(SCHEMA))
        assert elsewhere.count(SCHEMA) == len(STORED) + 1  # NEW's first row replaced STORED's by key
        assert count_from_another_process(path).returncode != 0  # held: DuckDB's lock keeps others out
    answer = count_from_another_process(path)
    assert answer.returncode == 0, answer.stderr
    assert int(answer.stdout) == len(STORED) + 1  # everything written in the block is in the file
