"""Benchmark: the prediction worker (``serving/worker.py``) against ``mlflow models serve``.

Why this exists: the issue that asked for our own FastAPI worker, instead of running one
``mlflow models serve`` per system, justified it with three targets: a single prediction answers in
under 10 ms at the median, a batch of feature rows goes through at least 2x as fast as through
``mlflow models serve`` of the same model, and the worker serves a sustained load (10,000 requests at
concurrency 32) without a single error. This script measures all three in one process, against the
same registered model (``xgboost_v1@production``) and the same requests, so the comparison is not
thrown off by a different machine or a different day:

* both servers get identical feature rows of the 2024-25 test season (the feature store's rows of
  2025-01-10 .. 2025-01-20, 33 features, null where the store has no value), pre-encoded as JSON so
  that the client's encoding is not part of either server's time;
* before timing, every one of those rows is sent to both and the xgboost predictions must agree
  within 1e-3 (the script exits 1 otherwise: a fast server that answers differently is no result);
* single-prediction latency (1 row per request, one persistent connection to each server) and batch
  throughput (500 rows per request), the two servers taking turns on the same bodies
  (``alternating``), so that the machine's drift during the run weighs on both alike; where a
  batch's time goes inside the worker, its stages timed in this process in the same turns; the
  worker's default path (a ``(player_id, game_date)`` looked up in the feature store and answered by
  every loaded system) and a load run against each server.

Both servers run as their own processes (the worker under uvicorn, as ``serve`` runs it), so the
client's work is not charged to either.

Needs production aliases in the registry named by ``MLFLOW_TRACKING_URI`` (``cli.py promote``) and
the feature store in the default warehouse. Run from the repository root:

    MLFLOW_TRACKING_URI=sqlite:///PATH/mlflow.db python benchmarks/serving.py
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# this file is named like the ``serving`` package: benchmarks/ must not shadow it, the root goes first
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from contracts import PRODUCTION_ALIAS  # noqa: E402
from features.definitions import feature_names  # noqa: E402
from features.store import read_store  # noqa: E402
from markets import MARKETS  # noqa: E402
from serving.local import free_port  # noqa: E402
from warehouse import connect  # noqa: E402

SYSTEM = "xgboost_v1"
START, END = dt.date(2025, 1, 10), dt.date(2025, 1, 20)
RESULTS = ROOT / "benchmarks" / "results" / "serving.json"

SINGLE_WARMUP, SINGLE_REQUESTS = 20, 300
TURN = 10  # consecutive bodies each server answers before the other's turn (``alternating``)
BATCH_ROWS, BATCH_WARMUP, BATCH_REQUESTS = 500, 3, 100
LOAD_REQUESTS, LOAD_CONCURRENCY, LOAD_DEADLINE_SECONDS = 10_000, 32, 600.0
REQUEST_TIMEOUT_SECONDS = 60.0
MLFLOW_START_SECONDS = 180.0
TOLERANCE = 1e-3
SEED = 20250110
BATCH_STAGES = ("validate the JSON body (pydantic-core)", "the feature matrix (NumPy from the Python floats)",
                "predict and price (XGBoost, probabilities, calls)", "encode the answer (pydantic-core)")
# the model's own inputs, what a client of the points market sends (the store holds every market's features)
FEATURES = feature_names(MARKETS["points"])
LINE = FEATURES.index("vegas_points_line")

# issue 17's targets
TARGET_SINGLE_P50_MS = 1.5
TARGET_BATCH_RATIO = 4.0
TARGET_LOAD_P99_MS = 50.0
TARGET_LOAD_RATIO = 3.0

JSON_HEADERS = {"content-type": "application/json"}


# --- data ---------------------------------------------------------------------------------------
def _value(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def load_rows() -> tuple[list[list[float | None]], list[dict[str, Any]]]:
    """Feature rows (33 floats, NaN as None) and their (player_id, game_date) keys, in a fixed
    shuffled order so that every batch mixes dates (and so holds rows with a points line)."""
    store = read_store(connect(), START, END)
    if store.empty:
        raise SystemExit(f"the feature store has no rows for {START} .. {END}: run the backfill first")
    store = store.iloc[np.random.default_rng(SEED).permutation(len(store))].reset_index(drop=True)
    matrix = store[list(FEATURES)].astype(float).to_numpy()
    rows = [[_value(v) for v in row] for row in matrix]
    games = [{"player_id": int(p), "game_date": str(d)[:10]} for p, d in zip(store["player_id"], store["game_date"],
                                                                             strict=True)]
    return rows, games


def ours_payload(rows: Sequence[list[float | None]]) -> bytes:
    """The worker's request: feature rows as a table (columns named once, as in MLflow's
    ``dataframe_split``), answered by the one system under test."""
    return json.dumps({"table": {"columns": list(FEATURES), "data": list(rows)}, "systems": [SYSTEM]}).encode()


def mlflow_payload(rows: Sequence[list[float | None]]) -> bytes:
    return json.dumps({"dataframe_split": {"columns": list(FEATURES), "data": list(rows)}}).encode()


def games_payload(game: dict[str, Any]) -> bytes:
    return json.dumps({"games": [game]}).encode()


def cycle(items: Sequence[Any], count: int, size: int = 1) -> list[list[Any]]:
    """``count`` consecutive slices of ``size`` items, wrapping around ``items``."""
    n = len(items)
    return [[items[(i * size + j) % n] for j in range(size)] for i in range(count)]


# --- servers ------------------------------------------------------------------------------------
@contextmanager
def server_process(name: str, command: list[str], ready_path: str, log: Path) -> Iterator[str]:
    """Run ``command`` (which must listen on the port it is given) until the block ends; yields the
    base URL once ``ready_path`` answers 200."""
    port = free_port()
    while not _free(port + 1):  # serve's coordinator listens on the next port
        port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + MLFLOW_START_SECONDS
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}:\n{_tail(log)}")
            try:
                if httpx.get(f"{url}{ready_path}", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not answer {ready_path} in {MLFLOW_START_SECONDS:.0f} s:\n{_tail(log)}")
            time.sleep(0.5)  # polling a starting server's readiness endpoint, bounded by the deadline
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def mlflow_serve(processes: int) -> list[str]:
    return ["mlflow", "models", "serve", "-m", f"models:/{SYSTEM}@{PRODUCTION_ALIAS}", "--env-manager", "local",
            "--workers", str(processes), "--host", "127.0.0.1", "-p"]


def worker_serve(processes: int) -> list[str]:
    """The worker as users start it (``serve``, which also runs the coordinator on the next port)."""
    return [sys.executable, "cli.py", "serve", "--host", "127.0.0.1", "--workers", str(processes), "--port"]


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# --- requests -----------------------------------------------------------------------------------
def post(client: httpx.Client, url: str, body: bytes) -> dict[str, Any]:
    response = client.post(url, content=body, headers=JSON_HEADERS)
    if response.status_code != 200:
        raise SystemExit(f"POST {url} answered {response.status_code}: {response.text[:500]}")
    return response.json()


def ours_predictions(answer: dict[str, Any]) -> list[float]:
    return answer["columns"][SYSTEM]["predicted_points"]


def mlflow_predictions(answer: dict[str, Any]) -> list[float]:
    return [float(p) for p in answer["predictions"]]


def check_agreement(client: httpx.Client, ours: str, theirs: str, rows: list[list[float | None]]) -> float:
    """Largest |difference| between the two servers' predictions for every benchmark row."""
    a = np.asarray(ours_predictions(post(client, f"{ours}/predict", ours_payload(rows))), dtype=float)
    b = np.asarray(mlflow_predictions(post(client, f"{theirs}/invocations", mlflow_payload(rows))), dtype=float)
    if a.shape != b.shape:
        raise SystemExit(f"the worker answered {a.shape[0]} predictions, mlflow models serve {b.shape[0]}")
    return float(np.max(np.abs(a - b)))


