"""Issue 15 row 13: a full disk ended a run in a traceback. Now the write the OS refused is named in one
sentence, the exit status is 2 as for any write the warehouse refuses, and the refused write stored nothing:
the rows before it stay as they were, so a rerun once space is freed finishes the work.

No small filesystem can be mounted here, so the disk fills at the real write call: DuckDB's own
connection, whose INSERT fails with the error DuckDB raises on ENOSPC, inside the real transaction.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import duckdb
import pytest

import cli
from contracts import BOX_SCORES_SCHEMA
from features.definitions import FEATURE_STORE_SCHEMA
from tests.conftest import write_csv
from warehouse import connect, duckdb_backend


class FullDisk:
    """A real DuckDB connection whose INSERT into ``table`` fails as DuckDB fails when the disk is full."""

    def __init__(self, con: duckdb.DuckDBPyConnection, table: str, path: str) -> None:
        self.con, self.table, self.path = con, table, path

    def execute(self, sql: str, *args: Any) -> Any:  # noqa: ANN401
        if sql.startswith(f'INSERT INTO "{self.table}"'):
            raise duckdb.IOException(f'IO Error: Could not write file "{self.path}.wal": No space left on device')
        return self.con.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401
        return getattr(self.con, name)


def test_issue_15_row_13_a_full_disk_names_the_table_and_stores_nothing_of_the_write(
        tmp_path: Path, box_csv_lines: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    monkeypatch.setenv("WAREHOUSE_URL", url)
    box = write_csv(tmp_path / "box.csv", box_csv_lines)
    run = ["-q", "backfill", "--box-scores", str(box), "--lines", "none"]
    assert cli.main(run) == 0
    before = connect(url).read(FEATURE_STORE_SCHEMA)
    real_connect = duckdb.connect
    monkeypatch.setattr(duckdb_backend.duckdb, "connect", lambda path, **kw: FullDisk(
        real_connect(path, **kw), FEATURE_STORE_SCHEMA.name, path))
    capsys.readouterr()
    assert cli.main(run) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"backfill: {FEATURE_STORE_SCHEMA.name}: {len(before)} row(s) could not be written to "
                          f"{url} (IO Error: Could not write file ")
    assert err.endswith(": No space left on device); the write was rolled back, nothing of it is stored\n")
    assert err.count("\n") == 1 and "Traceback" not in err
    monkeypatch.setattr(duckdb_backend.duckdb, "connect", real_connect)
    after = connect(url).read(FEATURE_STORE_SCHEMA)  # the rebuild's DELETE was rolled back with its INSERT
    assert after.equals(before) and connect(url).count(BOX_SCORES_SCHEMA) == len(box_csv_lines) - 1
    assert cli.main(run) == 0  # space freed: the rerun finishes


def test_issue_15_row_13_an_artifact_the_disk_has_no_room_for_is_one_sentence(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A write outside the warehouse (MLflow copying a model artifact, a plot) fails with the OS's own
    OSError, which names the file: the command's one sentence, exit 2."""
    model = "/srv/mlruns/1/abc/artifacts/xgboost_v1/model.ubj"

    def full(args: Any) -> int:  # noqa: ANN401
        raise OSError(errno.ENOSPC, "No space left on device", model)

    monkeypatch.setattr(cli, "cmd_held", full)
    assert cli.main(["-q", "held"]) == 2
    assert capsys.readouterr().err == (f"held: could not write {model}: No space left on device; "
                                       "free space and run it again\n")
