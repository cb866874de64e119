"""Benchmark: how fast the worker answers the analyst's board (``serving/pages.py``).

Why this exists: issue 14 asks that the board of a 10-game date answer in under 200 ms at the
median on the 2-core machine. The board reads one date of predictions, lines, players out and the
slate, plus six weeks of box scores for the form charts, and renders every row with two SVG charts;
this measures all of it as a browser gets it: ``GET /board?date=D&market=points`` over HTTP on
loopback, against the worker as ``serve`` runs it (uvicorn, in this process), after three warm-up
requests. A board read is reused for 30 s (``BOARD_SECONDS``), so most of those requests render a
board read before; ``board_read`` times the reads and assembly a request pays when it is not (called
directly, no HTTP). Also timed: the CSV of the same board, the results of the date, and performance.

Needs a warehouse with predictions, e.g. a season replay's (README, "The analyst's pages"):

    python benchmarks/board.py --warehouse duckdb:///mlruns/replay/warehouse.duckdb

Writes ``benchmarks/results/board.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contracts import PREDICTIONS_SCHEMA  # noqa: E402
from serving.local import running  # noqa: E402
from serving.pages import FEATURE_KEYS, MARKETS, read_board, read_columns  # noqa: E402
from serving.worker import create_app  # noqa: E402
from warehouse import connect  # noqa: E402

REQUESTS = 50
WARM_UP = 3


def ten_game_date(url: str) -> dt.date:
    """The date with points predictions whose slate has 10 games (else the closest, the larger first)."""
    warehouse = connect(url)
    days = read_columns(warehouse, PREDICTIONS_SCHEMA, ["game_date", "market"], (dt.date(1900, 1, 1),
                                                                                  dt.date(2999, 1, 1)))
    days = sorted(set(days.loc[days["market"] == "points", "game_date"]))
    if not days:
        sys.exit(f"{url} holds no points predictions: run a replay or daily first")
    slate = read_columns(warehouse, FEATURE_KEYS, ["game_date", "game_id"], (days[0], days[-1]))
    games = slate.groupby("game_date")["game_id"].nunique()
    return min(days, key=lambda d: (abs(int(games.get(d, 0)) - 10), -int(games.get(d, 0)), d))


def timed(client: httpx.Client, path: str, n: int) -> list[float]:
    for _ in range(WARM_UP):
        assert client.get(path).status_code == 200, path
    out = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(path)
        out.append(1000 * (time.perf_counter() - start))
        assert response.status_code == 200, path
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=os.environ.get("WAREHOUSE_URL", ""),
                        help="warehouse URL (default: WAREHOUSE_URL)")
    parser.add_argument("--date", default="", help="board date (default: a 10-game date with predictions)")
    parser.add_argument("--requests", type=int, default=REQUESTS)
    args = parser.parse_args()
    if not args.warehouse:
        sys.exit("give --warehouse duckdb:///PATH (or set WAREHOUSE_URL)")
    day = dt.date.fromisoformat(args.date) if args.date else ten_game_date(args.warehouse)
    games = read_columns(connect(args.warehouse), FEATURE_KEYS, ["game_date", "game_id"], (day, day))
    paths = {"board": f"/board?date={day}&market=points", "board.csv": f"/board.csv?date={day}&market=points",
             "results": f"/results?date={day}&market=points",
             "performance": f"/performance?market=points&end={day - dt.timedelta(days=1)}"}
    figures = {}
    with running(create_app(warehouse=connect(args.warehouse), poll_seconds=0)) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        rows = client.get(paths["board.csv"]).text.count("\n") - 1
        for name, path in paths.items():
            times = timed(client, path, args.requests if name == "board" else max(args.requests // 5, 5))
            figures[name] = {"median_ms": round(statistics.median(times), 1),
                             "p90_ms": round(statistics.quantiles(times, n=10)[-1], 1), "requests": len(times)}
    reads = []
    for _ in range(max(args.requests // 5, 5)):
        start = time.perf_counter()
        read_board(connect(args.warehouse), day, MARKETS["points"])
        reads.append(1000 * (time.perf_counter() - start))
    figures["board_read"] = {"median_ms": round(statistics.median(reads), 1),
                             "p90_ms": round(statistics.quantiles(reads, n=10)[-1], 1), "requests": len(reads)}
    result = {"date": str(day), "games": int(games["game_id"].nunique()), "board_rows": rows, "pages": figures,
              "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2), "python": platform.python_version()}
    print(f"board of {day}: {result['games']} games, {rows} rows")
    print(f"{'page':<12} {'median ms':>10} {'p90 ms':>8}")
    for name, f in figures.items():
        print(f"{name:<12} {f['median_ms']:>10.1f} {f['p90_ms']:>8.1f}")
    out = ROOT / "benchmarks" / "results" / "board.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