class Connection:
    """One keep-alive HTTP/1.1 connection sending pre-encoded POSTs and reading each answer whole.

    Why not httpx for the timed runs: its per-request Python costs about as much CPU as the worker's
    own answer, and the client shares the machine's cores with the server under test, so it would be
    measured as much as the servers. This client costs a few tens of microseconds a request; both
    servers get the same one. (httpx still checks the answers before timing: ``check_agreement``.)"""

    def __init__(self, url: str, path: str) -> None:
        parts = httpx.URL(url)
        self.host, self.port = parts.host, parts.port
        self.head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                     "Content-Type: application/json\r\nContent-Length: ").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """The status and body of one POST; a connection the server closed is opened again."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                self.writer.close()
        if length is None:
            raise ConnectionError("an answer without Content-Length")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Served:
    """One server's part of an alternating run: its i-th body POSTed on its own keep-alive connection;
    every answer must be a 200 with as many predictions as its first."""

    def __init__(self, url: str, path: str, bodies: list[bytes]) -> None:
        self.where, self.bodies = f"{url}{path}", bodies
        self.connection = Connection(url, path)
        self.expected: int | None = None

    async def __call__(self, i: int) -> float:
        start = time.perf_counter()
        status, answer = await self.connection.post(self.bodies[i])
        elapsed = time.perf_counter() - start
        if status != 200:
            raise SystemExit(f"POST {self.where} answered {status}: {answer[:500]!r}")
        count = answered(json.loads(answer))
        if self.expected is None:
            self.expected = count
        elif count != self.expected:
            raise SystemExit(f"{self.where} answered {count} predictions where earlier requests got {self.expected}")
        return elapsed

    def close(self) -> None:
        self.connection.close()


class Stages:
    """The stages of ``POST /predict`` for a table, run in this process on a served body, with the
    production model loaded as a worker process loads it; each call's split is kept in ``splits``."""

    def __init__(self, bodies: list[bytes]) -> None:
        from serving import worker
        from serving.models import ProductionModels

        self.worker, self.bodies, self.market = worker, bodies, MARKETS["points"]
        self.models = ProductionModels((self.market.registered_name(SYSTEM),))
        self.models.refresh()
        self.splits: dict[int, list[float]] = {}

    async def __call__(self, i: int) -> float:
        worker = self.worker
        marks = [time.perf_counter()]
        request = worker.PredictRequest.model_validate_json(self.bodies[i])
        marks.append(time.perf_counter())
        batch = worker.table_batch(request.table, request.market)
        marks.append(time.perf_counter())
        columns, _ = worker.predict_columns(self.models, batch, self.market, request.systems)
        marks.append(time.perf_counter())
        worker.answer_json({"columns": columns, "errors": {}})
        marks.append(time.perf_counter())
        self.splits[i] = [end - start for start, end in itertools.pairwise(marks)]
        return marks[-1] - marks[0]

    def medians(self, warmup: int) -> dict[str, float]:
        """Median ms of each stage over the bodies whose served times count (``counted``)."""
        kept = [split for i, split in self.splits.items() if counted(i, warmup)]
        return {stage: round(statistics.median(s) * 1000, 3)
                for stage, s in zip(BATCH_STAGES, zip(*kept, strict=True), strict=True)}

    def close(self) -> None:
        pass


