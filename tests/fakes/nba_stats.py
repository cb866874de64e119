"""A fake stats.nba.com behind nba_api's own HTTP session, answering in the endpoints' real shapes.

nba_api sends every request through ``NBAStatsHTTP.get_session()``, a ``requests.Session``. The fake
is a real session with a transport adapter mounted for https://stats.nba.com/, so everything above
the socket runs for real: nba_api builds the URL, query and headers, requests applies the timeout,
and nba_api's own parsers read the answer. It serves:

- ``leaguegamelog`` (``PlayerOrTeam=P``): ``resultSets[0]`` named ``LeagueGameLog`` with the player
  log's ``headers`` and JSON-typed ``rowSet`` rows, filtered by ``Season``, ``DateFrom``, ``DateTo``;
- ``scheduleleaguev2``: ``leagueSchedule.gameDates[].games[]`` with ``gameId``, ``gameDateEst``,
  ``gameDateTimeUTC`` (an evening tip-off, after midnight UTC), ``homeTeam``/``awayTeam``
  (``teamTricode`` …), ``broadcasters`` and ``pointsLeaders``, as ScheduleLeagueV2's parser expects.

Use ``install_fake_nba_stats(monkeypatch, box_rows)`` with rows in the shipped file's columns
(``shipped_box_rows`` reads some); queue failures with ``fake.fail_next(503, "timeout")``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
import requests
from nba_api.stats.library.http import NBAStatsHTTP
from requests.adapters import BaseAdapter

import settings
from sources.files import schedule_from_box_scores
from warehouse.ingest import box_scores_from_frame

SHIPPED_2024_25 = settings.BOX_SCORES_DEFAULT / "player_logs_2024-25.csv.gz"
LEAGUE_GAME_LOG_HEADERS = (
    "SEASON_ID", "PLAYER_ID", "PLAYER_NAME", "TEAM_ID", "TEAM_ABBREVIATION", "TEAM_NAME", "GAME_ID", "GAME_DATE",
    "MATCHUP", "WL", "MIN", "FGM", "FGA", "FG_PCT", "FG3M", "FG3A", "FG3_PCT", "FTM", "FTA", "FT_PCT", "OREB",
    "DREB", "REB", "AST", "STL", "BLK", "TOV", "PF", "PTS", "PLUS_MINUS", "FANTASY_PTS", "VIDEO_AVAILABLE")
_TEXT = {"SEASON_ID", "PLAYER_NAME", "TEAM_ABBREVIATION", "TEAM_NAME", "GAME_ID", "GAME_DATE", "MATCHUP", "WL"}
_FRACTIONS = {"FG_PCT", "FG3_PCT", "FT_PCT"}


def shipped_box_rows(start: dt.date, end: dt.date) -> pd.DataFrame:
    """Rows of the shipped 2024-25 file dated start .. end, as text cells (what the endpoint served)."""
    with gzip.open(SHIPPED_2024_25, "rt") as fh:
        rows = pd.read_csv(fh, dtype=str, keep_default_na=False, na_values=[""])
    return rows[(rows["GAME_DATE"] >= str(start)) & (rows["GAME_DATE"] <= str(end))].reset_index(drop=True)


@dataclass
class RecordedRequest:
    endpoint: str
    params: dict[str, str]
    headers: dict[str, str]
    timeout: object
    at: float


@dataclass
class FakeNbaStats:
    box_rows: pd.DataFrame
    schedule: pd.DataFrame
    clock: Callable[[], float] = time.monotonic
    requests: list[RecordedRequest] = field(default_factory=list)
    _failures: list[int | str] = field(default_factory=list)

    def fail_next(self, *outcomes: int | str) -> None:
        """Answer the next requests with these HTTP statuses, or ``"timeout"`` (a read timeout), in turn."""
        self._failures.extend(outcomes)

    def answer(self, request: requests.PreparedRequest, timeout: object) -> requests.Response:
        url = urlsplit(request.url)
        endpoint = url.path.rsplit("/", 1)[-1]
        params = {key: values[0] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
        self.requests.append(RecordedRequest(endpoint, params, dict(request.headers), timeout, self.clock()))
        if self._failures:
            outcome = self._failures.pop(0)
            if outcome == "timeout":
                raise requests.exceptions.ReadTimeout(f"read timed out ({timeout})", request=request)
            return _response(request, int(outcome), "<html><body>Service Unavailable</body></html>")
        if endpoint == "leaguegamelog" and params.get("PlayerOrTeam") == "P":
            return _response(request, 200, json.dumps(self._league_game_log(params)))
        if endpoint == "scheduleleaguev2":
            return _response(request, 200, json.dumps(self._schedule(params["Season"])))
        return _response(request, 400, f"unknown endpoint or parameters {endpoint} {params}")

    def _league_game_log(self, params: dict[str, str]) -> dict:
        first, last = (dt.datetime.strptime(params[key], "%m/%d/%Y").date().isoformat()
                       for key in ("DateFrom", "DateTo"))
        rows = self.box_rows[(self.box_rows["SEASON_LABEL"] == params["Season"])
                             & (self.box_rows["GAME_DATE"] >= first) & (self.box_rows["GAME_DATE"] <= last)]
        return {"resource": "leaguegamelog", "parameters": params, "resultSets": [
            {"name": "LeagueGameLog", "headers": list(LEAGUE_GAME_LOG_HEADERS),
             "rowSet": [_json_row(row) for row in rows.to_dict("records")]}]}

    def _schedule(self, season: str) -> dict:
        games = self.schedule[self.schedule["season"] == season].sort_values(["game_date", "game_id"])
        teams = self.box_rows.drop_duplicates("TEAM_ABBREVIATION").set_index("TEAM_ABBREVIATION")
        game_dates = [{"gameDate": f"{day:%m/%d/%Y} 00:00:00",
                       "games": [_schedule_game(game, teams) for game in group.to_dict("records")]}
                      for day, group in games.groupby("game_date", sort=True)]
        return {"meta": {"version": 1, "request": "scheduleleaguev2", "time": "2025-04-14T00:00:00Z"},
                "leagueSchedule": {"seasonYear": season, "leagueId": "00", "gameDates": game_dates,
                                   "weeks": [], "broadcasterList": []}}


def _json_row(row: dict) -> list:
    """One rowSet row with the JSON types stats.nba.com uses: ids and counts as numbers, blanks as null."""
    out = []
    for name in LEAGUE_GAME_LOG_HEADERS:
        if name == "FANTASY_PTS":
            value = sum(w * int(row[k]) for k, w in (("PTS", 1), ("REB", 1.2), ("AST", 1.5), ("STL", 3),
                                                       ("BLK", 3), ("TOV", -1)))
        elif name == "VIDEO_AVAILABLE":
            value = 1
        elif pd.isna(row[name]):
            value = None
        elif name in _TEXT:
            value = row[name]
        else:
            value = float(row[name]) if name in _FRACTIONS else int(row[name])
        out.append(value)
    return out


def _schedule_game(game: dict, teams: pd.DataFrame) -> dict:
    day = pd.Timestamp(game["game_date"])
    tip_utc = day + pd.Timedelta(hours=24, minutes=30)  # 19:30 in New York is 00:30 UTC the next day

    def team(tricode: str) -> dict:
        known = tricode in teams.index
        return {"teamId": int(teams.loc[tricode, "TEAM_ID"]) if known else 0,
                "teamName": teams.loc[tricode, "TEAM_NAME"] if known else tricode, "teamCity": "",
                "teamTricode": tricode, "teamSlug": tricode.lower(), "wins": 0, "losses": 0, "score": 0,
                "seed": None}

    return {
        "gameId": game["game_id"], "gameCode": f"{day:%Y%m%d}/{game['away_team']}{game['home_team']}",
        "gameStatus": 1, "gameStatusText": "7:30 pm ET", "gameSequence": 1,
        "gameDateEst": f"{day:%Y-%m-%d}T00:00:00Z", "gameTimeEst": "1900-01-01T19:30:00Z",
        "gameDateTimeEst": f"{day:%Y-%m-%d}T19:30:00Z", "gameDateUTC": f"{day:%Y-%m-%d}T04:00:00Z",
        "gameTimeUTC": f"1900-01-01T{tip_utc:%H:%M}:00Z", "gameDateTimeUTC": f"{tip_utc:%Y-%m-%dT%H:%M}:00Z",
        "awayTeamTime": f"{day:%Y-%m-%d}T19:30:00Z", "homeTeamTime": f"{day:%Y-%m-%d}T19:30:00Z",
        "day": f"{day:%a}", "monthNum": day.month, "weekNumber": 0, "weekName": "", "ifNecessary": "false",
        "seriesGameNumber": "", "gameLabel": "", "gameSubLabel": "", "seriesText": "", "arenaName": "",
        "arenaState": "", "arenaCity": "", "postponedStatus": "N", "branchLink": "", "gameSubtype": "",
        "isNeutral": False,
        "broadcasters": {"nationalBroadcasters": [], "nationalRadioBroadcasters": [],
                         "nationalOttBroadcasters": [], "homeTvBroadcasters": [], "homeRadioBroadcasters": [],
                         "homeOttBroadcasters": [], "awayTvBroadcasters": [], "awayRadioBroadcasters": [],
                         "awayOttBroadcasters": []},
        "homeTeam": team(game["home_team"]), "awayTeam": team(game["away_team"]), "pointsLeaders": [],
    }


def _response(request: requests.PreparedRequest, status: int, body: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.encoding = "utf-8"
    response.headers["Content-Type"] = "application/json" if status == 200 else "text/html"
    response.url = request.url
    response.request = request
    return response


class _Transport(BaseAdapter):
    def __init__(self, fake: FakeNbaStats) -> None:
        super().__init__()
        self.fake = fake

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):  # noqa: ANN001
        return self.fake.answer(request, timeout)

    def close(self) -> None:
        """Nothing to release: no socket was opened."""


def install_fake_nba_stats(monkeypatch: pytest.MonkeyPatch, box_rows: pd.DataFrame,
                           schedule: pd.DataFrame | None = None,
                           clock: Callable[[], float] = time.monotonic) -> FakeNbaStats:
    """Serve ``box_rows`` (shipped file columns, text cells) and ``schedule`` (``SCHEDULE_SCHEMA`` rows;
    default: the games of ``box_rows``) to nba_api until the test ends."""
    if schedule is None:
        schedule = schedule_from_box_scores(box_scores_from_frame(box_rows, "fake nba_stats rows"))
    fake = FakeNbaStats(box_rows, schedule, clock)
    session = requests.Session()
    session.mount("https://stats.nba.com/", _Transport(fake))
    monkeypatch.setattr(NBAStatsHTTP, "_session", session)
    return fake
