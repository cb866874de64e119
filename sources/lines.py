"""Every market's lines for one game date: a drop folder of daily-fantasy files, or a sportsbook odds API.

Both go through ``warehouse.ingest``'s checks and name matching, so a line reaches ``prop_lines`` the
same way whichever source posted it. Names a source prints that match no player are kept on the
source object (``unmatched``) for the daily summary.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd

import settings
from contracts import PROP_LINES_SCHEMA
from markets import MARKETS
from sources.base import RETRY_STATUSES, LinesSource, SourceError, TransientError, retried
from warehouse.base import _empty
from warehouse.ingest import LinesResult, _snapshot_order, expand_sources, lines_from_frame, read_lines

NEW_YORK = "America/New_York"
# what the odds API is asked for: every declared market's keys (rows of other keys are reported by ingest)
ODDS_MARKETS = ",".join(key for m in MARKETS.values() for key in m.line_keys)


class DropFolderLines(LinesSource):
    """Files in the daily-fantasy schema dropped in a folder, one snapshot a day named ``MM_DD_YYYY``.

    A snapshot taken on day D+1 (UTC) still holds the evening games of day D, so the lines of D are
    read from the snapshots of D and D+1 (plus any file without a date in its name); the latest
    snapshot wins, as in a backfill. Live, the D+1 file does not exist yet, and D's own is used.
    """

    name = "lines_folder"

    def __init__(self, folder: str | Path = settings.LINES_DEFAULT) -> None:
        self.folder = Path(folder)
        self.unmatched: list[str] = []
        self.unknown_markets: dict[str, int] = {}

    def lines(self, game_date: dt.date, history: pd.DataFrame) -> pd.DataFrame:
        wanted = {str(game_date), str(game_date + dt.timedelta(days=1)), ""}
        files = [path for path in expand_sources(self.folder) if _snapshot_order(path)[0] in wanted]
        return _of_date(read_lines(files, history) if files else None, game_date, self)


class OddsApiLines(LinesSource):
    """Player prop lines from The Odds API (v4): the day's NBA events, then each event's markets of
    every enabled market (``markets.MARKETS``' line keys), every bookmaker's Over and Under.

    One request lists the events and one more per event fetches its odds. A request that times out,
    loses its connection or is answered 429 or 5xx is tried again (``attempts`` tries in all, waits from
    ``backoff`` seconds doubling: each try may cost API credits, so the bound is small); any other
    refusal is reported at once. The key is added to each request below the client
    (``_ApiKeyTransport``), so no URL that httpx logs (``-v``) or an error shows carries it.
    """

    name = "odds_api"
    base_url = "https://api.the-odds-api.com"
    sport = "basketball_nba"

    def __init__(self, api_key: str | None = None, regions: str = "us", timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None, attempts: int = 3, backoff: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        key = api_key or settings.odds_api_key()
        if not key:
            raise SourceError("odds_api: ODDS_API_KEY is not set; it is needed to ask The Odds API for lines")
        self.regions, self.attempts, self.backoff, self._sleep = regions, attempts, backoff, sleep
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout,
                                   transport=_ApiKeyTransport(key, transport or httpx.HTTPTransport()))
        self.unmatched: list[str] = []
        self.unknown_markets: dict[str, int] = {}

    def lines(self, game_date: dt.date, history: pd.DataFrame) -> pd.DataFrame:
        # the events that start on game_date in the US (Eastern) calendar, asked for in UTC
        day = pd.Timestamp(game_date).tz_localize(NEW_YORK)
        window = {"commenceTimeFrom": _utc(day), "commenceTimeTo": _utc(day + pd.Timedelta(days=1))}
        events = self._get(f"/v4/sports/{self.sport}/events", window, f"events of {game_date}")
        rows = []
        for event in events:
            odds = self._get(f"/v4/sports/{self.sport}/events/{event['id']}/odds",
                             {"regions": self.regions, "markets": ODDS_MARKETS, "oddsFormat": "american"},
                             f"odds of event {event['id']}")
            rows += _outcome_rows(odds)
        result = lines_from_frame(pd.DataFrame(rows), f"odds_api {game_date}", history) if rows else None
        return _of_date(result, game_date, self)

    def _get(self, path: str, params: dict[str, str], what: str) -> list | dict:
        try:
            return retried(lambda: self._try(path, params, what), f"odds_api: {what}", self.attempts, self.backoff,
                           self._sleep)
        except TransientError as exc:
            raise SourceError(f"odds_api: {what} failed after {self.attempts} attempt(s), the last {exc}") from None

    def _try(self, path: str, params: dict[str, str], what: str) -> list | dict:
        try:
            response = self.client.get(path, params=params)
        except httpx.TimeoutException:
            raise TransientError(f"timed out after {self.client.timeout.read} s") from None
        except httpx.TransportError as exc:
            raise TransientError(f"failed: {type(exc).__name__}") from None
        if response.status_code in RETRY_STATUSES:
            raise TransientError(f"answered HTTP {response.status_code}")
        if response.status_code != 200:
            message = response.text[:200]  # the API explains itself briefly
            raise SourceError(f"odds_api: {what} answered HTTP {response.status_code}: {message}")
        return response.json()


class _ApiKeyTransport(httpx.BaseTransport):
    """Sends each request with ``apiKey`` added to its query (The Odds API takes the key nowhere else).
    httpx logs, and puts in its errors, the request the client built, not the one a transport sends:
    adding the key here keeps it out of both."""

    def __init__(self, key: str, inner: httpx.BaseTransport) -> None:
        self._key, self._inner = key, inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        keyed = httpx.Request(request.method, request.url.copy_merge_params({"apiKey": self._key}),
                              headers=request.headers, stream=request.stream, extensions=request.extensions)
        return self._inner.handle_request(keyed)

    def close(self) -> None:
        self._inner.close()


def _outcome_rows(odds: dict) -> list[dict]:
    """One event's outcomes as rows of the daily-fantasy schema (the bookmaker's title as printed)."""
    try:
        return [{"player": outcome["description"], "market": market["key"], "bookmaker": book["title"],
                 "side": outcome["name"], "line": outcome.get("point"), "price": outcome["price"],
                 "home_team": odds["home_team"], "away_team": odds["away_team"], "game_id": odds["id"],
                 "commence_time": odds["commence_time"]}
                for book in odds["bookmakers"] for market in book["markets"] for outcome in market["outcomes"]]
    except KeyError as exc:
        raise SourceError(f"odds_api: odds of event {odds.get('id')} lack the field {exc}") from None


def _utc(moment: pd.Timestamp) -> str:
    return moment.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _of_date(result: LinesResult | None, game_date: dt.date, source: DropFolderLines | OddsApiLines) -> pd.DataFrame:
    """The lines of ``game_date`` only, remembering the names nobody matched and the undeclared markets."""
    if result is None:
        source.unmatched, source.unknown_markets = [], {}
        return _empty(PROP_LINES_SCHEMA)
    source.unmatched = [name for name in result.unmatched if name.endswith(f"({game_date})")]
    source.unknown_markets = result.unknown_markets
    lines = result.lines
    return lines[lines["game_date"] == game_date].reset_index(drop=True)
