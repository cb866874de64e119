"""Rebuild ``ml_feature_store_v2`` for a date range from box-score and line files.

Inputs are validated whole before anything is written. Each month of the range is then replaced
in its own transaction, so a rerun leaves exactly the same rows and a run killed half way is
finished by running it again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from contracts import BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA
from features.build import build_features
from features.definitions import FEATURE_NAMES, FEATURE_STORE_SCHEMA
from warehouse import Warehouse
from warehouse.ingest import InputError, read_box_scores, read_lines


@dataclass
class BackfillSummary:
    start: dt.date
    end: dt.date
    dates: int
    rows: int
    rows_with_missing_inputs: int
    missing_by_feature: dict[str, int] = field(default_factory=dict)
    unmatched_line_names: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"backfill {self.start} .. {self.end}: {self.dates} game dates, {self.rows} player-games, "
                 f"{self.rows_with_missing_inputs} with at least one missing input"]
        lines += [f"  {name:<32} null in {n} rows" for name, n in self.missing_by_feature.items() if n]
        if self.unmatched_line_names:
            lines.append(f"  {len(self.unmatched_line_names)} line(s) not matched to a player: "
                         + ", ".join(self.unmatched_line_names[:10])
                         + (" ..." if len(self.unmatched_line_names) > 10 else ""))
        return "\n".join(lines)


def month_chunks(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """Calendar months clipped to [start, end]: the unit a backfill commits at a time."""
    chunks, first = [], start
    while first <= end:
        next_month = (first.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        last = min(end, next_month - dt.timedelta(days=1))
        chunks.append((first, last))
        first = next_month
    return chunks


def backfill(warehouse: Warehouse, box_scores: str | Path, lines: str | Path | None,
             start: dt.date | None = None, end: dt.date | None = None, progress: bool = True,
             on_date_complete: Callable[[dt.date], None] | None = None) -> BackfillSummary:
    """Load the input files, then rebuild the feature rows of every game date in [start, end].

    ``on_date_complete`` is told each game date once its rows are committed (the serving trigger).
    """
    if start and end and start > end:
        raise InputError(f"start_date {start} is after end_date {end}")
    box = read_box_scores(box_scores)
    line_result = read_lines(lines, box) if lines else None
    warehouse.write(BOX_SCORES_SCHEMA, box)
    if line_result is not None and len(line_result.lines):
        warehouse.write(PROP_LINES_SCHEMA, line_result.lines)

    history = warehouse.read(BOX_SCORES_SCHEMA)
    start = start or min(history["game_date"])
    end = end or max(history["game_date"])
    in_range = history[(history["game_date"] >= start) & (history["game_date"] <= end)]
    if in_range.empty:
        raise InputError(f"no box scores between start_date {start} and end_date {end} "
                         f"(the box scores cover {min(history['game_date'])} .. {max(history['game_date'])})")
    features = build_features(history, warehouse.read(PROP_LINES_SCHEMA))
    features = features[(features["game_date"] >= start) & (features["game_date"] <= end)]

    chunks = month_chunks(start, end)
    for first, last in tqdm(chunks, desc="backfill", unit="month", disable=not progress, mininterval=0, miniters=1):
        part = features[(features["game_date"] >= first) & (features["game_date"] <= last)]
        warehouse.write(FEATURE_STORE_SCHEMA, part, replace_range=(first, last))
        if on_date_complete is not None:
            for day in sorted(part["game_date"].unique()):
                on_date_complete(day)

    missing = features[list(FEATURE_NAMES)].isna().sum()
    return BackfillSummary(
        start=start, end=end, dates=features["game_date"].nunique(), rows=len(features),
        rows_with_missing_inputs=int((features["missing_inputs"] > 0).sum()),
        missing_by_feature={k: int(v) for k, v in missing.items()},
        unmatched_line_names=line_result.unmatched if line_result else [],
    )


def read_store(warehouse: Warehouse, start: dt.date | None = None, end: dt.date | None = None) -> pd.DataFrame:
    """Feature rows in a date range (all of them by default)."""
    date_range = (start or dt.date(1900, 1, 1), end or dt.date(2999, 12, 31))
    return warehouse.read(FEATURE_STORE_SCHEMA, date_range=date_range)
