"""Benchmark: the worker under load while things go wrong around it (issue 9).

Why this exists: the hardening issue asks that one failing part never takes the service down. This
script shows it on loopback, with real processes: the worker (uvicorn, as ``serve`` runs it) answers
10,000 requests at concurrency 32 while

* the production alias of ``xgboost_v1`` is moved between two versions ten times, each followed by
  ``POST /reload`` (which also empties the feature cache, so the store is read again);
* a backfill in another process rewrites the feature rows of the dates being served (DuckDB's
  write lock: the worker's reads must wait briefly, never fail);
* ``catboost_v8``'s production version is broken: it loads but cannot predict.

Requests are half ``games`` lookups in the feature store, half one-row ``table`` requests, every one
answered by all loaded systems. The healthy systems (``moving_average``, ``xgboost_v1``) must answer
every request: any 5xx, transport error or answer without them counts as an error.

A second run (issue 15 row 3) serves ``cli.py serve`` from a store of four seasons and sends
``SPREAD_REQUESTS`` requests at concurrency 32, each naming ``SPREAD_DATES_PER_REQUEST`` player-games
on as many dates drawn from ``SPREAD_DATES`` distinct dates, far more than the 64-date feature cache
holds: 0 errors, p99 reported. Then, with another 32 such requests in flight, ``serve`` gets
SIGTERM and must have exited within ``STOP_SECONDS``.

Everything lives in a temporary folder: a DuckDB store backfilled from the shipped 2024-25 box
scores (2025-01-01 .. 2025-01-31), another of the 2021-22 .. 2024-25 seasons, a SQLite registry with
small models fitted here (an XGBoost of 30 trees, a moving average), no network beyond 127.0.0.1.
Run from the repository root:

    python benchmarks/load_fault.py
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# benchmarks/serving.py is named like the ``serving`` package: the root must come first on the path
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

import settings  # noqa: E402
from contracts import CATBOOST_V8, MOVING_AVERAGE, PRODUCTION_ALIAS, XGBOOST_V1  # noqa: E402
from features.definitions import FEATURE_NAMES, feature_names  # noqa: E402
from markets import MARKETS  # noqa: E402
from serving.worker import SHUTDOWN_SECONDS  # noqa: E402

POINTS_FEATURES = feature_names(MARKETS["points"])
from features.store import read_store  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "load_fault.json"
SEASON = settings.BOX_SCORES_DEFAULT / "player_logs_2024-25.csv.gz"
START, END = dt.date(2025, 1, 1), dt.date(2025, 1, 31)
REQUESTS, CONCURRENCY, SWAPS = 10_000, 32, 10
HEALTHY = (MOVING_AVERAGE, XGBOOST_V1)
BROKEN = CATBOOST_V8
TOKEN = "load-fault"
REQUEST_TIMEOUT_SECONDS = 60.0
SEASONS = settings.BOX_SCORES_DEFAULT / "player_logs_202[1-4]-*.csv.gz"  # 2021-22 .. 2024-25: 650 game dates
SPREAD_REQUESTS, SPREAD_DATES, SPREAD_DATES_PER_REQUEST = 2_000, 500, 20
STOP_SECONDS = 5.0
START_SECONDS = 120.0
SEED = 20250110


def log(message: str) -> None:
    print(message, flush=True)


# --- setup: a store, a registry, three systems -------------------------------------------------
def build_store(url: str, box_scores: Path = SEASON, start: dt.date | None = START,
                end: dt.date | None = END) -> None:
    from features.backfill import backfill
    from warehouse import connect

    backfill(connect(url), box_scores, None, start, end, progress=False)


def register_systems(root: Path, store_url: str) -> dict[str, list[str]]:
    """Two versions of xgboost_v1 (30 and 40 trees), a moving average, and a catboost_v8 version
    that loads but cannot predict; returns the versions of each."""
    import mlflow
    import xgboost as xgb
    from mlflow.tracking import MlflowClient

    from registry import probability
    from registry.points_model import PYFUNC_ENTRY, write_meta
    from warehouse import connect

    rows = read_store(connect(store_url), START, END)
    x, y = rows[POINTS_FEATURES].to_numpy(float), rows["points"].to_numpy(float)
    client = MlflowClient()
    experiment = client.create_experiment("load-fault", artifact_location=(root / "artifacts").as_uri())
    versions: dict[str, list[str]] = {}

    def register(system: str, folder: Path, meta: dict[str, Any], predicted: np.ndarray | None) -> None:
        fitted = probability.fit("normal", y, predicted if predicted is not None else np.full(len(y), y.mean()))
        write_meta(folder, {**meta, "system": system, "features": POINTS_FEATURES, "probability": fitted})
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_ENTRY), pip_requirements=[],
                                           artifacts={"bundle": str(folder)}, registered_model_name=system)
        versions.setdefault(system, []).append(str(info.registered_model_version))
        client.set_registered_model_alias(system, PRODUCTION_ALIAS, str(info.registered_model_version))

    for trees in (40, 30):  # the last registered (30 trees) starts in production
        booster = xgb.train({"max_depth": 4, "eta": 0.1, "nthread": 1, "seed": SEED}, xgb.DMatrix(x, y), trees)
        folder = root / f"xgboost-{trees}"
        folder.mkdir()
        booster.save_model(str(folder / "model.json"))
        register(XGBOOST_V1, folder, {"kind": "xgboost", "model_file": "model.json"}, booster.inplace_predict(x))
    average = {"kind": "moving_average", "columns": ["points_avg_last_10", "points_avg_season"], "fallback": 8.0}
    register(MOVING_AVERAGE, root / "moving-average", average, None)
    # loads (its meta is well formed) but every prediction fails: the fallback is not a number
    register(BROKEN, root / "broken", {**average, "fallback": "n/a"}, None)
    return versions


# --- the load -------------------------------------------------------------------------------------
def request_bodies(store_url: str) -> list[tuple[str, bytes]]:
    from warehouse import connect

    rows = read_store(connect(store_url), START, END)
    rng = np.random.default_rng(SEED)
    picked = rows.iloc[rng.integers(0, len(rows), REQUESTS)]
    bodies = []
    for i, (_, row) in enumerate(picked.iterrows()):
        if i % 2:
            values = [None if np.isnan(v) else float(v) for v in row[list(FEATURE_NAMES)].to_numpy(float)]
            bodies.append(("table", json.dumps({"table": {"columns": list(FEATURE_NAMES), "data": [values]}})))
        else:
            bodies.append(("games", json.dumps({"games": [{"player_id": int(row.player_id),
                                                            "game_date": str(row.game_date)}]})))
    return [(kind, body.encode()) for kind, body in bodies]


def spread_bodies(store_url: str, count: int) -> list[tuple[str, bytes]]:
    """``count`` requests, each one player-game on each of ``SPREAD_DATES_PER_REQUEST`` dates drawn
    from the first ``SPREAD_DATES`` game dates of the store."""
    from warehouse import connect

    rows = read_store(connect(store_url))[["player_id", "game_date"]]
    dates = sorted(rows["game_date"].unique())[:SPREAD_DATES]
    by_date = {day: group["player_id"].to_numpy() for day, group in rows.groupby("game_date")}
    rng = np.random.default_rng(SEED + 1)
    bodies = []
    for _ in range(count):
        picked = rng.choice(len(dates), SPREAD_DATES_PER_REQUEST, replace=False)
        games = [{"player_id": int(rng.choice(by_date[dates[i]])), "game_date": str(dates[i])} for i in picked]
        bodies.append(("games", json.dumps({"games": games}).encode()))
    return bodies


async def spread_load(url: str, bodies: list[tuple[str, bytes]]) -> dict[str, Any]:
    """``bodies`` at ``CONCURRENCY``; every answer must hold every game, from the healthy systems."""
    gate = asyncio.Semaphore(CONCURRENCY)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()

    async def one(http: httpx.AsyncClient, body: bytes) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                response = await http.post(f"{url}/predict", content=body, headers={"content-type": "application/json"})
            except httpx.HTTPError as exc:
                errors[exc.__class__.__name__] += 1
                return
            statuses[str(response.status_code)] += 1
            if response.status_code != 200:
                errors[f"HTTP {response.status_code}"] += 1
                return
            answer = response.json()
            if len(answer["predictions"]) != SPREAD_DATES_PER_REQUEST or not healthy_answered("games", answer):
                errors["a game or a healthy system missing from a 200"] += 1
                return
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=CONCURRENCY + 2, max_keepalive_connections=CONCURRENCY + 2,
                          keepalive_expiry=2.0)
    async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_SECONDS) as http:
        started = time.perf_counter()
        await asyncio.gather(*(one(http, body) for _, body in bodies))
        seconds = time.perf_counter() - started
    return {"latencies": latencies, "statuses": dict(statuses), "errors": dict(errors), "seconds": seconds}


async def stop_in_flight(url: str, serve: subprocess.Popen, bodies: list[tuple[str, bytes]]) -> dict[str, Any]:
    """Send ``bodies`` at once; when the first is answered (the worker is busy with the others), SIGTERM
    ``serve`` and time its exit."""
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS) as http:
        flying = [asyncio.ensure_future(http.post(f"{url}/predict", content=body,
                                                  headers={"content-type": "application/json"}))
                  for _, body in bodies]
        await asyncio.wait(flying, return_when=asyncio.FIRST_COMPLETED)
        pending = sum(not f.done() for f in flying)
        started = time.perf_counter()
        serve.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(serve.wait, STOP_SECONDS * 4)
        except subprocess.TimeoutExpired:
            code = None
        seconds = time.perf_counter() - started
        await asyncio.gather(*flying, return_exceptions=True)
    return {"in_flight_at_sigterm": pending, "exit": code, "seconds": round(seconds, 2)}


def healthy_answered(kind: str, answer: dict[str, Any]) -> bool:
    if kind == "table":
        return all(s in answer["columns"] for s in HEALTHY)
    return all(s in p["systems"] for p in answer["predictions"] for s in HEALTHY) and bool(answer["predictions"])


async def load(url: str, bodies: list[tuple[str, bytes]], versions: list[str]) -> dict[str, Any]:
    """``bodies`` at ``CONCURRENCY``; the alias moves after every tenth of them is answered."""
    from mlflow.tracking import MlflowClient

    gate = asyncio.Semaphore(CONCURRENCY)
    latencies: dict[str, list[float]] = {"games": [], "table": []}
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    seen_versions: Counter[str] = Counter()
    broken_reported = 0
    done = 0
    swaps: list[dict[str, Any]] = []
    client = MlflowClient()

    async def one(http: httpx.AsyncClient, kind: str, body: bytes) -> None:
        nonlocal done, broken_reported
        async with gate:
            started = time.perf_counter()
            try:
                response = await http.post(f"{url}/predict", content=body, headers={"content-type": "application/json"})
            except httpx.HTTPError as exc:
                errors[exc.__class__.__name__] += 1
                return
            finally:
                done += 1
            statuses[str(response.status_code)] += 1
            if response.status_code != 200:
                errors[f"HTTP {response.status_code}"] += 1
                return
            answer = response.json()
            if not healthy_answered(kind, answer):
                errors["a healthy system missing from a 200"] += 1
                return
            latencies[kind].append(time.perf_counter() - started)
            broken_reported += BROKEN in answer["errors"]
            version = (answer["columns"][XGBOOST_V1]["version"] if kind == "table"
                       else answer["predictions"][0]["systems"][XGBOOST_V1]["version"])
            seen_versions[version] += 1

    async def swapper(http: httpx.AsyncClient) -> None:
        for k in range(SWAPS):
            while done < (k + 1) * REQUESTS // (SWAPS + 1):
                await asyncio.sleep(0.02)  # a benchmark's pacing, not a test's synchronisation
            target = versions[k % len(versions)]
            started = time.perf_counter()
            await asyncio.to_thread(client.set_registered_model_alias, XGBOOST_V1, PRODUCTION_ALIAS, target)
            response = await http.post(f"{url}/reload", headers={"Authorization": f"Bearer {TOKEN}"})
            swaps.append({"to": target, "status": response.status_code, "changes": response.json().get("changes"),
                          "seconds": round(time.perf_counter() - started, 3)})

    # idle connections are dropped before uvicorn closes them (5 s), so none is reused as it closes
    limits = httpx.Limits(max_connections=CONCURRENCY + 2, max_keepalive_connections=CONCURRENCY + 2,
                          keepalive_expiry=2.0)
    async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_SECONDS) as http:
        started = time.perf_counter()
        await asyncio.gather(swapper(http), *(one(http, kind, body) for kind, body in bodies))
        seconds = time.perf_counter() - started
    return {"latencies": latencies, "statuses": dict(statuses), "errors": dict(errors), "seconds": seconds,
            "swaps": swaps, "xgboost_versions_answered": dict(seen_versions),
            "broken_reported_in_answers": broken_reported}


# --- processes ------------------------------------------------------------------------------------
def start_worker(env: dict[str, str], log_path: Path, serve: bool = False) -> tuple[subprocess.Popen, str]:
    """The worker alone (uvicorn, as ``serve`` configures it), or ``cli.py serve`` as operators run it."""
    from serving.local import free_port

    port = free_port()
    command = ([sys.executable, "cli.py", "serve", "--port", str(port), "--poll", "3600"] if serve else
               [sys.executable, "-m", "uvicorn", "serving.worker:create_app", "--factory", "--log-level", "warning",
                "--timeout-graceful-shutdown", str(SHUTDOWN_SECONDS), "--host", "127.0.0.1", "--port", str(port)])
    with log_path.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)  # polling a starting server, bounded by the deadline
    proc.kill()
    raise SystemExit(f"the worker did not answer /health in {START_SECONDS:.0f} s")


def ended_at(proc: subprocess.Popen, into: list[float]) -> None:
    proc.wait()
    into.append(time.perf_counter())


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 2) if values else None


def spread_run(workdir: Path, env: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The second run: ``cli.py serve`` over four seasons, requests spread over ``SPREAD_DATES`` dates,
    then SIGTERM with requests in flight."""
    store_url = f"duckdb:///{workdir / 'seasons.duckdb'}"
    log(f"spread: backfill {SEASONS.name} into another store ...")
    build_store(store_url, SEASONS, None, None)
    bodies = spread_bodies(store_url, SPREAD_REQUESTS + CONCURRENCY)
    serve, url = start_worker({**env, "WAREHOUSE_URL": store_url}, workdir / "serve.log", serve=True)
    try:
        log(f"spread: {SPREAD_REQUESTS:,} requests at concurrency {CONCURRENCY}, {SPREAD_DATES_PER_REQUEST} dates "
            f"each out of {SPREAD_DATES} ...")
        spread = asyncio.run(spread_load(url, bodies[:SPREAD_REQUESTS]))
        stopped = asyncio.run(stop_in_flight(url, serve, bodies[SPREAD_REQUESTS:]))
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(timeout=30)
    return spread, stopped


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="load-fault-"))
    store_url = f"duckdb:///{workdir / 'warehouse.duckdb'}"
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    env = {**os.environ, "WAREHOUSE_URL": store_url, "MLFLOW_TRACKING_URI": tracking, "WORKER_TOKEN": TOKEN,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    os.environ.update(MLFLOW_TRACKING_URI=tracking, WAREHOUSE_URL=store_url)

    log(f"setup in {workdir}: backfill {START} .. {END} from {SEASON.name}, register the systems ...")
    build_store(store_url)
    versions = register_systems(workdir, store_url)
    bodies = request_bodies(store_url)
    worker, url = start_worker(env, workdir / "worker.log")
    try:
        before = httpx.get(f"{url}/").json()
        log(f"worker serving {sorted(before['systems'])}; reported: {sorted(before['errors'])}")
        backfill_log = (workdir / "backfill.log").open("wb")
        backfill_started = time.perf_counter()
        backfill = subprocess.Popen([sys.executable, "cli.py", "backfill", "--box-scores", str(SEASON), "--lines",
                                     "none", "--start-date", str(START), "--end-date", str(END), "--quiet"],
                                    cwd=ROOT, env=env, stdout=backfill_log, stderr=subprocess.STDOUT)
        finished: list[float] = []  # when the backfill ended, to show that it overlapped the load
        watcher = threading.Thread(target=ended_at, args=(backfill, finished), daemon=True)
        watcher.start()
        log(f"load: {REQUESTS:,} requests at concurrency {CONCURRENCY}, {SWAPS} alias swaps, a backfill "
            f"writing {START} .. {END} in another process, {BROKEN} broken ...")
        result = asyncio.run(load(url, bodies, versions[XGBOOST_V1]))
        watcher.join(timeout=600)
        backfill_rc = backfill.wait(timeout=1)
        backfill_seconds = finished[0] - backfill_started
        backfill_log.close()
        health = httpx.get(f"{url}/health")
        after = httpx.get(f"{url}/").json()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    spread, stopped = spread_run(workdir, env)

    every = result["latencies"]["games"] + result["latencies"]["table"]
    error_count = sum(result["errors"].values())
    rows = [{"requests": kind, "answered": len(lat), "p50_ms": percentile(lat, 50),
             "p99_ms": percentile(lat, 99)} for kind, lat in (("games", result["latencies"]["games"]),
                                                              ("table", result["latencies"]["table"]), ("all", every))]
    five_xx = sum(n for status, n in result["statuses"].items() if status.startswith("5"))
    print(f"\n{'requests':<10} {'answered':>9} {'p50 ms':>8} {'p99 ms':>8}\n{'-' * 38}")
    for row in rows:
        print(f"{row['requests']:<10} {row['answered']:>9,} {row['p50_ms']:>8} {row['p99_ms']:>8}")
    print(f"\n5xx: {five_xx}; errors for the healthy systems: {error_count} {result['errors'] or ''}")
    print(f"{result['seconds']:.1f} s, {len(every) / result['seconds']:,.0f} answered requests/s; statuses "
          f"{result['statuses']}")
    print(f"alias swaps: {len(result['swaps'])} ({sum(s['status'] == 200 for s in result['swaps'])} reloads 200); "
          f"xgboost_v1 versions answered: {result['xgboost_versions_answered']}")
    print(f"{BROKEN} reported in {result['broken_reported_in_answers']:,} answers; /health {health.status_code} "
          f"{health.json().get('status')}; backfill exit {backfill_rc}, ended {backfill_seconds:.1f} s into the load")

    spread_errors = sum(spread["errors"].values())
    print(f"\nspread over {SPREAD_DATES} dates: {len(spread['latencies']):,} of {SPREAD_REQUESTS:,} requests of "
          f"{SPREAD_DATES_PER_REQUEST} dates answered, p50 {percentile(spread['latencies'], 50)} ms, p99 "
          f"{percentile(spread['latencies'], 99)} ms, {spread['seconds']:.1f} s; errors: {spread_errors} "
          f"{spread['errors'] or ''}")
    print(f"SIGTERM with {stopped['in_flight_at_sigterm']} requests in flight: serve exited "
          f"{stopped['exit']} after {stopped['seconds']} s (at most {STOP_SECONDS:g} s)")
    ok = (five_xx == 0 and error_count == 0 and backfill_rc == 0 and len(result["swaps"]) == SWAPS
          and spread_errors == 0 and stopped["exit"] is not None and stopped["seconds"] <= STOP_SECONDS)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "requests": REQUESTS, "concurrency": CONCURRENCY, "results": rows, "five_xx": five_xx,
        "healthy_errors": error_count, "error_kinds": result["errors"], "statuses": result["statuses"],
        "seconds": round(result["seconds"], 2), "swaps": result["swaps"],
        "xgboost_versions_answered": result["xgboost_versions_answered"],
        "broken_system": BROKEN, "broken_reported_in_answers": result["broken_reported_in_answers"],
        "health_after": {"status": health.status_code, "body": health.json()}, "errors_after": after["errors"],
        "backfill": {"exit": backfill_rc, "seconds": round(backfill_seconds, 2), "range": f"{START}..{END}"},
        "spread": {"requests": SPREAD_REQUESTS, "distinct_dates": SPREAD_DATES, "dates_per_request":
                   SPREAD_DATES_PER_REQUEST, "concurrency": CONCURRENCY, "answered": len(spread["latencies"]),
                   "p50_ms": percentile(spread["latencies"], 50), "p99_ms": percentile(spread["latencies"], 99),
                   "seconds": round(spread["seconds"], 2), "statuses": spread["statuses"],
                   "errors": spread_errors, "error_kinds": spread["errors"], "sigterm": stopped,
                   "server": "cli.py serve --workers 1"},
        "ok": ok,
        "machine": {"cpu_count": os.cpu_count(), "device": "CPU only", "platform": platform.platform(),
                    "python": platform.python_version()},
        "note": "worker (uvicorn), backfill (cli.py) and client run as separate processes on one machine",
    }, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}; {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
