"""Benchmark: how long the command line takes to answer ``--help``.

Why this exists: ``python cli.py --help`` took about 3 s when every sub-command's modules (MLflow,
XGBoost, CatBoost, FastAPI) were imported before the arguments were parsed; the issue that moved those
imports into the sub-commands set a target of a median under 1 s. This script runs ``python cli.py
--help`` and ``python cli.py train --help`` as fresh processes N times each, and, as the reference of
what the old order paid, a process that only imports ``mlflow``. It prints the medians and writes
``benchmarks/results/cli_help.json``.

Run from the repository root:  python benchmarks/cli_help.py [N]   (N defaults to 15)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "cli_help.json"
TARGET_SECONDS = 1.0
COMMANDS = {
    "cli.py --help": ["cli.py", "--help"],
    "cli.py train --help": ["cli.py", "train", "--help"],
    "import mlflow (reference)": ["-c", "import mlflow"],
}


def seconds(args: list[str]) -> float:
    """Wall time of one fresh interpreter running ``args``, from start to exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(runs: int) -> dict:
    for args in COMMANDS.values():
        seconds(args)  # warm the file cache once, so the first run is not the odd one out
    timings = {name: [seconds(args) for _ in range(runs)] for name, args in COMMANDS.items()}
    result = {
        "runs": runs, "python": platform.python_version(), "cores": os.cpu_count(),
        "load_average": os.getloadavg()[0], "target_seconds": TARGET_SECONDS,
        "median_seconds": {name: round(statistics.median(t), 3) for name, t in timings.items()},
        "max_seconds": {name: round(max(t), 3) for name, t in timings.items()},
    }
    print(f"{'command':<28} {'median s':>9} {'max s':>7}   ({runs} runs each, {os.cpu_count()} cores)")
    for name in COMMANDS:
        print(f"{name:<28} {result['median_seconds'][name]:>9.3f} {result['max_seconds'][name]:>7.3f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    medians = main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)["median_seconds"]
    sys.exit(0 if max(medians["cli.py --help"], medians["cli.py train --help"]) < TARGET_SECONDS else 1)
