"""Benchmark: wall time of the default train run per system and per trial, and peak memory.

Why this exists: the target is that the README's first command (install, then
``mlflow run . -e train``: build the feature store if it is empty, tune HistGBM V1, XGBoost V1 and
CatBoost V8 with Optuna, train the moving-average baseline, Ensemble V1 and Line Blend V1, log and
register all six) finishes in at most 4 minutes on 2 cores. The default train run is most of that time, so this script
measures where it goes: the run as a whole, each system's MLflow run, each Optuna trial, and the
peak resident memory of the training process.

It runs ``python cli.py train --quiet [ARGS]`` as a subprocess from the repository root, with a
fresh temporary MLflow SQLite store, artifact root and Optuna storage (``MLFLOW_TRACKING_URI``,
``MLFLOW_ARTIFACT_ROOT``, ``OPTUNA_STORAGE``), so earlier runs neither slow it nor get mixed into
its numbers. ``WAREHOUSE_URL`` is the caller's (default: ``warehouse.duckdb`` in the repository,
whose feature store is expected to be built already; an empty store would be backfilled first and
that time counted in). Measured:

* the subprocess's wall time and peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after it ends:
  the largest resident set of the process or any child it waited for) and its CPU seconds;
* per system, from the temporary MLflow store: the wall time of its top-level run (tag ``system``,
  no ``mlflow.parentRunId``), its ``val_mae`` and ``test_mae``;
* per tuned system, from the Optuna storage (the study named by the run's ``optuna_study``
  parameter): the number of trials, how many completed and how many were pruned, the median and
  the longest trial, and the tuning span (first trial start to last trial end).

It prints a table and writes ``benchmarks/results/train.json`` (``train_custom.json`` when any ARGS
are given, so a quick check never overwrites the default run's result). The machines are shared,
so the load average at the start and at the end is printed and saved with the numbers.

Run from the repository root:

    python benchmarks/train.py                                   # the README's default train run
    python benchmarks/train.py --start-date 2024-10-22 --end-date 2025-02-15 \\
        --test-start 2025-01-01 --n-trials 2                     # a quick check (a few minutes)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# this file is named like ``training/train.py``'s module: benchmarks/ must not shadow anything, root first
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

import settings  # noqa: E402
from cli import build_parser  # noqa: E402
from contracts import SYSTEMS  # noqa: E402
from registry.tracking import project_experiment  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"
TARGET_README_SECONDS = 4 * 60.0  # the README's first command, install and backfill included (issue 17)
PROGRESS_PREFIXES = ("Downloading artifacts",)  # MLflow's own progress bars, not echoed


@dataclass
class SystemTiming:
    system: str
    run_id: str
    wall_seconds: float
    val_mae: float | None
    test_mae: float | None
    started_ms: int = 0  # the run's start, epoch milliseconds
    study: str = ""
    trials: int = 0
    complete: int = 0
    pruned: int = 0
    other_states: dict[str, int] = field(default_factory=dict)
    trial_median_seconds: float | None = None
    trial_max_seconds: float | None = None
    tuning_seconds: float | None = None  # first trial start .. last trial end
    trial_durations: list[dict[str, Any]] = field(default_factory=list)  # number, state, seconds


@dataclass
class Measured:
    returncode: int
    wall_seconds: float
    peak_rss_kib: int
    cpu_user_seconds: float
    cpu_system_seconds: float
    started_at: float  # epoch seconds, to place the first system run after start-up


def run_train(command: list[str], env: dict[str, str]) -> tuple[Measured, list[str]]:
    """Run ``command`` from the repository root, echoing its output indented (less progress bars);
    time it, and read the peak RSS and CPU time of the children this process has waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started_at = time.time()
    start = time.perf_counter()
    lines: list[str] = []
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            text = line.rstrip("\n")
            if text.strip() and not text.startswith(PROGRESS_PREFIXES):  # tqdm redraws arrive as lines
                lines.append(text)
                print(f"  | {text}", flush=True)
        returncode = proc.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Measured(returncode, wall, after.ru_maxrss, after.ru_utime - before.ru_utime,
                    after.ru_stime - before.ru_stime, started_at), lines


