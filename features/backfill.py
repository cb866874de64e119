"""Rebuild ``ml_feature_store_v2`` for a date range from box-score and line files.

Inputs are validated whole, and the range clipped to the dates the box scores cover, before
anything is written. Each month with games is then rebuilt in its own transaction, replacing only
what it rebuilds: rows by key, the rows of the games it rebuilt, and the played rows of the dates
it covers. Slate rows of games not played yet, and every row of a date the box scores do not cover,
stay. So a rerun leaves exactly the same rows, a run killed half way is finished by running it
again, and a backfill never removes a row it did not rebuild.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from contracts import BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA
from features.build import build_features
from features.definitions import FEATURE_NAMES, FEATURE_STORE_SCHEMA
from markets import DEFAULT_MARKET
from warehouse import Warehouse
from warehouse.base import Rebuild
from warehouse.ingest import InputError, read_box_scores, read_lines

# A rebuilt month supersedes the stored rows of its games and the played rows of its dates (a played
# row has every market's outcome; the default market's column says so).
REBUILD = Rebuild(group="game_id", settled=DEFAULT_MARKET)
INPUT_STEPS = ("inputs", "features")  # the progress bar's steps before the months
log = logging.getLogger(__name__)


@dataclass
class BackfillSummary:
    start: dt.date
    end: dt.date
    dates: int
    rows: int
    rows_with_missing_inputs: int
    missing_by_feature: dict[str, int] = field(default_factory=dict)
    unmatched_line_names: list[str] = field(default_factory=list)
    unknown_line_markets: dict[str, int] = field(default_factory=dict)

    def render(self) -> str:
        lines = [f"backfill {self.start} .. {self.end}: {self.dates} game dates, {self.rows} player-games, "
                 f"{self.rows_with_missing_inputs} with at least one missing input"]
        lines += [f"  {name:<32} null in {n} rows" for name, n in self.missing_by_feature.items() if n]
        if self.unmatched_line_names:
            lines.append(f"  {len(self.unmatched_line_names)} line(s) not matched to a player: "
                         + ", ".join(self.unmatched_line_names[:10])
                         + (" ..." if len(self.unmatched_line_names) > 10 else ""))
        if self.unknown_line_markets:
            lines.append("  lines of markets the platform does not declare, left out: "
                         + ", ".join(f"{k} ({n} rows)" for k, n in sorted(self.unknown_line_markets.items())))
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


def covered_range(box: pd.DataFrame, start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
    """[start, end] clipped to the dates the box scores cover (all of them by default): a backfill
    rebuilds only what its inputs describe, so an open-ended range costs no empty writes and a range
    without box scores is refused while nothing is written."""
    first, last = min(box["game_date"]), max(box["game_date"])
    dates = box["game_date"][(box["game_date"] >= (start or first)) & (box["game_date"] <= (end or last))]
    if dates.empty:
        raise InputError(f"no box scores between start_date {start or first} and end_date {end or last} "
                         f"(the box scores cover {first} .. {last})")
    return min(dates), max(dates)


def backfill(warehouse: Warehouse, box_scores: str | Path, lines: str | Path | None,
             start: dt.date | None = None, end: dt.date | None = None, progress: bool = True,
             on_date_complete: Callable[[dt.date], None] | None = None,
             on_dates_planned: Callable[[list[dt.date]], None] | None = None) -> BackfillSummary:
    """Load the input files, then rebuild the feature rows of every game date in [start, end] that
    the box scores cover.

    ``on_dates_planned`` is told every game date the run will rebuild, once the features are built,
    and ``on_date_complete`` each of them once its rows are committed (the serving trigger): together,
    a job's progress.
    """
    if start and end and start > end:
        raise InputError(f"start_date {start} is after end_date {end}")
    # one bar over the whole run: reading and validating the inputs, building the features, then each month
    with tqdm(total=len(INPUT_STEPS), desc="backfill", unit="step", disable=not progress, mininterval=0,
              miniters=1) as bar:
        bar.set_postfix_str(INPUT_STEPS[0])
        box = read_box_scores(box_scores)
        line_result = read_lines(lines, box) if lines else None
        start, end = covered_range(box, start, end)
        log.info("backfill: %d box-score rows%s; rebuilding %s .. %s", len(box),
                 f", {len(line_result.lines)} lines" if line_result is not None else "", start, end)
        warehouse.write(BOX_SCORES_SCHEMA, box)
        if line_result is not None and len(line_result.lines):
            warehouse.write(PROP_LINES_SCHEMA, line_result.lines)
        bar.update()

        bar.set_postfix_str(INPUT_STEPS[1])
        history = warehouse.read(BOX_SCORES_SCHEMA)
        features = build_features(history, warehouse.read(PROP_LINES_SCHEMA))
        features = features[(features["game_date"] >= start) & (features["game_date"] <= end)]
        months = [(first, last) for first, last in month_chunks(start, end)
                  if features["game_date"].between(first, last).any()]
        bar.total += len(months)
        bar.update()
        if on_dates_planned is not None:
            on_dates_planned(sorted(features["game_date"].unique()))

        for first, last in months:
            bar.set_postfix_str(f"{first:%Y-%m}")
            part = features[features["game_date"].between(first, last)]
            warehouse.write(FEATURE_STORE_SCHEMA, part, rebuild=REBUILD)
            log.debug("backfill: %s .. %s written, %d rows", first, last, len(part))
            if on_date_complete is not None:
                for day in sorted(part["game_date"].unique()):
                    on_date_complete(day)
            bar.update()

    missing = features[list(FEATURE_NAMES)].isna().sum()
    return BackfillSummary(
        start=start, end=end, dates=features["game_date"].nunique(), rows=len(features),
        rows_with_missing_inputs=int((features["missing_inputs"] > 0).sum()),
        missing_by_feature={k: int(v) for k, v in missing.items()},
        unmatched_line_names=line_result.unmatched if line_result else [],
        unknown_line_markets=line_result.unknown_markets if line_result else {},
    )
