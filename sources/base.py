"""The three interfaces the daily loop reads new data through.

Every implementation answers in the warehouse's own table columns (``contracts.py``), validated the
way the shipped files are, so the loop never needs to know which source it is talking to.
"""

from __future__ import annotations

import datetime as dt
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pandas as pd
import tenacity

from warehouse.ingest import InputError

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})  # answers a later try may not get


class SourceError(InputError):
    """A source that cannot answer: the message names the source, the field and the value."""


class TransientError(Exception):
    """One try that failed in a way worth trying again (a timeout, a dropped connection, HTTP 429 or
    5xx); the message says how, and never carries a secret."""


def retried(call: Callable[[], T], what: str, attempts: int, backoff: float,
            sleep: Callable[[float], None]) -> T:
    """``call``'s answer, trying again after each ``TransientError``: at most ``attempts`` tries, the
    first retry ``backoff`` seconds after a failure and each next wait doubled. When every try failed,
    the last try's ``TransientError`` is raised. ``sleep`` is injectable so tests count waits without
    waiting."""

    def announce(state: tenacity.RetryCallState) -> None:
        log.info("%s: %s; try %d of %d in %.1f s", what, state.outcome.exception(), state.attempt_number + 1,
                 attempts, state.next_action.sleep)

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts), wait=tenacity.wait_exponential(multiplier=backoff, exp_base=2),
        retry=tenacity.retry_if_exception_type(TransientError), sleep=sleep, before_sleep=announce, reraise=True,
    )(call)


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
    """Posted lines of every declared market. After a call, ``unmatched`` holds the printed names no
    player matched and ``unknown_markets`` the rows of market keys no market declares (key -> rows):
    the daily summary reports both, so nothing is left out silently."""

    name: str
    unmatched: list[str]
    unknown_markets: dict[str, int]

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