def counted(i: int, warmup: int) -> bool:
    """Whether the i-th body's time counts: past the warm-up, and not the first of its turn."""
    return i >= warmup and i % TURN != 0


def alternating(probes: Sequence[Served | Stages], warmup: int) -> list[list[float]]:
    """The seconds of each probe on its bodies past ``warmup``, the probes taking turns in blocks of
    ``TURN`` bodies, in reverse order every other turn, the first body of each block not counted.
    Why: the machine's speed drifts within a run (a shared host), and measured one server after the
    other that drift goes into the ratio; taking turns, it weighs on both alike. Why blocks, and not
    every other request: a server leaves work running for a while after its answer (XGBoost's
    OpenMP threads spin), which the next request pays for; the first of a block is that request."""

    async def run() -> list[list[float]]:
        seconds: list[list[float]] = [[] for _ in probes]
        order = list(range(len(probes)))
        try:
            for turn, start in enumerate(range(0, len(probes[0].bodies), TURN)):
                for k in order if turn % 2 == 0 else order[::-1]:
                    for i in range(start, min(start + TURN, len(probes[k].bodies))):
                        elapsed = await probes[k](i)
                        if counted(i, warmup):
                            seconds[k].append(elapsed)
        finally:
            for probe in probes:
                probe.close()
        return seconds

    return asyncio.run(run())


