"""The three interfaces the daily loop reads new data through.

Every implementation answers in the warehouse's own table columns (``contracts.py``), validated the
way the shipped files are, so the loop never needs to know which source it is talking to.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass

import pandas as pd

from warehouse.ingest import InputError


class SourceError(InputError):
    """A source that cannot answer: the message names the source, the field and the value."""


class ResultsSource(ABC):
    """Played games and the games still to play."""

    name: str

    @abstractmethod
    def box_scores(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """``BOX_SCORES_SCHEMA`` rows of games played from ``start`` to ``end`` (inclusive)."""

    @abstractmethod
    def schedule(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """``SCHEDULE_SCHEMA`` rows of regular-season games dated ``start`` .. ``end``, with the game ids
        the box scores use."""


class LinesSource(ABC):
    """Posted points lines."""

    name: str

    @abstractmethod
    def lines(self, game_date: dt.date, history: pd.DataFrame) -> pd.DataFrame:
        """``PROP_LINES_SCHEMA`` rows for games on ``game_date``; ``history`` (box scores known so far)
        turns the printed names into player ids."""


class OutListSource(ABC):
    """Players ruled out before tip-off (an injury report)."""

    name: str

    @abstractmethod
    def players_out(self, game_date: dt.date, history: pd.DataFrame | None = None) -> pd.DataFrame:
        """``PLAYERS_OUT_SCHEMA`` rows for ``game_date`` (none when nothing was reported); ``history``
        (box scores known so far) turns printed names into player ids."""



@dataclass
class Sources:
    """Where the daily job takes a day's facts from: results and the schedule, lines, who is ruled out."""

    results: ResultsSource
    lines: LinesSource | None = None
    out_list: OutListSource | None = None
