"""Benchmark: the vectorised feature builder against a straightforward pandas version.

Why this exists: the feature store is rebuilt on every backfill and every training run, so the issue
that asked for the prefix-sum builder in ``features/build.py`` set two targets for it: the full
33-feature build of the shipped box scores (seasons 2021-22 to 2024-25, plus the 2024-25 points
lines) must take at most 5 s on 2 cores, and it must be at least 10x faster than the obvious pandas
implementation (``groupby(...).transform(lambda s: s.shift(1).rolling(N).mean())``). This script
measures both in one process, checks that the two compute the same numbers for the 12 rolling player
features they share, prints a table and writes ``benchmarks/results/feature_build.json``.

The naive version computes only 12 of the 33 features, so the speedup it reports is conservative.

Run from the repository root:  python benchmarks/feature_build.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from features.build import build_features  # noqa: E402
from features.definitions import FEATURE_NAMES  # noqa: E402
from warehouse.ingest import expand_sources, read_box_scores, read_lines  # noqa: E402

SEASONS = ("2021-22", "2022-23", "2023-24", "2024-25")
BOX_GLOB = ROOT / "data" / "nba" / "box_scores" / "player_logs_202[1-4]-2[2-5].csv.gz"
LINES_DIR = ROOT / "data" / "nba" / "dfs_lines_2024-25"
RESULTS = ROOT / "benchmarks" / "results" / "feature_build.json"

RUNS = 5
SLOW_RUN_SECONDS = 60.0  # a naive run slower than this is measured once, not RUNS times
TOLERANCE = 1e-9
TARGET_FAST_SECONDS = 5.0
TARGET_SPEEDUP = 10.0

# (feature, source column, window (None = season to date), kind)
ROLLING: tuple[tuple[str, str, int | None, str], ...] = (
    ("points_avg_last_5", "points", 5, "mean"),
    ("points_avg_last_10", "points", 10, "mean"),
    ("points_avg_season", "points", None, "mean"),
    ("points_std_last_10", "points", 10, "std"),
    ("points_last_game", "points", 1, "last"),
    ("points_ewm_10", "points", 10, "ewm"),
    ("minutes_avg_last_5", "minutes", 5, "mean"),
    ("minutes_avg_last_10", "minutes", 10, "mean"),
    ("fga_avg_last_10", "fga", 10, "mean"),
    ("fg3a_avg_last_10", "fg3a", 10, "mean"),
    ("fta_avg_last_10", "fta", 10, "mean"),
    ("plus_minus_avg_last_10", "plus_minus", 10, "mean"),
)
ROLLING_NAMES: tuple[str, ...] = tuple(name for name, *_ in ROLLING)


# --- data ---------------------------------------------------------------------------------------
def load_inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shipped box scores of ``SEASONS`` and the 2024-25 points lines (validated, not timed)."""
    files = expand_sources(BOX_GLOB)
    expected = [f"player_logs_{s}.csv.gz" for s in SEASONS]
    if [f.name for f in files] != expected:
        raise SystemExit(f"expected box-score files {expected}, found {[f.name for f in files]}")
    box = read_box_scores(BOX_GLOB)
    lines = read_lines(LINES_DIR, box).lines
    return box, lines


# --- the naive implementation -------------------------------------------------------------------
def naive_rolling_features(box: pd.DataFrame) -> pd.DataFrame:
    """The 12 rolling player features the obvious way: one grouped ``transform`` with a Python
    lambda per feature, each shifting the player's series by one game so a row never sees itself.

    The stat columns are made float once up front, as ``build_features`` does, so the baseline is
    not slowed by converting the nullable integers group by group."""
    games = box.sort_values(["player_id", "game_date", "game_id"], ignore_index=True)
    for col in ("points", "minutes", "fga", "fg3a", "fta", "plus_minus"):
        games[col] = games[col].astype(float)
    out = games[["player_id", "game_id"]].copy()
    by_player = games.groupby("player_id", sort=False)
    by_season = games.groupby(["player_id", "season"], sort=False)

    out["points_avg_last_5"] = by_player["points"].transform(
        lambda s: s.shift(1).rolling(5, min_periods=1).mean())
    out["points_avg_last_10"] = by_player["points"].transform(
        lambda s: s.shift(1).rolling(10, min_periods=1).mean())
    out["points_avg_season"] = by_season["points"].transform(
        lambda s: s.shift(1).expanding(min_periods=1).mean())
    out["points_std_last_10"] = by_player["points"].transform(
        lambda s: s.shift(1).rolling(10, min_periods=2).std())
    out["points_last_game"] = by_player["points"].transform(lambda s: s.shift(1))
    out["points_ewm_10"] = by_player["points"].transform(lambda s: s.shift(1).ewm(span=10).mean())
    out["minutes_avg_last_5"] = by_player["minutes"].transform(
        lambda s: s.shift(1).rolling(5, min_periods=1).mean())
    for col in ("minutes", "fga", "fg3a", "fta", "plus_minus"):
        out[f"{col}_avg_last_10"] = by_player[col].transform(
            lambda s: s.shift(1).rolling(10, min_periods=1).mean())
    return out


