"""Upstream checks of ingested box scores, before any feature is built from them.

The system this platform grew from validated its inputs in one step that broke on a schema change
and let incomplete days through. Here every ingested game date is checked for completeness: each
game has both teams, each team played about 240 minutes (+25 per overtime; a box score that lost
players shows as a team short of minutes), no player-game appears twice, no date lies after today,
and every scheduled game has a box score. A day with a problem is *held*: kept out of feature
building until a later ingest passes the check or an operator accepts it (``accept``), never used
silently. Results live in ``data_checks``, one row per date, replaced by key.

Minutes tolerance: each player's minutes are rounded to whole minutes, so a team's total drifts
from 240. Over every shipped team-game (2015-16 … 2024-25: 23,782 team-games, 11,891 games) the
total minus 240 (+25 per overtime) ranged from -3 to +4 (-3: 65, -2: 874, -1: 5,111, 0: 10,475,
+1: 5,994, +2: 1,160, +3: 99, +4: 4); a tolerance of 5 passes every real game and still catches a
single missing rotation player.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

import settings
from contracts import DATA_CHECKS_SCHEMA
from warehouse.base import Warehouse
from warehouse.ingest import InputError

REGULATION_MINUTES = 240  # 5 players x 48 minutes
OVERTIME_MINUTES = 25  # 5 players x 5 minutes
MINUTES_TOLERANCE = 5
PASSED, HELD, ACCEPTED = "passed", "held", "accepted"
USABLE = (PASSED, ACCEPTED)
_ACCEPTED_BY = " | accepted by "


@dataclass(frozen=True)
class DayCheck:
    game_date: dt.date
    problems: tuple[str, ...]

    @property
    def status(self) -> str:
        return HELD if self.problems else PASSED


def check_days(box_scores: pd.DataFrame, schedule: pd.DataFrame | None = None, *,
               today: dt.date) -> list[DayCheck]:
    """One result per game date of ``box_scores`` (``BOX_SCORES_SCHEMA`` rows as ingested) and of
    ``schedule`` (``SCHEDULE_SCHEMA`` rows of the games these box scores should hold, if known)."""
    schedule = schedule if schedule is not None else pd.DataFrame(columns=["game_date", "game_id"])
    days = sorted(set(box_scores["game_date"]) | set(schedule["game_date"]))
    return [DayCheck(day, tuple(_day_problems(day, box_scores[box_scores["game_date"] == day],
                                              schedule[schedule["game_date"] == day], today)))
            for day in days]


def _day_problems(day: dt.date, box: pd.DataFrame, scheduled: pd.DataFrame, today: dt.date) -> list[str]:
    problems = [f"{day} is after today ({today})"] if day > today else []
    for (player, game), n in box.groupby(["player_id", "game_id"]).size().items():
        if n > 1:
            problems.append(f"{day} game {game}: player {player} appears {n} times")
    games_of_player = box.drop_duplicates(["player_id", "game_id"]).groupby("player_id")["game_id"]
    for player, games in games_of_player:
        if len(games) > 1:
            problems.append(f"{day}: player {player} appears in games {', '.join(sorted(games))} on the same day")
    for game, rows in box.groupby("game_id"):
        problems += _game_problems(day, str(game), rows)
    for game in scheduled[~scheduled["game_id"].isin(box["game_id"])].itertuples():
        problems.append(f"{day} game {game.game_id} ({game.away_team} at {game.home_team}): no box score")
    return problems


def _game_problems(day: dt.date, game: str, rows: pd.DataFrame) -> list[str]:
    """Both teams present, and each team's minutes those of a whole game (overtimes read off the
    fuller side, so a team short of minutes cannot pass as one with fewer overtimes)."""
    teams = sorted(set(rows["team"]) | set(rows["opponent"]))
    missing = [team for team in teams if team not in set(rows["team"])]
    if len(teams) != 2:
        return [f"{day} game {game}: {len(teams)} teams ({', '.join(teams)}), expected 2"]
    if missing:
        return [f"{day} game {game}: no box score rows for {missing[0]}"]
    minutes = rows.groupby("team")["minutes"].sum()
    overtimes = max(0, int(np.round((minutes.max() - REGULATION_MINUTES) / OVERTIME_MINUTES)))
    expected = REGULATION_MINUTES + OVERTIME_MINUTES * overtimes
    return [f"{day} game {game}: {team} minutes {int(total)}, expected {expected} (240 +25 per OT)"
            for team, total in minutes.items() if abs(total - expected) > MINUTES_TOLERANCE]


def record_checks(warehouse: Warehouse, checks: list[DayCheck], checked_at: pd.Timestamp | None = None) -> pd.DataFrame:
    """Store one row per checked date. A held date an operator accepted stays accepted while its
    problems are the ones accepted; new or different problems hold it again."""
    if not checks:
        return pd.DataFrame(columns=DATA_CHECKS_SCHEMA.column_names)
    days = [check.game_date for check in checks]
    stored = warehouse.read(DATA_CHECKS_SCHEMA, date_range=(min(days), max(days)))
    accepted = {row.game_date: row.problems for row in stored.itertuples() if row.status == ACCEPTED}
    when = checked_at if checked_at is not None else pd.Timestamp.now(tz="UTC").floor("s")
    rows = []
    for check in checks:
        problems = "; ".join(check.problems) or None
        previous = accepted.get(check.game_date)
        if problems and previous and previous.split(_ACCEPTED_BY)[0] == problems:
            status, problems = ACCEPTED, previous
        else:
            status = check.status
        rows.append({"game_date": check.game_date, "status": status, "problems": problems, "checked_at": when})
    frame = pd.DataFrame(rows)
    warehouse.write(DATA_CHECKS_SCHEMA, frame)
    return frame


def accept(warehouse: Warehouse, game_date: dt.date, reason: str, checked_at: pd.Timestamp | None = None) -> str:
    """Let a held date into feature building as it is, recording who accepted it and why; returns the
    recorded problems text."""
    if not reason.strip():
        raise InputError(f"accept {game_date}: reason is {reason!r}, expected a few words on why the day is usable")
    stored = warehouse.read(DATA_CHECKS_SCHEMA, equals={"game_date": game_date})
    if stored.empty:
        raise InputError(f"accept: game_date {game_date} has no data check recorded, so there is nothing to accept")
    row = stored.iloc[0]
    if row["status"] != HELD:
        raise InputError(f"accept: game_date {game_date} is {row['status']}, not held")
    problems = f"{row['problems']}{_ACCEPTED_BY}{settings.promoted_by()}: {reason.strip()}"
    when = checked_at if checked_at is not None else pd.Timestamp.now(tz="UTC").floor("s")
    warehouse.write(DATA_CHECKS_SCHEMA, pd.DataFrame(
        [{"game_date": game_date, "status": ACCEPTED, "problems": problems, "checked_at": when}]))
    return problems


def usable_dates(warehouse: Warehouse) -> list[dt.date]:
    """Checked dates features may be built for (passed or accepted), oldest first."""
    stored = warehouse.read(DATA_CHECKS_SCHEMA)
    return sorted(stored.loc[stored["status"].isin(USABLE), "game_date"])


def accepted_dates(warehouse: Warehouse) -> dict[dt.date, str]:
    """Dates an operator let in as they were, with their problems and who accepted them and why."""
    stored = warehouse.read(DATA_CHECKS_SCHEMA, equals={"status": ACCEPTED})
    return dict(zip(stored["game_date"], stored["problems"], strict=True))


def held_dates(warehouse: Warehouse) -> dict[dt.date, str]:
    """Dates kept out of feature building, with their problems."""
    stored = warehouse.read(DATA_CHECKS_SCHEMA, equals={"status": HELD})
    return dict(zip(stored["game_date"], stored["problems"], strict=True))
