"""Box-score files, line drop folders, The Odds API (at the client boundary) and the out-list files."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import httpx
import pandas as pd
import pytest

import settings
from sources.base import SourceError
from sources.files import FileResults
from sources.injuries import OutListFolder
from sources.lines import DropFolderLines, OddsApiLines
from tests.conftest import SEASON_2024_25
from warehouse import ingest

DAY = dt.date(2025, 1, 10)


def test_file_results_filter_by_date_and_read_the_files_once(monkeypatch: pytest.MonkeyPatch,
                                                             box_2024_25: pd.DataFrame) -> None:
    reads = []
    monkeypatch.setattr("sources.files.read_box_scores", lambda source: reads.append(source) or box_2024_25)
    source = FileResults(SEASON_2024_25)
    for day in pd.date_range("2025-01-01", "2025-01-31").date:
        box, schedule = source.box_scores(day, day), source.schedule(day, day)
        assert set(box["game_date"]) <= {day} and set(schedule["game_id"]) == set(box["game_id"])
    assert reads == [SEASON_2024_25]
    schedule = source.schedule(DAY, DAY)
    assert len(schedule) == 7
    assert schedule.loc[schedule.game_id == "0022400528", ["home_team", "away_team"]].values.tolist() == [
        ["BOS", "SAC"]]
    # the home team comes from either side's rows: a game with one side missing is still scheduled
    one_side = FileResults(SEASON_2024_25)
    monkeypatch.setattr("sources.files.read_box_scores",
                        lambda source: box_2024_25[~((box_2024_25.game_id == "0022400528") & box_2024_25.is_home)])
    pd.testing.assert_frame_equal(one_side.schedule(DAY, DAY), schedule)


def test_drop_folder_gives_each_day_the_lines_a_backfill_stores(box_2024_25: pd.DataFrame,
                                                                 lines_2024_25: pd.DataFrame) -> None:
    source = DropFolderLines(settings.LINES_DEFAULT)
    # 12-31's lines are all in the snapshot named 01_01_2025; 01-05 is split over two snapshots
    for day in (dt.date(2024, 10, 22), dt.date(2024, 12, 31), dt.date(2025, 1, 5), DAY):
        expected = lines_2024_25[lines_2024_25.game_date == day].reset_index(drop=True)
        got = source.lines(day, box_2024_25)
        assert len(got) > 40
        pd.testing.assert_frame_equal(got, expected)
    assert source.lines(dt.date(2025, 3, 1), box_2024_25).empty  # no snapshot that day


def _odds_api(requests: list[httpx.Request], status: int = 200) -> httpx.MockTransport:
    """The Odds API v4 in its real shape: the day's events, then per event the player_points outcomes."""
    event = {"id": "e1", "sport_key": "basketball_nba", "sport_title": "NBA", "commence_time": "2025-01-11T00:40:00Z",
             "home_team": "Boston Celtics", "away_team": "Sacramento Kings"}

    def outcome(side: str, player: str, point: float, price: int) -> dict:
        return {"name": side, "description": player, "price": price, "point": point}

    odds = {**event, "bookmakers": [
        {"key": "draftkings", "title": "DraftKings", "last_update": "2025-01-10T22:00:00Z", "markets": [
            {"key": "player_points", "last_update": "2025-01-10T22:00:00Z", "outcomes": [
                outcome("Over", "Jayson Tatum", 27.5, -115), outcome("Under", "Jayson Tatum", 27.5, -105),
                outcome("Over", "De'Aaron Fox", 24.5, -110), outcome("Under", "De'Aaron Fox", 24.5, -110),
                outcome("Over", "Nobody Atall", 3.5, -110)]}]},
        {"key": "fanduel", "title": "FanDuel", "last_update": "2025-01-10T22:00:00Z", "markets": [
            {"key": "player_points", "last_update": "2025-01-10T22:00:00Z", "outcomes": [
                outcome("Over", "Jayson Tatum", 28.5, -120), outcome("Under", "Jayson Tatum", 28.5, -102)]}]}]}

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if status != 200:
            return httpx.Response(status, json={"message": "API key is not valid", "error_code": "INVALID_KEY"})
        if request.url.path == "/v4/sports/basketball_nba/events":
            return httpx.Response(200, json=[event])
        assert request.url.path == "/v4/sports/basketball_nba/events/e1/odds"
        return httpx.Response(200, content=json.dumps(odds))

    return httpx.MockTransport(handler)


