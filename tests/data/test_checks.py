"""Upstream data checks on the real 2024-25 box scores: every shipped day passes; an incomplete, duplicated,
late or future day is held by name until fixed or accepted."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from contracts import DATA_CHECKS_SCHEMA
from sources.files import schedule_from_box_scores
from warehouse import Warehouse
from warehouse.checks import accept, check_days, held_dates, record_checks, usable_dates
from warehouse.ingest import InputError

DAY = dt.date(2025, 1, 10)
TODAY = dt.date(2025, 4, 14)
GAME = "0022400528"  # SAC at BOS on 2025-01-10


def _day(box: pd.DataFrame, day: dt.date = DAY) -> pd.DataFrame:
    return box[box["game_date"] == day].reset_index(drop=True)


def _without_a_third_of_minutes(box: pd.DataFrame, team: str) -> pd.DataFrame:
    """The day's box scores with the team's rows dropped, most minutes first, until 80 minutes are gone."""
    rows = box[(box["game_id"] == GAME) & (box["team"] == team)].sort_values("minutes", ascending=False)
    dropped = rows.index[: int((rows["minutes"].cumsum() < 80).sum()) + 1]
    return box.drop(dropped).reset_index(drop=True)


def test_every_shipped_day_of_2024_25_passes(box_2024_25: pd.DataFrame) -> None:
    checks = check_days(box_2024_25, schedule_from_box_scores(box_2024_25), today=TODAY)
    assert len(checks) == 163 and [c for c in checks if c.problems] == []


def test_a_team_missing_a_third_of_its_minutes_is_held_by_name(box_2024_25: pd.DataFrame) -> None:
    box = pd.concat([_day(box_2024_25, DAY - dt.timedelta(days=1)),
                     _without_a_third_of_minutes(_day(box_2024_25), "BOS")])
    before, day = check_days(box, today=TODAY)
    assert before.status == "passed"
    assert day.status == "held"
    assert day.problems == (f"2025-01-10 game {GAME}: BOS minutes 139, expected 240 (240 +25 per OT)",)


def test_duplicates_a_missing_side_a_late_game_and_a_future_day_are_named(box_2024_25: pd.DataFrame) -> None:
    box = _day(box_2024_25)
    tatum = box[box["player_name"] == "Jayson Tatum"]
    elsewhere = tatum.assign(game_id="0022400529")  # the same player in a second game that day
    sac = box[(box["game_id"] == GAME) & (box["team"] == "SAC")].index
    box = pd.concat([box.drop(sac), tatum, elsewhere], ignore_index=True)
    schedule = pd.concat([schedule_from_box_scores(_day(box_2024_25)), pd.DataFrame([
        {"game_date": DAY, "game_id": "0022400999", "season": "2024-25", "home_team": "LAL", "away_team": "PHX"}])])
    (check,) = check_days(box, schedule, today=DAY - dt.timedelta(days=1))
    assert check.status == "held"
    assert set(check.problems) == {
        "2025-01-10 is after today (2025-01-09)",
        f"2025-01-10 game {GAME}: player 1628369 appears 2 times",
        "2025-01-10: player 1628369 appears in games 0022400528, 0022400529 on the same day",
        f"2025-01-10 game {GAME}: no box score rows for SAC",
        "2025-01-10 game 0022400529: 4 teams (BOS, NYK, OKC, SAC), expected 2",
        "2025-01-10 game 0022400999 (PHX at LAL): no box score",
    }


def test_a_held_day_stays_out_until_fixed_or_accepted(warehouse: Warehouse, box_2024_25: pd.DataFrame,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMOTED_BY", "ops-on-call")
    complete = pd.concat([_day(box_2024_25, DAY - dt.timedelta(days=1)), _day(box_2024_25)])
    incomplete = pd.concat([_day(box_2024_25, DAY - dt.timedelta(days=1)),
                            _without_a_third_of_minutes(_day(box_2024_25), "BOS")])
    at = pd.Timestamp("2025-01-11 12:00", tz="UTC")
    record_checks(warehouse, check_days(incomplete, today=TODAY), at)
    assert usable_dates(warehouse) == [DAY - dt.timedelta(days=1)]
    assert list(held_dates(warehouse)) == [DAY] and "BOS minutes 139" in held_dates(warehouse)[DAY]

    with pytest.raises(InputError, match=r"accept 2025-01-10: reason is ' ', expected a few words"):
        accept(warehouse, DAY, " ")
    with pytest.raises(InputError, match=r"accept: game_date 2025-01-09 is passed, not held"):
        accept(warehouse, DAY - dt.timedelta(days=1), "fine")
    with pytest.raises(InputError, match=r"accept: game_date 2025-01-08 has no data check recorded"):
        accept(warehouse, DAY - dt.timedelta(days=2), "fine")
    accept(warehouse, DAY, "NBA box score confirmed short; two players' minutes were never recorded", at)
    assert usable_dates(warehouse) == [DAY - dt.timedelta(days=1), DAY] and held_dates(warehouse) == {}
    stored = warehouse.read(DATA_CHECKS_SCHEMA, equals={"game_date": DAY}).iloc[0]
    assert stored["status"] == "accepted" and stored["problems"].endswith(
        "| accepted by ops-on-call: NBA box score confirmed short; two players' minutes were never recorded")

    record_checks(warehouse, check_days(incomplete, today=TODAY), at)  # a rerun keeps the acceptance
    assert usable_dates(warehouse) == [DAY - dt.timedelta(days=1), DAY]
    worse = incomplete[~((incomplete["game_id"] == GAME) & (incomplete["team"] == "SAC")
                         & (incomplete["minutes"] > 30))]
    record_checks(warehouse, check_days(worse, today=TODAY), at)  # new problems: held again
    assert list(held_dates(warehouse)) == [DAY]
    record_checks(warehouse, check_days(complete, today=TODAY), at)  # the fixed box score arrives
    assert usable_dates(warehouse) == [DAY - dt.timedelta(days=1), DAY]
    assert warehouse.count(DATA_CHECKS_SCHEMA) == 2
