"""Reading box-score and line files: parsing, name matching, and errors a user can act on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import write_csv
from warehouse.ingest import InputError, read_box_scores, read_lines
from warehouse.names import normalize_player_name


def test_shipped_rows_parse_to_the_table_schema(box_2024_25: pd.DataFrame) -> None:
    row = box_2024_25[(box_2024_25.player_id == 1629655) & (box_2024_25.game_id == "0022400110")].iloc[0]
    assert row.player_name == "Daniel Gafford"
    assert row.game_date == dt.date(2024, 10, 28)
    assert (row.team, row.opponent, bool(row.is_home), row.points, row.minutes) == ("DAL", "UTA", True, 9, 20)
    assert box_2024_25.game_id.str.len().eq(10).all() and box_2024_25.game_id.str.startswith("00").all()
    assert len(box_2024_25) == 26306


def test_matchup_printed_from_the_other_side_is_read_correctly(box_2024_25: pd.DataFrame) -> None:
    # the file prints "MIA @ WAS" on Bilal Coulibaly's (WAS) row: WAS was at home against MIA
    row = box_2024_25[(box_2024_25.player_name == "Bilal Coulibaly") & (box_2024_25.game_id == "0022400147")]
    assert (row.opponent.item(), bool(row.is_home.item())) == ("MIA", True)
    # every game has exactly one home team and one away team
    per_game = box_2024_25.groupby(["game_id", "team"]).is_home.first().groupby("game_id").sum()
    assert per_game.eq(1).all()


def test_missing_column_names_file_and_column(tmp_path: Path, box_csv_lines: list[str]) -> None:
    lines = [line.replace("PTS,", "POINTS,", 1) if i == 0 else line for i, line in enumerate(box_csv_lines)]
    path = write_csv(tmp_path / "bad.csv", lines)
    with pytest.raises(InputError, match=r"bad\.csv: missing column\(s\) PTS"):
        read_box_scores(path)


def test_text_in_points_names_file_row_column_and_value(tmp_path: Path, box_csv_lines: list[str]) -> None:
    header = box_csv_lines[0].strip().split(",")
    cells = box_csv_lines[5].split(",")
    cells[header.index("PTS")] = "DNP"
    lines = [*box_csv_lines[:5], ",".join(cells), *box_csv_lines[6:]]
    with pytest.raises(InputError, match=r"bad\.csv row 6: PTS is 'DNP', expected an integer"):
        read_box_scores(write_csv(tmp_path / "bad.csv", lines))


def test_duplicate_player_game_names_both_places(tmp_path: Path, box_csv_lines: list[str]) -> None:
    path = write_csv(tmp_path / "dup.csv", [*box_csv_lines, box_csv_lines[3]])
    with pytest.raises(InputError, match=r"duplicate player-game: .*dup\.csv row 4 and .*dup\.csv row 402"):
        read_box_scores(path)


def test_no_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no CSV or CSV.gz file found"):
        read_box_scores(tmp_path / "nothing-*.csv")


@pytest.mark.parametrize(("printed", "expected"), [
    ("Luka Dončić", "luka doncic"), ("Jaren Jackson Jr.", "jaren jackson"), ("Nicolas Claxton", "nic claxton"),
    ("De'Aaron Fox", "deaaron fox"), ("Kelly Oubre Jr", "kelly oubre"), ("Robert Williams III", "robert williams"),
])
def test_player_names_normalise(printed: str, expected: str) -> None:
    assert normalize_player_name(printed) == expected


def test_lines_match_players_on_the_us_game_date(box_2024_25: pd.DataFrame, lines_2024_25: pd.DataFrame) -> None:
    lebron = lines_2024_25[(lines_2024_25.player_id == 2544) & (lines_2024_25.game_date == dt.date(2024, 10, 22))
                           & (lines_2024_25.market == "points")]
    # tip-off 02:00 UTC on the 23rd is the evening of the 22nd in the US
    assert set(lebron.bookmaker) == {"PrizePicks", "Underdog"}
    assert lebron.line.iloc[0] == 24.5 and lebron.opponent.iloc[0] == "MIN"
    assert not lines_2024_25.duplicated(["game_date", "player_id", "market", "bookmaker"]).any()
    assert set(lines_2024_25.market) == {"points", "rebounds", "assists"}  # the shipped markets, each ingested


def test_unmatched_line_names_are_reported(tmp_path: Path, box_2024_25: pd.DataFrame) -> None:
    path = tmp_path / "lines.csv"
    path.write_text(
        "player,market,bookmaker,side,line,price,home_team,away_team,game_id,commence_time\n"
        "Nobody Atall,player_points,PrizePicks,Over,10.5,-137,Boston Celtics,New York Knicks,x,"
        "2024-10-22T23:30:00Z\n"
        "Jayson Tatum,player_points,PrizePicks,Over,27.5,-137,Boston Celtics,New York Knicks,x,"
        "2024-10-22T23:30:00Z\n")
    result = read_lines(path, box_2024_25)
    assert result.unmatched == ["Nobody Atall (2024-10-22)"]
    assert result.lines.player_name.tolist() == ["Jayson Tatum"] and result.lines.team.item() == "BOS"