def test_odds_api_lines_are_matched_to_players(box_2024_25: pd.DataFrame) -> None:
    sent: list[httpx.Request] = []
    source = OddsApiLines(api_key="k-123", transport=_odds_api(sent))
    got = source.lines(DAY, box_2024_25)
    shown = ["player_name", "bookmaker", "line", "over_price", "under_price", "team", "opponent"]
    assert got[shown].values.tolist() == [
        ["De'Aaron Fox", "DraftKings", 24.5, -110, -110, "SAC", "BOS"],
        ["Jayson Tatum", "DraftKings", 27.5, -115, -105, "BOS", "SAC"],
        ["Jayson Tatum", "FanDuel", 28.5, -120, -102, "BOS", "SAC"]]
    assert set(got["game_date"]) == {DAY} and source.unmatched == ["Nobody Atall (2025-01-10)"]
    events, odds = sent
    # the US calendar day 2025-01-10, asked for in UTC
    assert dict(events.url.params) == {"apiKey": "k-123", "commenceTimeFrom": "2025-01-10T05:00:00Z",
                                       "commenceTimeTo": "2025-01-11T05:00:00Z"}
    # every declared market is asked for, by The Odds API's market keys
    assert odds.url.params["markets"].split(",") == ["player_points", "player_rebounds", "player_assists",
                                                     "player_threes", "player_points_rebounds_assists"]
    assert odds.url.params["oddsFormat"] == "american"


def test_odds_api_errors_name_the_source_and_never_the_key(monkeypatch: pytest.MonkeyPatch,
                                                           box_2024_25: pd.DataFrame) -> None:
    monkeypatch.delenv("ODDS_API_KEY", raising=False)
    with pytest.raises(SourceError, match="^odds_api: ODDS_API_KEY is not set"):
        OddsApiLines()
    monkeypatch.setenv("ODDS_API_KEY", "secret-key")
    refused = r"^odds_api: events of 2025-01-10 answered HTTP 401: .*API key is not valid"
    with pytest.raises(SourceError, match=refused) as raised:
        OddsApiLines(transport=_odds_api([], status=401)).lines(DAY, box_2024_25)
    assert "secret-key" not in str(raised.value)

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    waits: list[float] = []
    with pytest.raises(SourceError, match=r"^odds_api: events of 2025-01-10 failed after 3 attempt\(s\), the last "
                                          r"timed out after 10.0 s$"):
        OddsApiLines(transport=httpx.MockTransport(hang), sleep=waits.append).lines(DAY, box_2024_25)
    assert waits == [1.0, 2.0]


def _flaky(answers: list[int | str], then: httpx.MockTransport, sent: list[httpx.Request]) -> httpx.MockTransport:
    """The Odds API answering ``answers`` in turn (a status, or "drop": the connection lost), then ``then``."""

    def handler(request: httpx.Request) -> httpx.Response:
        if not answers:
            return then.handle_request(request)
        sent.append(request)
        answer = answers.pop(0)
        if answer == "drop":
            raise httpx.RemoteProtocolError("peer closed connection", request=request)
        return httpx.Response(int(answer), json={"message": "busy"})

    return httpx.MockTransport(handler)


