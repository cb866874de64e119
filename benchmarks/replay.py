"""Benchmark: a season replay, the honest figure a user of the live platform gets.

Why this exists: every other evaluation knows who played. The replay runs the daily job for every
date of a past range, starting from a warehouse that holds only what was known before it: the slate
is built from the schedule and the roster guess, results arrive the next day and are graded, the
models retrain weekly through the gate. It reports per system the live MAE and within-3 on every
graded player-game, the void count (slate players who did not play), the hit rate against the
shipped lines and the Brier score of ``p_over``, the same models' MAE with the lineups known (the
walk-forward backtest of the range) and the gap between the two, the share of played player-games
the slates covered, and the wall time.

It runs in a fresh temporary home (its own warehouse and MLflow store), so nothing of the caller's
is touched and nothing earlier is reused. Run from the repository root:

    python benchmarks/replay.py                                        # 2024-10-22 .. 2025-01-13
    python benchmarks/replay.py --start-date 2024-11-01 --end-date 2024-11-14
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from live import defaults  # noqa: E402
from live.replay import ReplayConfig, replay  # noqa: E402
from sources import from_options  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start-date", default=str(defaults.REPLAY_START))
    parser.add_argument("--end-date", default=str(defaults.REPLAY_END))
    parser.add_argument("--retrain-every", type=int, default=defaults.RETRAIN_EVERY_DAYS)
    parser.add_argument("--train-years", type=int, default=defaults.TRAIN_YEARS)
    args = parser.parse_args()
    start, end = dt.date.fromisoformat(args.start_date), dt.date.fromisoformat(args.end_date)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="replay-") as home:
        cfg = ReplayConfig(start, end, Path(home), from_options(defaults.REPLAY_RESULTS, defaults.REPLAY_LINES),
                           retrain_every=args.retrain_every, train_years=args.train_years)
        began = time.perf_counter()
        report = replay(cfg, progress=True)
        wall = time.perf_counter() - began
    print(report.render())
    print(f"wall time {wall / 60:.1f} min; load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    result = {**report.to_json(), "wall_seconds": round(wall, 1), "retrain_every": args.retrain_every,
              "train_years": args.train_years, "load_average": [load_before, os.getloadavg()[0]],
              "cores": os.cpu_count()}
    out = ROOT / "benchmarks" / "results" / ("replay.json" if (args.start_date, args.end_date) ==
                                             ("2024-10-22", "2025-01-13") else "replay_custom.json")
    out.write_text(json.dumps(result, indent=2, sort_keys=True))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