def read_systems(tracking_uri: str, experiment_name: str) -> list[SystemTiming]:
    """Each system's top-level run in the experiment: its wall time and validation and test MAE."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise SystemExit(f"the temporary MLflow store has no experiment {experiment_name!r}")
    runs = client.search_runs([experiment.experiment_id], max_results=10_000)
    timings: list[SystemTiming] = []
    for run in runs:
        tags = run.data.tags
        if "system" not in tags or "mlflow.parentRunId" in tags:
            continue
        end = run.info.end_time or run.info.start_time
        metrics = run.data.metrics
        timing = SystemTiming(tags["system"], run.info.run_id, (end - run.info.start_time) / 1000.0,
                              metrics.get("val_mae"), metrics.get("test_mae"), run.info.start_time,
                              study=run.data.params.get("optuna_study", ""))
        timings.append(timing)
    order = {s: i for i, s in enumerate(SYSTEMS)}
    return sorted(timings, key=lambda t: (order.get(t.system, len(order)), t.started_ms))


def add_trials(timings: list[SystemTiming], storage_url: str) -> None:
    """Fill each tuned system's trial counts and durations from its Optuna study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(storage_url)
    names = {s.study_name for s in optuna.get_all_study_summaries(storage=storage)}
    for timing in timings:
        if not timing.study:
            continue
        if timing.study not in names:
            raise SystemExit(f"{timing.system}'s run names study {timing.study!r}, which is not in {storage_url}")
        study = optuna.load_study(study_name=timing.study, storage=storage)
        states: dict[str, int] = {}
        seconds: list[float] = []
        starts: list[dt.datetime] = []
        ends: list[dt.datetime] = []
        for trial in study.get_trials(deepcopy=False):
            state = trial.state.name
            states[state] = states.get(state, 0) + 1
            duration = trial.duration.total_seconds() if trial.duration is not None else None
            timing.trial_durations.append({"number": trial.number, "state": state,
                                         "seconds": round(duration, 3) if duration is not None else None})
            if duration is not None:
                seconds.append(duration)
            if trial.datetime_start is not None:
                starts.append(trial.datetime_start)
            if trial.datetime_complete is not None:
                ends.append(trial.datetime_complete)
        timing.trials = sum(states.values())
        timing.complete = states.pop("COMPLETE", 0)
        timing.pruned = states.pop("PRUNED", 0)
        timing.other_states = states
        if seconds:
            timing.trial_median_seconds = statistics.median(seconds)
            timing.trial_max_seconds = max(seconds)
        if starts and ends:
            timing.tuning_seconds = (max(ends) - min(starts)).total_seconds()


