"""The command line: one sub-command per MLproject entry point, with the same option names.

Each sub-command parses its options, calls one typed function, and prints the result. Errors a
user can act on (bad dates, a malformed file, an unknown system) end the command with one sentence
on stderr and exit status 2, never a stack trace.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Sequence

import settings


class UsageError(ValueError):
    """A setting the user gave that cannot work; the message names it and its value."""


def parse_date(name: str, value: str | None) -> dt.date | None:
    """``YYYY-MM-DD`` or empty (MLproject passes "" for 'not given')."""
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{name} is {value!r}, expected a date YYYY-MM-DD") from None


def _empty_to_none(value: str | None) -> str | None:
    return value or None


# --- sub-commands -------------------------------------------------------------------------------
def cmd_backfill(args: argparse.Namespace) -> int:
    from features.backfill import backfill
    from warehouse import connect

    summary = backfill(
        connect(), args.box_scores or settings.BOX_SCORES_DEFAULT,
        None if args.lines == "none" else (args.lines or settings.LINES_DEFAULT),
        parse_date("start_date", args.start_date), parse_date("end_date", args.end_date),
        progress=not args.quiet)
    print(summary.render())
    return 0


def _backfill_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backfill", help="load box scores and lines, rebuild ml_feature_store_v2")
    p.add_argument("--box-scores", "--box_scores", dest="box_scores", default="",
                   help="CSV file, folder or glob in the shipped box-score schema (default: shipped data)")
    p.add_argument("--lines", default="", help="points-line files (default: shipped lines; 'none' for none)")
    p.add_argument("--start-date", "--start_date", dest="start_date", default="", help="YYYY-MM-DD")
    p.add_argument("--end-date", "--end_date", dest="end_date", default="", help="YYYY-MM-DD")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_backfill)


def _number(name: str, value: str, kind: type) -> float | int | None:
    if value in ("", "none", "None"):
        return None
    try:
        return kind(value)
    except ValueError:
        raise UsageError(f"{name} is {value!r}, expected {'an integer' if kind is int else 'a number'}") from None


def cmd_train(args: argparse.Namespace) -> int:
    from training.train import TrainConfig, train

    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip()) if args.systems else None
    config = TrainConfig(
        start_date=parse_date("start_date", args.start_date), end_date=parse_date("end_date", args.end_date),
        test_start=parse_date("test_start", args.test_start),
        n_trials=_number("n_trials", args.n_trials, int), timeout=_number("timeout", args.timeout, float),
        seed=_number("seed", args.seed, int), study_name=args.study_name,
        experiment_name=args.experiment_name or "nba-player-points",
        optuna_storage=args.optuna_storage or settings.optuna_storage_default(),
    )
    if systems is not None:
        config.systems = systems
    train(config, progress=not args.quiet)
    return 0


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="tune, train, log and register the prediction systems")
    p.add_argument("--start-date", "--start_date", dest="start_date", default="",
                   help="first game date of the data (default: the store's first)")
    p.add_argument("--end-date", "--end_date", dest="end_date", default="", help="last game date of the data")
    p.add_argument("--test-start", "--test_start", dest="test_start", default="",
                   help="first day of the test window (default: first day of the latest season in range)")
    p.add_argument("--systems", default="", help="comma-separated systems (default: all four)")
    p.add_argument("--n-trials", "--n_trials", dest="n_trials", default="12", help="Optuna trials per system")
    p.add_argument("--timeout", default="300", help="seconds of tuning per system ('none': no limit)")
    p.add_argument("--optuna-storage", "--optuna_storage", dest="optuna_storage", default="",
                   help="Optuna storage URL (default: SQLite under mlruns/)")
    p.add_argument("--study-name", "--study_name", dest="study_name", default="",
                   help="share one study between processes by giving them the same name")
    p.add_argument("--seed", default="42")
    p.add_argument("--experiment-name", "--experiment_name", dest="experiment_name", default="nba-player-points")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)


PARSERS: list[Callable[[argparse._SubParsersAction], None]] = [_backfill_parser, _train_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nba-props", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in PARSERS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from training.splits import SplitError
    from training.train import ConfigError
    from training.tuning import StorageError
    from warehouse import WarehouseError
    from warehouse.ingest import InputError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, InputError, WarehouseError, ConfigError, SplitError, StorageError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
