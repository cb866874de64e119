"""Upstream data checks on the real 2024-25 box scores: every shipped day passes; an incomplete, duplicated,
late or future day is held by name until fixed or accepted."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from contracts import BOX_SCORES_SCHEMA, DATA_CHECKS_SCHEMA
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


# --- issue 15 row 2: values no real box score holds hold the day by name ---------------------------
def _with(box: pd.DataFrame, player: str, **values: int) -> pd.DataFrame:
    changed = box.copy()
    changed.loc[changed["player_name"] == player, list(values)] = list(values.values())
    return changed


@pytest.mark.parametrize(("column", "value", "named"), [
    ("points", -40, ["points is -40, expected 0 or more", "points is -40, expected 2 x fgm"]),
    ("points", 999, ["points is 999, expected 2 x fgm"]),
    ("minutes", -44, ["minutes is -44, expected 0 or more", "BOS minutes"]),
    ("minutes", 101, ["minutes is 101, expected at most 48 (48 +5 per OT)", "BOS minutes"]),
])
def test_an_impossible_points_or_minutes_value_holds_the_day_by_name(box_2024_25: pd.DataFrame, column: str,
                                                                     value: int, named: list[str]) -> None:
    # before the fix these days passed ("usable"), and PTS 999 moved Tatum's points_avg_last_5 to 216
    day = _day(box_2024_25)
    (check,) = check_days(_with(day, "Jayson Tatum", **{column: value}), today=TODAY)
    assert check.status == "held"
    for text in named:
        assert any(text in problem for problem in check.problems), (text, check.problems)
    tatum = next(p for p in check.problems if column in p and str(value) in p)
    assert tatum.startswith(f"2025-01-10 game {GAME}: player 1628369 (Jayson Tatum) {column} is {value}")


def test_every_rule_names_its_first_row_and_counts_the_rest(box_2024_25: pd.DataFrame) -> None:
    day = _day(box_2024_25)
    bos = day[(day["game_id"] == GAME) & (day["team"] == "BOS")].sort_values("player_id")
    first, second = bos["player_id"].iloc[:2]
    day.loc[day["player_id"].isin([first, second]), "fgm"] = 30  # more than attempted, points off
    day.loc[day["player_id"] == first, "reb"] += 1
    day.loc[day["player_id"] == first, "pf"] = 7
    (check,) = check_days(day, today=TODAY)
    fgm = [p for p in check.problems if "fgm 30 is more than fga" in p]
    assert len(fgm) == 1 and fgm[0].endswith("(and 1 more row(s))")
    assert any("reb " in p and "is not oreb" in p for p in check.problems)
    assert any(p.endswith("pf is 7, expected at most 6") for p in check.problems)
    # the players' points now say BOS outscored SAC by far more, but the recorded winner stands: flip it
    loser = day.assign(win=day["win"].where(day["game_id"] != GAME, ~day["win"].astype(bool)))
    (flipped,) = check_days(_with(loser, "Jayson Tatum"), today=TODAY)
    assert any("is recorded as the winner, but its players scored" in p for p in flipped.problems)


def test_an_impossible_day_is_not_written_by_the_daily_ingest(warehouse: Warehouse, box_2024_25: pd.DataFrame) -> None:
    from live.daily import DailyConfig, DayReport, ingest
    from sources.base import ResultsSource, Sources

    before, bad = _day(box_2024_25, DAY - dt.timedelta(days=1)), _with(_day(box_2024_25), "Jayson Tatum", points=999)

    class Results(ResultsSource):
        name = "test"

        def box_scores(self, start: dt.date, end: dt.date) -> pd.DataFrame:
            return bad

        def schedule(self, start: dt.date, end: dt.date) -> pd.DataFrame:
            return schedule_from_box_scores(bad)

    warehouse.write(DATA_CHECKS_SCHEMA, pd.DataFrame([{"game_date": before["game_date"].iloc[0], "status": "passed",
                                                       "problems": None, "checked_at": pd.Timestamp.now(tz="UTC")}]))
    report = DayReport(DAY + dt.timedelta(days=1))
    ingest(DailyConfig(DAY + dt.timedelta(days=1)), Sources(Results()), warehouse, report)
    assert held_dates(warehouse)[DAY].count("points is 999") == 1 and report.held
    assert warehouse.read(BOX_SCORES_SCHEMA).empty