def answered(answer: dict[str, Any]) -> int:
    if "columns" in answer:
        return len(next(iter(answer["columns"].values()))["predicted_points"])
    return len(answer["predictions"])


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def load_run(url: str, path: str, bodies: list[bytes]) -> dict[str, Any]:
    """``bodies`` posted over ``LOAD_CONCURRENCY`` connections, each sending its next body once the
    previous one is answered; stops sending after the deadline."""

    async def run() -> dict[str, Any]:
        latencies: list[float] = []
        errors: dict[str, int] = {}
        pending = iter(bodies)
        skipped = 0
        deadline = time.monotonic() + LOAD_DEADLINE_SECONDS

        async def client() -> None:
            nonlocal skipped
            connection = Connection(url, path)
            try:
                for body in pending:
                    if time.monotonic() > deadline:
                        skipped += 1
                        continue
                    start = time.perf_counter()
                    try:
                        status, _ = await asyncio.wait_for(connection.post(body), REQUEST_TIMEOUT_SECONDS)
                    except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                        errors[exc.__class__.__name__] = errors.get(exc.__class__.__name__, 0) + 1
                        connection.close()
                        connection = Connection(url, path)
                        continue
                    if status != 200:
                        errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
                        continue
                    latencies.append(time.perf_counter() - start)
            finally:
                connection.close()

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(LOAD_CONCURRENCY)))
        total = time.perf_counter() - start
        return {"latencies": latencies, "errors": errors, "skipped": skipped, "seconds": total}

    return asyncio.run(run())


# --- report -------------------------------------------------------------------------------------
def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages: other work on a shared machine inflates every
    latency, so each figure is saved next to the load it was measured under."""
    return [round(v, 2) for v in os.getloadavg()]


def summary(server: str, test: str, seconds: list[float], total: float, rows: int,
            errors: int | None = None, load_before: list[float] | None = None) -> dict[str, Any]:
    return {"server": server, "test": test, "load_average_before": load_before, "load_average_after": load_average(),
            "requests": len(seconds), "rows_per_request": rows,
            "p50_ms": round(percentile(seconds, 50) * 1000, 3), "p99_ms": round(percentile(seconds, 99) * 1000, 3),
            "median_s": round(statistics.median(seconds), 5), "total_s": round(total, 3),
            "rows_per_s": round(len(seconds) * rows / total, 1) if total else None, "errors": errors}


def print_table(results: list[dict[str, Any]]) -> None:
    header = (f"{'server':<22} {'test':<34} {'p50 ms':>9} {'p99 ms':>9} {'rows/s':>10} {'vs mlflow':>10} "
              f"{'load avg':>9}")
    print(f"\n{header}\n{'-' * len(header)}")
    for r in results:
        ratio = f"{r['vs_mlflow']:.2f}x" if r.get("vs_mlflow") is not None else ""
        print(f"{r['server']:<22} {r['test']:<34} {r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} "
              f"{r['rows_per_s']:>10,.0f} {ratio:>10} {r['load_average_after'][0]:>9.2f}")
    print("vs mlflow: >1 = the worker is faster (latency: mlflow p50 / worker p50; batch: worker rows/s / "
          "mlflow rows/s; load: worker requests/s / mlflow requests/s); load avg: 1-minute, after the test")


def print_stages(stages: dict[str, float], served_p50_ms: float) -> None:
    """The stages and their sum beside the served p50. No "HTTP" line derived by subtraction: the
    stages run in this process, not the server's, and the two need not run at one speed."""
    print(f"\nwhere a {BATCH_ROWS}-row batch's time goes (median ms, run in this process in turn with the served "
          "batches):")
    for stage, ms in stages.items():
        print(f"  {stage:<58} {ms:>6.2f}")
    print(f"  {'the stages together':<58} {sum(stages.values()):>6.2f}")
    print(f"  {'the served p50 (the stages, HTTP and the route)':<58} {served_p50_ms:>6.2f}")


def versions() -> dict[str, str]:
    import fastapi
    import mlflow
    import pandas as pd
    import uvicorn
    import xgboost

    return {"python": platform.python_version(), "mlflow": mlflow.__version__, "fastapi": fastapi.__version__,
            "uvicorn": uvicorn.__version__, "httpx": httpx.__version__, "xgboost": xgboost.__version__,
            "pandas": pd.__version__, "numpy": np.__version__}