# --- measuring ----------------------------------------------------------------------------------
def time_runs(func: Callable[[], pd.DataFrame], runs: int,
              stop_after: float | None = None) -> tuple[list[float], pd.DataFrame]:
    """Wall-clock seconds of up to ``runs`` calls (fewer when one exceeds ``stop_after``) and the
    last call's result."""
    seconds: list[float] = []
    result = pd.DataFrame()
    for _ in range(runs):
        start = time.perf_counter()
        result = func()
        seconds.append(time.perf_counter() - start)
        if stop_after is not None and seconds[-1] > stop_after:
            break
    return seconds, result


def compare(fast: pd.DataFrame, naive: pd.DataFrame) -> dict[str, int]:
    """Per rolling feature, the number of player-games where the two disagree by more than
    ``TOLERANCE`` (a null on one side only counts as a disagreement; two nulls agree)."""
    keys = ["player_id", "game_id"]
    left = fast[[*keys, *ROLLING_NAMES]].assign(player_id=lambda d: d["player_id"].astype(np.int64))
    right = naive[[*keys, *ROLLING_NAMES]].assign(player_id=lambda d: d["player_id"].astype(np.int64))
    joined = left.merge(right, on=keys, how="outer", suffixes=("_fast", "_naive"), indicator=True)
    unpaired = int((joined["_merge"] != "both").sum())
    mismatches: dict[str, int] = {}
    for name in ROLLING_NAMES:
        a = joined[f"{name}_fast"].to_numpy(dtype=float, na_value=np.nan)
        b = joined[f"{name}_naive"].to_numpy(dtype=float, na_value=np.nan)
        both_nan = np.isnan(a) & np.isnan(b)
        with np.errstate(invalid="ignore"):
            close = np.abs(a - b) <= TOLERANCE
        mismatches[name] = int((~(both_nan | close)).sum())
    mismatches["<rows on one side only>"] = unpaired
    return mismatches


def main() -> int:
    box, lines = load_inputs()
    rows = len(box)
    print(f"box scores: {rows:,} player-games, seasons {SEASONS[0]} to {SEASONS[-1]}; "
          f"lines: {len(lines):,}")

    build_features(box, lines)  # warm-up: first-call imports and allocations are not the build's cost
    fast_times, fast = time_runs(lambda: build_features(box, lines), RUNS)
    missing = [c for c in (*FEATURE_NAMES, "player_id", "game_id") if c not in fast.columns]
    if missing:
        raise SystemExit(f"build_features output lacks {missing}")
    naive_times, naive = time_runs(lambda: naive_rolling_features(box), RUNS, stop_after=SLOW_RUN_SECONDS)

    fast_median = statistics.median(fast_times)
    naive_median = statistics.median(naive_times)
    speedup = naive_median / fast_median

    mismatches = compare(fast, naive)
    print("\ncorrectness (naive vs build_features, |diff| <= 1e-9, NaN == NaN):")
    width = max(len(k) for k in mismatches)
    for name, count in mismatches.items():
        print(f"  {name:<{width}}  {count} mismatch(es)")

    header = f"{'implementation':<36} {'rows':>9} {'median s':>9} {'naive/fast':>11}  runs"
    print(f"\n{header}\n{'-' * len(header)}")
    print(f"{'build_features (33 features)':<36} {len(fast):>9,} {fast_median:>9.3f} {1.0:>11.2f}  "
          f"{', '.join(f'{t:.3f}' for t in fast_times)}")
    print(f"{'naive pandas (12 rolling features)':<36} {len(naive):>9,} {naive_median:>9.3f} "
          f"{speedup:>11.2f}  {', '.join(f'{t:.3f}' for t in naive_times)}")
    cores = os.cpu_count()
    print(f"\ntargets: full build <= {TARGET_FAST_SECONDS:.0f} s on 2 cores (this machine: {cores} cores) "
          f"-> {'met' if fast_median <= TARGET_FAST_SECONDS else 'NOT met'}; "
          f"speedup >= {TARGET_SPEEDUP:.0f}x -> {'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}")

    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "fast_seconds_median": round(fast_median, 4),
        "naive_seconds_median": round(naive_median, 4),
        "speedup": round(speedup, 2),
        "runs": {"fast": [round(t, 4) for t in fast_times], "naive": [round(t, 4) for t in naive_times]},
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": cores,
                    "platform": platform.platform()},
        "mismatches": mismatches,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")

    bad = {k: v for k, v in mismatches.items() if v}
    if bad:
        print(f"FAIL: naive and build_features disagree: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