def _cell(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(timings: list[SystemTiming]) -> str:
    header = (f"{'system':<15} {'wall s':>8} {'tuning s':>9} {'trials':>6} {'complete':>8} {'pruned':>6} "
              f"{'median trial s':>14} {'max trial s':>11} {'val_mae':>8} {'test_mae':>8}")
    rows = [header, "-" * len(header)]
    for t in timings:
        tuned = bool(t.study)
        rows.append(
            f"{t.system:<15} {t.wall_seconds:>8.1f} {_cell(t.tuning_seconds, '.1f'):>9} "
            f"{_cell(t.trials if tuned else None, 'd'):>6} {_cell(t.complete if tuned else None, 'd'):>8} "
            f"{_cell(t.pruned if tuned else None, 'd'):>6} {_cell(t.trial_median_seconds, '.1f'):>14} "
            f"{_cell(t.trial_max_seconds, '.1f'):>11} {_cell(t.val_mae, '.3f'):>8} {_cell(t.test_mae, '.3f'):>8}")
    return "\n".join(rows)


def _loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main(argv: Sequence[str] | None = None) -> int:
    extra = list(sys.argv[1:] if argv is None else argv)
    # the train command's own parser: a bad flag stops here, and the experiment name is the one it uses
    args = build_parser().parse_args(["train", "--quiet", *extra])
    args.experiment_name = project_experiment(args.experiment_name)
    if args.optuna_storage:
        raise SystemExit("--optuna-storage is not allowed here: the benchmark gives the run a fresh storage")
    command = [sys.executable, "cli.py", "train", "--quiet", *extra]
    shown = ["python", "cli.py", "train", "--quiet", *extra]
    result_path = RESULTS_DIR / ("train_custom.json" if extra else "train.json")
    cores = os.cpu_count()
    load_start = _loadavg()
    print(f"command: {' '.join(shown)}")
    print(f"warehouse: {settings.warehouse_url()}; {cores} cores; load average at start "
          f"{' '.join(f'{v:.2f}' for v in load_start)} (1, 5, 15 min)")

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        folder = Path(tmp)
        tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
        optuna_storage = f"sqlite:///{folder / 'optuna.db'}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
               "MLFLOW_ARTIFACT_ROOT": (folder / "artifacts").as_uri(), "OPTUNA_STORAGE": optuna_storage}
        env.pop("MLFLOW_RUN_ID", None)  # never log into a caller's active run
        env.pop("MLFLOW_EXPERIMENT_ID", None)
        measured, output = run_train(command, env)
        load_end = _loadavg()
        if measured.returncode != 0:
            print(f"FAIL: train exited with status {measured.returncode} after {measured.wall_seconds:.1f} s; "
                  f"nothing written", file=sys.stderr)
            return 1
        timings = read_systems(tracking_uri, args.experiment_name)
        add_trials(timings, optuna_storage)

    peak_mib = measured.peak_rss_kib / 1024
    first_start = min((t.started_ms for t in timings), default=None)
    startup = first_start / 1000.0 - measured.started_at if first_start is not None else None
    systems_total = sum(t.wall_seconds for t in timings)
    cpu = measured.cpu_user_seconds + measured.cpu_system_seconds

    print()
    print(render(timings))
    print(f"\ntotal wall {measured.wall_seconds:.1f} s ({measured.wall_seconds / 60:.1f} min): system runs "
          f"{systems_total:.1f} s, start-up until the first run {_cell(startup, '.1f')} s, "
          f"rest {measured.wall_seconds - systems_total - (startup or 0):.1f} s")
    print(f"peak memory (max RSS) {peak_mib:,.0f} MB ({peak_mib / 1024:.2f} GiB); CPU {cpu:.1f} s "
          f"({cpu / measured.wall_seconds:.2f} cores busy on average)")
    print(f"load average at start {' '.join(f'{v:.2f}' for v in load_start)}, at end "
          f"{' '.join(f'{v:.2f}' for v in load_end)} (1, 5, 15 min; {cores} cores)")
    share = measured.wall_seconds / TARGET_README_SECONDS
    print(f"target: the README's first command <= {TARGET_README_SECONDS / 60:.0f} min on 2 cores; this train "
          f"run alone uses {share:.0%} of it")

    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "argv": shown,
        "extra_args": extra,
        "experiment_name": args.experiment_name,
        "warehouse": settings.warehouse_url(),
        "python": platform.python_version(),
        "machine": {"processor": platform.processor() or platform.machine(), "cpu_count": cores,
                    "platform": platform.platform()},
        "load_average": {"start": load_start, "end": load_end},
        "systems": [{**asdict(t), "wall_seconds": round(t.wall_seconds, 3),
                     "tuning_seconds": None if t.tuning_seconds is None else round(t.tuning_seconds, 3),
                     "trial_median_seconds": None if t.trial_median_seconds is None
                     else round(t.trial_median_seconds, 3),
                     "trial_max_seconds": None if t.trial_max_seconds is None else round(t.trial_max_seconds, 3)}
                    for t in timings],
        "totals": {
            "wall_seconds": round(measured.wall_seconds, 3),
            "system_runs_seconds": round(systems_total, 3),
            "startup_seconds": None if startup is None else round(startup, 3),
            "peak_rss_kib": measured.peak_rss_kib,
            "peak_rss_mb": round(peak_mib, 1),
            "cpu_user_seconds": round(measured.cpu_user_seconds, 3),
            "cpu_system_seconds": round(measured.cpu_system_seconds, 3),
            "trials": sum(t.trials for t in timings),
            "target_readme_seconds": TARGET_README_SECONDS,
        },
        "train_output_tail": output[-12:],
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {result_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
