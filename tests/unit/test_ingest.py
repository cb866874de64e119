"""Reading box-score and line files: parsing, name matching, and errors a user can act on."""

from __future__ import annotations

import datetime as dt
import gzip
import re
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


def test_lines_of_every_declared_market_are_kept_and_an_undeclared_one_is_counted(
        tmp_path: Path, box_2024_25: pd.DataFrame) -> None:
    path = tmp_path / "lines.csv"
    row = "Jayson Tatum,{market},PrizePicks,Over,{line},-137,Boston Celtics,New York Knicks,x,2024-10-22T23:30:00Z\n"
    path.write_text("player,market,bookmaker,side,line,price,home_team,away_team,game_id,commence_time\n"
                    + row.format(market="player_points", line=27.5) + row.format(market="player_rebounds", line=8.5)
                    + row.format(market="player_steals", line=1.5) + row.format(market="player_steals", line=0.5))
    result = read_lines(path, box_2024_25)
    assert result.lines[["market", "line"]].values.tolist() == [["points", 27.5], ["rebounds", 8.5]]
    assert result.unknown_markets == {"player_steals": 2}  # reported, never dropped silently


# --- issue 15 row 6: files that are not CSV text a parser can read whole --------------------------
def _broken(kind: str, lines: list[str]) -> bytes:
    """``lines`` (a header and rows) spoiled the way an operator's file can be."""
    width = lines[0].count(",") + 1
    if kind == "not_utf8":  # a spreadsheet saved as Latin-1: "é" is one byte 0xe9
        return "".join(lines[:6]).encode() + lines[6].replace(",", ",Jos\xe9 ", 1).encode("latin-1") + \
            "".join(lines[7:]).encode()
    if kind == "empty":
        return b""
    if kind == "header_only":
        return lines[0].encode()
    if kind == "cell_too_many":
        return "".join([*lines[:9], lines[9].rstrip("\n") + ",extra\n", *lines[10:]]).encode()
    if kind == "cell_too_few":
        assert lines[11].count(",") + 1 == width
        return "".join([*lines[:11], lines[11].rsplit(",", 1)[0] + "\n", *lines[12:]]).encode()
    if kind == "blank_line_inside":
        return "".join([*lines[:4], "\n", *lines[4:]]).encode()
    raise AssertionError(kind)


UNREADABLE = {  # kind -> the message after the file name, for a header of n columns
    "not_utf8": " line 7: byte 0xe9 is not UTF-8 text; save the file as UTF-8",
    "empty": ": the file is empty, expected a header line and rows",
    "header_only": ": a header line and no rows",
    "cell_too_many": " line 10: {more} cell(s), expected {n} as in the header",
    "cell_too_few": " line 12: {fewer} cell(s), expected {n} as in the header",
    "blank_line_inside": " line 5: 0 cell(s), expected {n} as in the header",
}


def _refusal(path: Path, kind: str, header: str) -> str:
    n = header.count(",") + 1
    return "^" + re.escape(f"{path}{UNREADABLE[kind].format(n=n, more=n + 1, fewer=n - 1)}") + "$"


@pytest.mark.parametrize("kind", UNREADABLE)
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_an_unreadable_box_score_file_is_one_sentence_naming_file_and_line(
        tmp_path: Path, box_csv_lines: list[str], kind: str, suffix: str) -> None:
    data = _broken(kind, box_csv_lines)
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    with pytest.raises(InputError, match=_refusal(path, kind, box_csv_lines[0])):
        read_box_scores(path)


@pytest.mark.parametrize("kind", ["not_utf8", "header_only", "cell_too_many", "cell_too_few"])
def test_an_unreadable_lines_file_is_named_among_good_ones(tmp_path: Path, lines_copy: Path,
                                                           box_2024_25: pd.DataFrame, kind: str) -> None:
    with gzip.open(lines_copy / "01_10_2025.csv.gz", "rt") as fh:
        lines = fh.readlines()[:40]
    (lines_copy / "01_11_2025.csv").write_bytes(_broken(kind, lines))
    with pytest.raises(InputError, match=_refusal(lines_copy / "01_11_2025.csv", kind, lines[0])):
        read_lines(lines_copy, box_2024_25)


def test_a_bom_and_a_trailing_blank_line_are_read_as_the_plain_file(tmp_path: Path, box_csv_lines: list[str]) -> None:
    plain = read_box_scores(write_csv(tmp_path / "plain.csv", box_csv_lines))
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + "".join([*box_csv_lines, "\n", "\n"]).encode())
    pd.testing.assert_frame_equal(read_box_scores(tmp_path / "excel.csv"), plain)