def load_test(server: str, url: str, path: str, bodies: list[bytes]) -> dict[str, Any]:
    before = load_average()
    load = load_run(f"{url}", path, bodies)
    error_count = sum(load["errors"].values())
    result = summary(server, f"load {LOAD_REQUESTS:,} x1 row, conc {LOAD_CONCURRENCY}",
                     load["latencies"] or [float("nan")], load["seconds"], 1, errors=error_count, load_before=before)
    result["rows_per_s"] = round(len(load["latencies"]) / load["seconds"], 1)
    result["requests_per_s"] = round((LOAD_REQUESTS - load["skipped"]) / load["seconds"], 1)
    result.update(error_kinds=load["errors"], not_sent_after_deadline=load["skipped"])
    kinds = f" {load['errors']}" if error_count else ""
    print(f"load run, {server}: {load['seconds']:.1f} s, {result['requests_per_s']:,.0f} requests/s, "
          f"p99 {result['p99_ms']:.1f} ms, {error_count} error(s){kinds}, "
          f"{load['skipped']} not sent (deadline)", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="processes of each server: serve --workers N, mlflow models serve --workers N "
                             "(default: the machine's CPUs)")
    processes = parser.parse_args().processes
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        print("note: MLFLOW_TRACKING_URI is not set; using the repository's default store", file=sys.stderr)
    rows, games = load_rows()
    print(f"feature rows: {len(rows):,} ({START} .. {END}, {sum(r[LINE] is not None for r in rows)} with a "
          f"points line), {len(FEATURES)} features; model "
          f"models:/{SYSTEM}@{PRODUCTION_ALIAS}; {os.cpu_count()} CPUs, CPU only; {processes} process(es) per server; "
          f"load average {load_average()}")

    with_line = [r for r in rows if r[LINE] is not None]
    single = cycle(with_line, SINGLE_WARMUP + SINGLE_REQUESTS)
    batches = cycle(rows, BATCH_WARMUP + BATCH_REQUESTS, BATCH_ROWS)
    load_rows_ = cycle(with_line, LOAD_REQUESTS)
    bodies = {
        "ours_single": [ours_payload(r) for r in single], "mlflow_single": [mlflow_payload(r) for r in single],
        "ours_batch": [ours_payload(b) for b in batches], "mlflow_batch": [mlflow_payload(b) for b in batches],
        "games": [games_payload(g[0]) for g in cycle(games, SINGLE_WARMUP + SINGLE_REQUESTS)],
        "ours_load": [ours_payload(r) for r in load_rows_], "mlflow_load": [mlflow_payload(r) for r in load_rows_],
    }

    logs = [Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1]) for name in ("mlflow-serve", "worker")]
    with server_process("mlflow models serve", mlflow_serve(processes), "/ping", logs[0]) as theirs, \
            server_process("worker", worker_serve(processes), "/health", logs[1]) as ours, \
            httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client:
        loaded = client.get(f"{ours}/").json()
        if SYSTEM not in loaded["systems"]:
            raise SystemExit(f"the worker has no production {SYSTEM} loaded: {loaded}")
        worker_systems = sorted(loaded["systems"])
        described = ", ".join(f"{s} v{loaded['systems'][s]['version']}" for s in worker_systems)
        print(f"worker systems: {described}")

        max_diff = check_agreement(client, ours, theirs, rows)
        agree = max_diff <= TOLERANCE
        print(f"correctness: {len(rows):,} rows, max |worker - mlflow serve| = {max_diff:.2e} "
              f"(tolerance {TOLERANCE:g}) -> {'ok' if agree else 'FAIL'}")
        if not agree:
            print(f"FAIL: the worker and mlflow models serve disagree by {max_diff:.4g}", file=sys.stderr)
            return 1

        def compared(test: str, key: str, warmup: int, rows: int, *extra: Stages) -> tuple[dict, dict]:
            """The worker and mlflow models serve on the same bodies, taking turns (``alternating``)."""
            before = load_average()
            ours_s, theirs_s, *_ = alternating([Served(ours, "/predict", bodies[f"ours_{key}"]),
                                                Served(theirs, "/invocations", bodies[f"mlflow_{key}"]), *extra],
                                               warmup)
            return (summary("worker", f"{test}, {SYSTEM}", ours_s, sum(ours_s), rows, load_before=before),
                    summary("mlflow models serve", test, theirs_s, sum(theirs_s), rows, load_before=before))

        s_ours, s_mlflow = compared("single row", "single", SINGLE_WARMUP, 1)
        s_ours["vs_mlflow"] = round(s_mlflow["p50_ms"] / s_ours["p50_ms"], 3)
        stages = Stages(bodies["ours_batch"])  # where the batch's time goes, timed in turn with them
        b_ours, b_mlflow = compared(f"batch {BATCH_ROWS} rows", "batch", BATCH_WARMUP, BATCH_ROWS, stages)
        # rows/s from the median batch, as the target is stated per batch
        for b in (b_ours, b_mlflow):
            b["rows_per_s"] = round(BATCH_ROWS / b["median_s"], 1)
        b_ours["vs_mlflow"] = round(b_ours["rows_per_s"] / b_mlflow["rows_per_s"], 3)

        # one read of every date into each worker process's cache (connections spread over the processes)
        alternating([Served(ours, "/predict", [games_payload(g) for g in games[:: max(1, len(games) // 50)]]
                            * processes)], 0)
        before = load_average()
        (g_seconds,) = alternating([Served(ours, "/predict", bodies["games"])], SINGLE_WARMUP)
        g_ours = summary("worker", f"single game, all {len(worker_systems)} systems", g_seconds, sum(g_seconds), 1,
                         load_before=before)

        print(f"load runs: {LOAD_REQUESTS:,} single-row requests at concurrency {LOAD_CONCURRENCY} ...", flush=True)
        l_ours = load_test("worker", ours, "/predict", bodies["ours_load"])
        l_mlflow = load_test("mlflow models serve", theirs, "/invocations", bodies["mlflow_load"])
        l_ours["vs_mlflow"] = round(l_ours["requests_per_s"] / l_mlflow["requests_per_s"], 3)

    results = [s_ours, s_mlflow, b_ours, b_mlflow, g_ours, l_ours, l_mlflow]
    print_table(results)
    stage_ms = stages.medians(BATCH_WARMUP)
    print_stages(stage_ms, b_ours["p50_ms"])

    targets = {
        f"single-row p50 <= {TARGET_SINGLE_P50_MS:g} ms": s_ours["p50_ms"] <= TARGET_SINGLE_P50_MS,
        f"batch throughput >= {TARGET_BATCH_RATIO:g}x mlflow models serve": b_ours["vs_mlflow"] >= TARGET_BATCH_RATIO,
        f"load p99 <= {TARGET_LOAD_P99_MS:g} ms at concurrency {LOAD_CONCURRENCY}":
            l_ours["p99_ms"] <= TARGET_LOAD_P99_MS,
        f"load requests/s >= {TARGET_LOAD_RATIO:g}x mlflow models serve": l_ours["vs_mlflow"] >= TARGET_LOAD_RATIO,
        f"zero errors in the load run ({LOAD_REQUESTS:,} requests)": l_ours["errors"] == 0
        and l_ours["not_sent_after_deadline"] == 0,
    }
    print("\ntargets:")
    for name, met in targets.items():
        print(f"  {name:<58} {'met' if met else 'NOT met'}")

    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": f"models:/{SYSTEM}@{PRODUCTION_ALIAS}", "worker_systems": worker_systems,
        "processes_per_server": processes,
        "feature_rows": {"start": str(START), "end": str(END), "count": len(rows)},
        "correctness": {"max_abs_diff": max_diff, "tolerance": TOLERANCE, "ok": agree},
        "results": results,
        "batch_stages_ms": stage_ms,
        "targets": targets,
        "versions": versions(),
        "machine": {"cpu_count": os.cpu_count(), "device": "CPU only",
                    "processor": platform.processor() or platform.machine(), "platform": platform.platform()},
        "note": "both servers run in their own processes on the same machine as the client; the timed requests "
                "go through a minimal keep-alive HTTP/1.1 client (Connection), the same for both servers",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    for log in logs:
        log.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
