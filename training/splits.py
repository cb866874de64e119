"""Time-ordered splits: everything a model or a tuner sees precedes the test window.

test = every played game from ``test_start`` to ``end``; validation (tuning, early stopping,
ensemble weights, the residual distribution) = the latest ``val_fraction`` of game dates before
``test_start``; train = the dates before validation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.definitions import feature_names
from markets import MARKETS, Market


class SplitError(ValueError):
    """A date range or split that leaves a set empty; the message names the dates."""


@dataclass
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    start: dt.date
    val_start: dt.date
    test_start: dt.date
    end: dt.date
    market: Market = MARKETS["points"]

    @property
    def features(self) -> list[str]:
        """The market's model inputs, in the order every system's bundle records."""
        return feature_names(self.market)

    def x(self, part: str) -> pd.DataFrame:
        return getattr(self, part)[self.features].astype(float)

    def y(self, part: str) -> np.ndarray:
        return getattr(self, part)[self.market.name].to_numpy(float)

    @property
    def sizes(self) -> dict[str, int]:
        return {"n_train": len(self.train), "n_val": len(self.val), "n_test": len(self.test)}


def latest_season_start(store: pd.DataFrame) -> dt.date:
    """The first game date of the latest season in the frame (2024-10-22 on the shipped data)."""
    latest = store["season"].max()
    return min(store.loc[store["season"] == latest, "game_date"])


def time_splits(store: pd.DataFrame, start: dt.date | None = None, end: dt.date | None = None,
                test_start: dt.date | None = None, val_fraction: float = 0.2,
                market: Market = MARKETS["points"]) -> Splits:
    if start and end and start > end:
        raise SplitError(f"start_date {start} is after end_date {end}")
    played = store[store[market.name].notna()]
    if start:
        played = played[played["game_date"] >= start]
    if end:
        played = played[played["game_date"] <= end]
    if played.empty:
        raise SplitError(f"no played games in the feature store between {start or 'the start'} and "
                         f"{end or 'the end'}: run backfill for that range first")
    test_start = test_start or latest_season_start(played)
    before = played[played["game_date"] < test_start]
    test = played[played["game_date"] >= test_start]
    if test.empty or before.empty:
        raise SplitError(f"test_start {test_start} leaves {'no test' if test.empty else 'no training'} games "
                         f"in {min(played['game_date'])} .. {max(played['game_date'])}")
    dates = np.sort(before["game_date"].unique())
    val_start = dates[min(len(dates) - 1, int(len(dates) * (1 - val_fraction)))]
    return Splits(
        train=before[before["game_date"] < val_start].reset_index(drop=True),
        val=before[before["game_date"] >= val_start].reset_index(drop=True),
        test=test.reset_index(drop=True),
        start=min(played["game_date"]), val_start=val_start, test_start=test_start,
        end=max(played["game_date"]), market=market,
    )
