"""Results from box-score files in the shipped schema: the source of a season replay, and of an
operator without network access or with a feed of their own.

The schedule is derived from the same files (each game's id, date, home and away team). That is
legitimate for a replay: the NBA publishes the whole regular-season schedule before the season, so
knowing on 2025-01-10 which games are played on 2025-01-11 uses nothing that was not public then;
only who played and what they scored comes from the future, and the slate never reads that.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

import settings
from contracts import SCHEDULE_SCHEMA
from sources.base import ResultsSource
from warehouse.base import _typed
from warehouse.ingest import read_box_scores


def schedule_from_box_scores(box_scores: pd.DataFrame) -> pd.DataFrame:
    """``SCHEDULE_SCHEMA`` rows of the games the box scores hold; any row of a game says who hosted it, so
    a game whose one side is missing from the files is still scheduled."""
    games = box_scores.drop_duplicates("game_id")
    is_home = games["is_home"].astype(bool)
    games = pd.DataFrame({"game_date": games["game_date"], "game_id": games["game_id"], "season": games["season"],
                          "home_team": games["team"].where(is_home, games["opponent"]),
                          "away_team": games["opponent"].where(is_home, games["team"])})
    return _typed(SCHEDULE_SCHEMA, games.sort_values(["game_date", "game_id"], ignore_index=True))


class FileResults(ResultsSource):
    """Box scores of a file, folder or glob (default: the shipped seasons), read and validated once per
    object: a replay asks for one day at a time, about 80 times, and only the first call reads."""

    name = "files"

    def __init__(self, source: str | Path = settings.BOX_SCORES_DEFAULT / "*.csv.gz") -> None:
        self.source = source
        self._box_scores: pd.DataFrame | None = None
        self._schedule: pd.DataFrame | None = None

    def _all(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        if self._box_scores is None:
            self._box_scores = read_box_scores(self.source)
            self._schedule = schedule_from_box_scores(self._box_scores)
        return self._box_scores, self._schedule

    def box_scores(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        box_scores, _ = self._all()
        return _between(box_scores, start, end)

    def schedule(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        _, schedule = self._all()
        return _between(schedule, start, end)


def _between(frame: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    return frame[(frame["game_date"] >= start) & (frame["game_date"] <= end)].reset_index(drop=True)
