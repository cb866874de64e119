"""stats.nba.com through nba_api, tested at the client boundary: a fake transport under nba_api's own
session answers in the endpoints' real shapes, built from the shipped 2024-25 box scores."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from sources.base import SourceError
from sources.files import FileResults
from sources.nba_stats import NbaStatsResults, Politeness
from tests.conftest import SEASON_2024_25
from tests.fakes.nba_stats import FakeNbaStats, install_fake_nba_stats, shipped_box_rows
from warehouse.ingest import read_box_scores

FIRST, LAST = dt.date(2025, 1, 10), dt.date(2025, 1, 12)


class VirtualClock:
    """Time that passes only when the client sleeps: waits are measured, never spent."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, clock: VirtualClock) -> FakeNbaStats:
    return install_fake_nba_stats(monkeypatch, shipped_box_rows(FIRST, LAST), clock=clock)


def client(clock: VirtualClock, **politeness: float) -> NbaStatsResults:
    return NbaStatsResults(Politeness(**politeness), clock=clock, sleep=clock.sleep)


def test_box_scores_equal_the_shipped_file_read_the_same_way(monkeypatch: pytest.MonkeyPatch, clock: VirtualClock,
                                                             tmp_path: Path) -> None:
    first, last = dt.date(2024, 12, 13), dt.date(2024, 12, 15)
    rows = shipped_box_rows(first, last)
    # these days hold a game whose file prints the matchup from the other side ("MIA @ WAS" on a WAS row)
    assert (rows["MATCHUP"].str[:3] != rows["TEAM_ABBREVIATION"]).sum() == 19
    fake = install_fake_nba_stats(monkeypatch, rows, clock=clock)
    rows.to_csv(tmp_path / "same_rows.csv", index=False)
    got = client(clock).box_scores(first, last)
    pd.testing.assert_frame_equal(got, read_box_scores(tmp_path / "same_rows.csv"))
    assert len(got) == len(rows) and (got["game_date"].min(), got["game_date"].max()) == (first, last)
    sent = fake.requests[0]
    assert (sent.endpoint, sent.params["PlayerOrTeam"], sent.params["Season"], sent.params["SeasonType"]) == (
        "leaguegamelog", "P", "2024-25", "Regular Season")
    assert (sent.params["DateFrom"], sent.params["DateTo"]) == ("12/13/2024", "12/15/2024")
    assert sent.headers["Referer"] == "https://www.nba.com/" and "Chrome" in sent.headers["User-Agent"]
    assert sent.headers["Accept-Encoding"] == "gzip, deflate" and sent.timeout == 30.0


def test_schedule_is_the_regular_season_on_the_us_date(monkeypatch: pytest.MonkeyPatch, clock: VirtualClock) -> None:
    files = FileResults(SEASON_2024_25)
    expected = files.schedule(FIRST, LAST)
    preseason = pd.DataFrame([{"game_date": FIRST, "game_id": "0012400001", "season": "2024-25",
                               "home_team": "BOS", "away_team": "NYK"}])
    later = files.schedule(LAST + dt.timedelta(days=1), LAST + dt.timedelta(days=1))
    install_fake_nba_stats(monkeypatch, shipped_box_rows(FIRST, LAST),
                           schedule=pd.concat([expected, preseason, later], ignore_index=True), clock=clock)
    got = client(clock).schedule(FIRST, LAST)
    # the fake tips off at 00:30 UTC the next day: the date is the US one, as in the box scores
    pd.testing.assert_frame_equal(got, expected)
    assert len(got) == 20 and set(got["game_id"]) == set(client(clock).box_scores(FIRST, LAST)["game_id"])


def test_a_range_across_seasons_asks_each_season(fake: FakeNbaStats, clock: VirtualClock) -> None:
    client(clock).box_scores(dt.date(2024, 4, 10), dt.date(2024, 10, 30))
    assert [(r.params["Season"], r.params["DateFrom"], r.params["DateTo"]) for r in fake.requests] == [
        ("2023-24", "04/10/2024", "07/31/2024"), ("2024-25", "08/01/2024", "10/30/2024")]


def test_server_errors_and_timeouts_are_retried_with_backoff(fake: FakeNbaStats, clock: VirtualClock) -> None:
    fake.fail_next(503, "timeout", 429)
    got = client(clock, backoff=2.0, delay=0.0).box_scores(FIRST, FIRST)
    assert got["game_date"].eq(FIRST).all() and len(got) == 153
    assert len(fake.requests) == 4
    assert clock.sleeps == [2.0, 4.0, 8.0]  # doubled after each failure


def test_exhausted_retries_name_the_endpoint_and_dates(fake: FakeNbaStats, clock: VirtualClock) -> None:
    fake.fail_next(*[502] * 3)
    with pytest.raises(SourceError, match=r"^nba_stats: leaguegamelog for 2025-01-10\.\.2025-01-10 failed after "
                                          r"3 attempt\(s\), the last with HTTP 502$"):
        client(clock, attempts=3).box_scores(FIRST, FIRST)
    fake.fail_next(*["timeout"] * 3)
    with pytest.raises(SourceError, match=r"scheduleleaguev2 for season 2024-25 failed .* ReadTimeout$"):
        client(clock, attempts=3).schedule(FIRST, FIRST)


def test_a_client_error_is_not_retried(fake: FakeNbaStats, clock: VirtualClock) -> None:
    fake.fail_next(403)
    with pytest.raises(SourceError, match=r"^nba_stats: leaguegamelog for 2025-01-10\.\.2025-01-10 answered HTTP 403$"):
        client(clock).box_scores(FIRST, FIRST)
    assert len(fake.requests) == 1


def test_requests_are_spaced_by_the_delay(fake: FakeNbaStats, clock: VirtualClock) -> None:
    source = client(clock, delay=1.5)
    source.box_scores(FIRST, FIRST)
    clock.now += 0.5  # the caller spent half a second between two calls
    source.schedule(FIRST, FIRST)
    source.box_scores(LAST, LAST)
    starts = [r.at for r in fake.requests]
    assert [round(b - a, 6) for a, b in zip(starts, starts[1:], strict=False)] == [1.5, 1.5]
    assert clock.sleeps == [1.0, 1.5]


def test_politeness_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBA_STATS_DELAY", "0.25")
    monkeypatch.setenv("NBA_STATS_ATTEMPTS", "6")
    assert (Politeness.from_settings().delay, Politeness.from_settings().attempts) == (0.25, 6)
    monkeypatch.setenv("NBA_STATS_ATTEMPTS", "0")
    with pytest.raises(SourceError, match=r"^nba_stats: NBA_STATS_ATTEMPTS is '0', expected a whole number"):
        Politeness.from_settings()
    monkeypatch.setenv("NBA_STATS_ATTEMPTS", "2")
    monkeypatch.setenv("NBA_STATS_TIMEOUT", "soon")
    with pytest.raises(SourceError, match=r"^nba_stats: NBA_STATS_TIMEOUT is 'soon', expected a number of seconds"):
        Politeness.from_settings()
