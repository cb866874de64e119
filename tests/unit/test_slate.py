"""Slates read from a CSV (cli.py predict --slate) and from a request (POST /start) are one frame."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from features.slate import read_slate_csv, slate_frame
from warehouse.ingest import InputError

DAY = dt.date(2025, 11, 1)


def test_a_csv_and_a_request_give_the_same_slate(tmp_path: Path) -> None:
    path = tmp_path / "slate.csv"
    path.write_text("game_date,team,opponent,is_home,players\n2025-11-01,BOS,NYK,true,1628369;1627759\n"
                    "2025-11-01,LAL,GSW,false,\n")
    from_csv = read_slate_csv(path)
    assert list(from_csv["players"]) == [[1628369, 1627759], None]  # empty: the team's recent roster
    from_request = slate_frame(DAY, [
        {"team": "BOS", "opponent": "NYK", "is_home": True, "players": [1628369, 1627759]},
        {"team": "LAL", "opponent": "GSW", "is_home": False, "players": None}])
    columns = ["game_date", "team", "opponent", "is_home", "players"]
    pd.testing.assert_frame_equal(from_csv[columns].assign(game_date=pd.to_datetime(from_csv["game_date"]).dt.date),
                                  from_request[columns])


def test_a_bad_player_id_names_the_file_row_and_value(tmp_path: Path) -> None:
    path = tmp_path / "slate.csv"
    path.write_text("game_date,team,opponent,is_home,players\n2025-11-01,BOS,NYK,true,1628369\n"
                    "2025-11-01,LAL,GSW,false,23;LeBron\n")
    with pytest.raises(InputError) as error:
        read_slate_csv(path)
    assert str(error.value) == (f"slate {str(path)!r} row 3: players is '23;LeBron', expected player ids "
                                "separated by ';'")


def test_a_missing_file_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^slate '.*nope\.csv' cannot be read: .*No such file"):
        read_slate_csv(tmp_path / "nope.csv")
