"""Results and the schedule from stats.nba.com through the ``nba_api`` client.

stats.nba.com throttles and drops clients that hammer it or do not look like a browser, so every
request carries the headers the site expects, waits ``delay`` seconds after the previous one, and
a failed one (timeout, connection error, HTTP 429 or 5xx, a body that is not JSON) is retried after
``backoff`` seconds, doubled each time, up to ``attempts`` tries (tenacity, through
``sources.base.retried``). The figures come from ``settings.nba_stats_politeness()``; the clock and the
sleep are injectable so tests measure waits without waiting.

Box scores come from LeagueGameLog (players, regular season), the endpoint the shipped files were
built with, and go through the same checks as a file (``warehouse.ingest.box_scores_from_frame``).
The schedule comes from ScheduleLeagueV2, regular-season games only (ids ``002…``), as box scores are.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import pandas as pd
import requests
from nba_api.stats.endpoints import LeagueGameLog, ScheduleLeagueV2
from nba_api.stats.endpoints._base import Endpoint
from nba_api.stats.library.http import STATS_HEADERS, NBAStatsHTTP, NBAStatsResponse

import settings
from contracts import BOX_SCORES_SCHEMA, SCHEDULE_SCHEMA
from features.slate import season_of
from sources.base import RETRY_STATUSES, ResultsSource, SourceError, TransientError, retried
from warehouse.base import _empty, _typed
from warehouse.ingest import box_scores_from_frame

REGULAR_SEASON = "Regular Season"
REGULAR_SEASON_GAME = "002"  # the prefix of regular-season game ids (001 preseason, 004 playoffs, 006 Cup final)
# nba_api's own browser-like headers, less Brotli: requests decodes "br" only when the brotli package
# is installed, and an undecodable body would read as garbage.
HEADERS = {**STATS_HEADERS, "Accept-Encoding": "gzip, deflate"}


@dataclass(frozen=True)
class Politeness:
    """How hard the client may press stats.nba.com (seconds, except ``attempts``)."""

    timeout: float = 30.0
    attempts: int = 4
    backoff: float = 2.0
    delay: float = 1.0
    headers: dict[str, str] = field(default_factory=lambda: dict(HEADERS))

    @classmethod
    def from_settings(cls) -> Politeness:
        """The defaults, overridden by any ``NBA_STATS_*`` variable set (a bad one is named)."""
        given = settings.nba_stats_politeness()
        values: dict[str, float | int] = {}
        for item in fields(cls):
            if item.name not in given:
                continue
            text, variable = given[item.name], settings.NBA_STATS_VARIABLES[item.name]
            kind = int if item.name == "attempts" else float
            try:
                value = kind(text)
                valid = value >= (1 if kind is int else 0)
            except ValueError:
                valid = False
            if not valid:
                expected = "a whole number of tries, at least 1" if kind is int else "a number of seconds, 0 or more"
                raise SourceError(f"nba_stats: {variable} is {text!r}, expected {expected}")
            values[item.name] = value
        return cls(**values)


class NbaStatsResults(ResultsSource):
    """Box scores and the schedule from stats.nba.com, one request per season a date range touches."""

    name = "nba_stats"

    def __init__(self, politeness: Politeness | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.politeness = politeness or Politeness.from_settings()
        self._clock = clock
        self._sleep = sleep
        self._last_request: float | None = None

    def box_scores(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        parts = []
        for season, first, last in _season_ranges(start, end):
            endpoint = LeagueGameLog(player_or_team_abbreviation="P", season=season,
                                     season_type_all_star=REGULAR_SEASON, date_from_nullable=f"{first:%m/%d/%Y}",
                                     date_to_nullable=f"{last:%m/%d/%Y}", get_request=False)
            self._send(endpoint, f"{first}..{last}")
            rows = endpoint.league_game_log.get_data_frame()
            if len(rows):
                # the endpoint does not say which season a row belongs to in the shipped label's form
                parts.append(box_scores_from_frame(rows.assign(SEASON_LABEL=season),
                                                   f"nba_stats leaguegamelog {first}..{last}"))
        return pd.concat(parts, ignore_index=True) if parts else _empty(BOX_SCORES_SCHEMA)

    def schedule(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        parts = []
        for season, first, last in _season_ranges(start, end):
            endpoint = ScheduleLeagueV2(season=season, get_request=False)
            self._send(endpoint, f"season {season}")
            games = endpoint.season_games.get_data_frame()
            day = pd.to_datetime(games["gameDateEst"].str[:10], format="%Y-%m-%d").dt.date  # the US date
            keep = games["gameId"].str.startswith(REGULAR_SEASON_GAME) & (day >= first) & (day <= last)
            parts.append(pd.DataFrame({
                "game_date": day[keep], "game_id": games.loc[keep, "gameId"], "season": season,
                "home_team": games.loc[keep, "homeTeam_teamTricode"],
                "away_team": games.loc[keep, "awayTeam_teamTricode"]}))
        schedule = pd.concat(parts, ignore_index=True) if parts else _empty(SCHEDULE_SCHEMA)
        return _typed(SCHEDULE_SCHEMA, schedule.sort_values(["game_date", "game_id"], ignore_index=True))

    def _send(self, endpoint: Endpoint, what: str) -> None:
        """Ask stats.nba.com for ``endpoint``'s parameters politely, then let nba_api parse the answer."""
        policy = self.politeness
        try:
            response = retried(lambda: self._ask(endpoint, what), f"nba_stats: {endpoint.endpoint} for {what}",
                               policy.attempts, policy.backoff, self._sleep)
        except TransientError as exc:
            raise SourceError(f"nba_stats: {endpoint.endpoint} for {what} failed after {policy.attempts} "
                              f"attempt(s), the last with {exc}") from None
        endpoint.nba_response = response
        try:
            endpoint.load_response()
        except (KeyError, IndexError, TypeError) as exc:
            raise SourceError(f"nba_stats: {endpoint.endpoint} for {what} answered in an unexpected shape "
                              f"({type(exc).__name__} {exc})") from None

    def _ask(self, endpoint: Endpoint, what: str) -> NBAStatsResponse:
        """One request, after the delay since the previous one: the answer, a ``TransientError`` for
        what a later try may not meet (timeout, connection error, HTTP 429 or 5xx, a body that is not
        JSON), a ``SourceError`` for any other status."""
        self._wait_turn()
        try:
            response = NBAStatsHTTP().send_api_request(
                endpoint=endpoint.endpoint, parameters=endpoint.parameters, headers=self.politeness.headers,
                timeout=self.politeness.timeout)
        except requests.RequestException as exc:
            raise TransientError(type(exc).__name__) from None
        status = response._status_code  # nba_api keeps the status but offers no getter
        if status in RETRY_STATUSES or (status == 200 and not response.valid_json()):
            raise TransientError(f"HTTP {status}" + ("" if status != 200 else " with a body that is not JSON"))
        if status != 200:
            raise SourceError(f"nba_stats: {endpoint.endpoint} for {what} answered HTTP {status}")
        return response

    def _wait_turn(self) -> None:
        """At least ``delay`` seconds between the starts of two requests."""
        if self._last_request is not None:
            wait = self._last_request + self.politeness.delay - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_request = self._clock()


def _season_ranges(start: dt.date, end: dt.date) -> list[tuple[str, dt.date, dt.date]]:
    """[start, end] cut where the season changes: the endpoints answer one season at a time."""
    if start > end:
        raise SourceError(f"nba_stats: start date {start} is after end date {end}")
    days = pd.Series(pd.date_range(start, end).date)
    seasons = days.map(season_of)
    return [(season, group.min(), group.max()) for season, group in days.groupby(seasons, sort=True)]
