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

Impossible values hold a day the same way, each rule named with its first offending row and how many
there are. Every rule passes every shipped player-game (252,621) and game (11,891): no stat is
negative; no made count exceeds its attempts, nor threes made or tried the field goals; rebounds are
offensive plus defensive; points are 2 x FGM + FG3M + FTM; nobody has more than 6 fouls or more
minutes than the game lasted (48 +5 per overtime; 16 players played every minute of theirs); and the
team recorded as the winner outscored the other by its players' points. The box scores hold no team
score to add the players up to, and the players' plus-minus, which sums to 5 x the margin, misses it in
132 real games by up to 65, so it cannot judge a day.
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
PLAYER_REGULATION_MINUTES, PLAYER_OVERTIME_MINUTES = 48, 5
MAX_FOULS = 6  # the sixth personal foul disqualifies
COUNTED = ("minutes", "points", "fgm", "fga", "fg3m", "fg3a", "ftm", "fta", "oreb", "dreb", "reb", "ast", "stl",
           "blk", "tov", "pf")  # every box-score count but plus_minus, which may be negative
MADE_AT_MOST = (("fgm", "fga"), ("fg3m", "fg3a"), ("ftm", "fta"), ("fg3m", "fgm"), ("fg3a", "fga"))
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
    impossible = _impossible_values(box_scores)
    return [DayCheck(day, tuple(_day_problems(day, box_scores[box_scores["game_date"] == day],
                                              schedule[schedule["game_date"] == day], today)
                                + impossible.get(day, [])))
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


def _impossible_values(box: pd.DataFrame) -> dict[dt.date, list[str]]:
    """Per game date, the values no real box score holds (see the module docstring): one problem per
    rule and column, naming its first row and counting the others. Judged over all dates at once: a
    rule is one comparison of whole columns, and only offending rows are looked at one by one."""
    if box.empty:
        return {}
    rows = box.reset_index(drop=True)
    # overtimes read off the side with fewer minutes here: one player's minutes inflated make his team's
    # total look like a longer game (a side short of minutes is held by _game_problems already)
    team_minutes = rows.groupby(["game_id", "team"])["minutes"].transform("sum")
    overtimes = ((team_minutes.groupby(rows["game_id"]).transform("min") - REGULATION_MINUTES) / OVERTIME_MINUTES
                 ).round().clip(lower=0).astype(int)
    longest = PLAYER_REGULATION_MINUTES + PLAYER_OVERTIME_MINUTES * overtimes
    team_points = rows.groupby(["game_id", "team"])["points"].sum()
    scored = team_points.reindex(pd.MultiIndex.from_frame(rows[["game_id", "team"]])).to_numpy()
    conceded = team_points.reindex(pd.MultiIndex.from_frame(rows[["game_id", "opponent"]])).to_numpy()
    player = "player {r.player_id} ({r.player_name}) "
    rules: list[tuple[pd.Series, str]] = [(rows[c] < 0, player + f"{c} is {{r.{c}}}, expected 0 or more")
                                          for c in COUNTED]
    rules += [(rows[made] > rows[tried], player + f"{made} {{r.{made}}} is more than {tried} {{r.{tried}}}")
              for made, tried in MADE_AT_MOST]
    rules += [
        (rows["reb"] != rows["oreb"] + rows["dreb"], player + "reb {r.reb} is not oreb {r.oreb} + dreb {r.dreb}"),
        (rows["points"] != 2 * rows["fgm"] + rows["fg3m"] + rows["ftm"],
         player + "points is {r.points}, expected 2 x fgm {r.fgm} + fg3m {r.fg3m} + ftm {r.ftm}"),
        (rows["pf"] > MAX_FOULS, player + f"pf is {{r.pf}}, expected at most {MAX_FOULS}"),
        (rows["minutes"] > longest, player + "minutes is {r.minutes}, expected at most {longest} (48 +5 per OT)"),
        (rows["win"].eq(True) & pd.Series(scored <= conceded),
         "{r.team} is recorded as the winner, but its players scored {scored} points to {conceded} for {r.opponent}"),
    ]
    found: dict[dt.date, list[str]] = {}
    for bad, text in rules:
        bad = bad.fillna(False).astype(bool)
        for day, offending in rows[bad].groupby("game_date"):
            first = offending.index[0]
            described = text.format(r=offending.loc[first], longest=longest[first], scored=scored[first],
                                    conceded=conceded[first])
            more = f" (and {len(offending) - 1} more row(s))" if len(offending) > 1 else ""
            found.setdefault(day, []).append(f"{day} game {offending.loc[first, 'game_id']}: {described}{more}")
    return found


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