def test_odds_api_retries_what_a_later_try_may_not_meet_and_nothing_else(box_2024_25: pd.DataFrame) -> None:
    # issue 16 item 7: the odds client had no retries; a 503 or a dropped connection lost the evening's lines
    sent: list[httpx.Request] = []
    waits: list[float] = []
    source = OddsApiLines(api_key="k-123", transport=_flaky([503, "drop"], _odds_api(sent), sent),
                          sleep=waits.append)
    assert len(source.lines(DAY, box_2024_25)) == 3
    assert waits == [1.0, 2.0] and len(sent) == 4  # two failed tries, then events and odds
    waits.clear()
    with pytest.raises(SourceError, match=r"^odds_api: events of 2025-01-10 failed after 2 attempt\(s\), the last "
                                          r"answered HTTP 429$"):
        OddsApiLines(api_key="k", transport=_flaky([429, 429, 429], _odds_api([]), []), attempts=2,
                     sleep=waits.append).lines(DAY, box_2024_25)
    assert waits == [1.0]
    refused: list[httpx.Request] = []
    with pytest.raises(SourceError, match="answered HTTP 401"):
        OddsApiLines(api_key="k", transport=_odds_api(refused, status=401), sleep=waits.append).lines(DAY, box_2024_25)
    assert len(refused) == 1


def test_odds_api_key_is_in_no_logged_url(box_2024_25: pd.DataFrame, caplog: pytest.LogCaptureFixture) -> None:
    # issue 15 row 5: with -v, httpx logged "HTTP Request: GET https://api.the-odds-api.com/...?apiKey=..."
    sent: list[httpx.Request] = []
    with caplog.at_level(logging.DEBUG):
        OddsApiLines(api_key="k-secret-123", transport=_flaky([503], _odds_api(sent), sent),
                     sleep=lambda _: None).lines(DAY, box_2024_25)
    logged = [r.getMessage() for r in caplog.records]
    assert any("HTTP Request: GET https://api.the-odds-api.com/v4/sports/basketball_nba/events" in m for m in logged)
    assert any("odds_api: events of 2025-01-10: answered HTTP 503; try 2 of 3" in m for m in logged)
    assert not [m for m in logged if "k-secret-123" in m or "apiKey" in m]
    assert all(r.url.params["apiKey"] == "k-secret-123" for r in sent)  # what went over the wire has it


def test_out_list_by_id_or_name(tmp_path: Path, box_2024_25: pd.DataFrame) -> None:
    (tmp_path / "2025-01-10.csv").write_text(
        "player_id,player_name,team,reason\n1628369,,BOS,ankle\n,Jaylen Brown,BOS,rest\n,Luka Doncic,,calf\n")
    got = OutListFolder(tmp_path).players_out(DAY, box_2024_25)
    assert got.fillna({"team": "-"}).values.tolist() == [
        [DAY, 1628369, "BOS", "ankle"], [DAY, 1627759, "BOS", "rest"], [DAY, 1629029, "-", "calf"]]
    assert OutListFolder(tmp_path).players_out(DAY + dt.timedelta(days=1), box_2024_25).empty  # no report
    with pytest.raises(ingest.InputError, match=r"2025-01-10\.csv row 3: player_name is 'Jaylen Brown', "
                                                r"expected a player_id \(names are matched only when given"):
        OutListFolder(tmp_path).players_out(DAY)


@pytest.mark.parametrize(("text", "error"), [
    ("player_id,reason\n1628369,ankle\nabc,knee\n", r"2025-01-10\.csv row 3: player_id is 'abc', expected an integer"),
    ("player_name,team\nJaylen Brown,BSN\n", r"2025-01-10\.csv row 2: team is 'BSN', expected an NBA team tricode"),
    ("player_name,team\nJaylen Brown,NYK\n", r"2025-01-10\.csv row 2: player_name is 'Jaylen Brown', expected one "
                                             r"player of the 2024-25 box scores on NYK \(it matches 0\)"),
    ("name,reason\nJaylen Brown,rest\n", r"2025-01-10\.csv: missing column player_id or player_name"),
])
def test_bad_out_list_names_file_row_column_and_value(tmp_path: Path, box_2024_25: pd.DataFrame, text: str,
                                                      error: str) -> None:
    (tmp_path / "2025-01-10.csv").write_text(text)
    with pytest.raises(ingest.InputError, match=error):
        OutListFolder(tmp_path).players_out(DAY, box_2024_25)
