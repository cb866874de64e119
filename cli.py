"""The command line: one sub-command per MLproject entry point, with the same option names.

Each sub-command parses its options, calls one typed function, and prints the result (tables,
summaries) on stdout; progress bars and the platform's log go to stderr, at the level ``-v`` or ``-q``
picks. Errors a user can act on (bad dates, a malformed file, an unknown system) end the command with
one sentence on stderr and exit status 2, never a stack trace. Only the standard library, settings and
contracts are imported before the arguments are parsed, so ``--help`` answers at once; each sub-command
imports what it runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable, Sequence

import settings
from contracts import DEFAULT_EXPERIMENT, SYSTEMS
from markets import DEFAULT_MARKET, MARKET_NAMES

# the platform's own loggers (its top-level packages); third-party ones stay at WARNING unless -v
PLATFORM_LOGGERS = ("features", "live", "monitoring", "registry", "serving", "sources", "training", "warehouse")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: ...)" where the help does not already say it in words; an empty default is
    MLproject's "not given", which the help explains instead."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, "", False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """Every parser, sub-commands included, shows defaults and takes -v/-q (before or after the sub-command)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        verbosity = self.add_mutually_exclusive_group()
        verbosity.add_argument("-v", "--verbose", dest="log_level", action="store_const", const=logging.DEBUG,
                               default=argparse.SUPPRESS, help="log debug detail too (default: info and progress bars)")
        verbosity.add_argument("-q", "--quiet", dest="log_level", action="store_const", const=logging.WARNING,
                               default=argparse.SUPPRESS, help="only warnings and errors, no progress bars")


def configure_logging(level: int) -> None:
    """Once per command: the platform's loggers at ``level``, everyone else's at WARNING (DEBUG: INFO)."""
    logging.basicConfig(level=logging.INFO if level == logging.DEBUG else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for handler in logging.getLogger().handlers:  # no secret in any library's log line (settings.hide_secrets)
        if not any(isinstance(f, settings.SecretFilter) for f in handler.filters):
            handler.addFilter(settings.SecretFilter())
    for name in PLATFORM_LOGGERS:
        logging.getLogger(name).setLevel(level)


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


# --- sub-commands -------------------------------------------------------------------------------
def cmd_backfill(args: argparse.Namespace) -> int:
    from features.backfill import backfill
    from warehouse import connect

    summary = backfill(
        connect(), args.box_scores or settings.BOX_SCORES_DEFAULT,
        None if args.lines == "none" else (args.lines or settings.LINES_DEFAULT),
        parse_date("start_date", args.start_date), parse_date("end_date", args.end_date),
        progress=args.progress)
    print(summary.render())
    return 0


def _backfill_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backfill", help="load box scores and lines, rebuild ml_feature_store_v2")
    p.add_argument("--box-scores", "--box_scores", dest="box_scores", default="",
                   help="CSV file, folder or glob in the shipped box-score schema (default: shipped data)")
    p.add_argument("--lines", default="", help="points-line files (default: shipped lines; 'none' for none)")
    p.add_argument("--start-date", "--start_date", dest="start_date", default="",
                   help="first game date to rebuild, YYYY-MM-DD (default: the box scores' first)")
    p.add_argument("--end-date", "--end_date", dest="end_date", default="",
                   help="last game date to rebuild, YYYY-MM-DD (default: the box scores' last)")
    p.set_defaults(func=cmd_backfill)


def _number(name: str, value: str, kind: type, optional: bool = False) -> float | int | None:
    if optional and value in ("", "none", "None"):
        return None
    try:
        return kind(value)
    except ValueError:
        raise UsageError(f"{name} is {value!r}, expected {'an integer' if kind is int else 'a number'}") from None


def _systems(value: str) -> tuple[str, ...] | None:
    return tuple(s.strip() for s in value.split(",") if s.strip()) or None


def _markets(value: str, default: tuple[str, ...] | None = None) -> tuple[str, ...] | None:
    """A ``--markets`` value (``all``, ``points,rebounds``); empty: ``default``. Checked before any import
    of the heavy libraries, so a wrong name is refused at once."""
    from markets import MarketError, parse_markets

    try:
        return parse_markets(value, default) if value.strip() else default
    except MarketError as exc:
        raise UsageError(f"markets: {exc}") from None


def _spec(args: argparse.Namespace, **overrides: object):  # -> training.spec.RunSpec (imported late: --help)
    """The experiment spec named by ``--experiment``, with the options given on the command line in
    place of its values (an empty option, MLproject's default, keeps the spec's)."""
    markets = _markets(args.markets)
    from training.spec import load_spec

    seed = _number("seed", args.seed, int) if args.seed else None
    return load_spec(args.experiment).override(systems=_systems(args.systems), seed=seed, markets=markets,
                                               **overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from training.train import train

    no_limit = args.timeout.lower() == "none"  # lifts the spec's limit; "" keeps it
    spec = _spec(args, start_date=parse_date("start_date", args.start_date),
                 end_date=parse_date("end_date", args.end_date), test_start=parse_date("test_start", args.test_start),
                 n_trials=_number("n_trials", args.n_trials, int) if args.n_trials else None,
                 timeout="none" if no_limit else _number("timeout", args.timeout, float) if args.timeout else None)
    train(spec, optuna_storage=args.optuna_storage or None, study_name=args.study_name,
          experiment_name=args.experiment_name or DEFAULT_EXPERIMENT, progress=args.progress)
    return 0


def _experiment_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", default="experiments/default.yaml",
                   help="experiment spec (YAML) whose settings the other options override")
    p.add_argument("--markets", default="", help="'all' or comma-separated, of " + ", ".join(MARKET_NAMES)
                   + " (default: the spec's, points)")


def _run_options(p: argparse.ArgumentParser) -> None:
    """The options train and backtest share after their own: the seed and where the runs go."""
    p.add_argument("--seed", default="", help="random seed (default: the spec's)")
    p.add_argument("--experiment-name", "--experiment_name", dest="experiment_name", default=DEFAULT_EXPERIMENT,
                   help="MLflow experiment the runs are logged to")


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="tune, train, log and register the prediction systems of an experiment spec")
    _experiment_option(p)
    p.add_argument("--start-date", "--start_date", dest="start_date", default="",
                   help="first game date of the data (default: the spec's)")
    p.add_argument("--end-date", "--end_date", dest="end_date", default="",
                   help="last game date of the data (default: the spec's)")
    p.add_argument("--test-start", "--test_start", dest="test_start", default="",
                   help="first day of the test window (default: the spec's)")
    p.add_argument("--systems", default="", help=f"comma-separated, of {', '.join(SYSTEMS)} (default: the spec's)")
    p.add_argument("--n-trials", "--n_trials", dest="n_trials", default="",
                   help="Optuna trials per tuned system; 0: fit with the spec's fixed parameters (default: the spec's)")
    p.add_argument("--timeout", default="", help="seconds of tuning per system, 'none': no limit (default: the spec's)")
    p.add_argument("--optuna-storage", "--optuna_storage", dest="optuna_storage", default="",
                   help="Optuna storage URL (default: OPTUNA_STORAGE, else SQLite under mlruns/)")
    p.add_argument("--study-name", "--study_name", dest="study_name", default="",
                   help="share one study per system between processes by giving them the same name "
                        "(default: a new study per run)")
    _run_options(p)
    p.set_defaults(func=cmd_train)


def cmd_backtest(args: argparse.Namespace) -> int:
    from training.backtest import backtest

    spec = _spec(args, backtest_start=parse_date("start_date", args.start_date),
                 backtest_end=parse_date("end_date", args.end_date))
    result = backtest(spec, experiment_name=args.experiment_name, progress=args.progress)
    print(f"backtest run {result.run_id}: {len(result.predictions)} predictions written")
    print(result.render())
    return 0


def _backtest_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backtest", help="walk forward through a window, retraining monthly")
    _experiment_option(p)
    p.add_argument("--start-date", "--start_date", dest="start_date", default="",
                   help="first day of the window (default: the spec's backtest window)")
    p.add_argument("--end-date", "--end_date", dest="end_date", default="",
                   help="last day of the window (default: the spec's backtest window)")
    p.add_argument("--systems", default="", help=f"comma-separated, of {', '.join(SYSTEMS)} (default: the spec's)")
    _run_options(p)
    p.set_defaults(func=cmd_backtest)


def cmd_promote(args: argparse.Namespace) -> int:
    from registry.promotion import promote

    decision = promote(args.system, args.version or None, float(_number("min_improvement", args.min_improvement,
                                                                          float) or 0.0),
                       force=args.force == "true", reason=args.reason)
    print(decision.message)
    return 0 if decision.promoted else 1


def cmd_rollback(args: argparse.Namespace) -> int:
    from registry.promotion import rollback

    print(rollback(args.system, args.reason).message)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from registry.promotion import history, pending, production_version, registry_client

    events = history(args.system)
    print(f"{args.system}: production is v{production_version(registry_client(), args.system) or '-'}; "
          f"{len(events)} event(s)")
    for event in events:
        print("  " + event.line())
    started = pending(registry_client(), args.system)
    if started is not None:
        print("  unconfirmed: " + started[1].line() + "  (run reconcile)")
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from contracts import SYSTEMS
    from registry.promotion import reconcile

    for system in [args.system] if args.system else SYSTEMS:
        repairs = reconcile(system)
        print(f"{system}: " + ("; ".join(repairs) if repairs else "alias, stage and history agree"))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from registry.compare import compare

    print(compare(experiment_name=args.experiment_name).markdown())
    return 0


def _registry_parsers(sub: argparse._SubParsersAction) -> None:
    def system(p: argparse.ArgumentParser) -> None:
        p.add_argument("--system", required=True, choices=SYSTEMS, help="the registered model (required)")

    p = sub.add_parser("promote", help="promote a registered version to production if it beats the champion")
    system(p)
    p.add_argument("--version", default="", help="registered version (default: the latest)")
    p.add_argument("--min-improvement", "--min_improvement", dest="min_improvement", default="0",
                   help="points of MAE the challenger must gain")
    p.add_argument("--force", default="false", type=str.lower, choices=("true", "false"),
                   help="true: promote past the gate (needs --reason)")
    p.add_argument("--reason", default="", help="recorded in the audit trail (default: none)")
    p.set_defaults(func=cmd_promote)
    p = sub.add_parser("rollback", help="move production back to the previous production version")
    system(p)
    p.add_argument("--reason", default="", help="recorded in the audit trail (default: none)")
    p.set_defaults(func=cmd_rollback)
    p = sub.add_parser("history", help="print a system's promotions, refusals and rollbacks")
    system(p)
    p.set_defaults(func=cmd_history)
    p = sub.add_parser("reconcile", help="finish or undo an interrupted promotion or rollback")
    p.add_argument("--system", default="", choices=("", *SYSTEMS), metavar="SYSTEM",
                   help=f"one of {', '.join(SYSTEMS)} (default: every system)")
    p.set_defaults(func=cmd_reconcile)
    p = sub.add_parser("compare", help="every registered version with its metrics, and model disagreement")
    p.add_argument("--experiment-name", "--experiment_name", dest="experiment_name", default=DEFAULT_EXPERIMENT,
                   help="MLflow experiment the comparison is logged to")
    p.set_defaults(func=cmd_compare)


def cmd_predict(args: argparse.Namespace) -> int:
    from features.slate import read_slate_csv
    from serving.coordinator import predict_date
    from serving.local import local_worker
    from warehouse import connect

    game_date = parse_date("game_date", args.game_date)
    if game_date is None:
        raise UsageError("predict needs game_date (YYYY-MM-DD)")
    slate = read_slate_csv(args.slate) if args.slate else None
    warehouse = connect()
    if args.worker_url:
        result = predict_date(game_date, args.worker_url, warehouse, slate, progress=args.progress)
    else:
        with local_worker(warehouse) as url:
            result = predict_date(game_date, url, warehouse, slate, progress=args.progress)
    print(result.render())
    return 0 if result.ok else 1


def _processes(value: str) -> int:
    workers = int(_number("workers", value, int))  # type: ignore[arg-type]
    if workers < 1:
        raise UsageError(f"workers is {value!r}, expected 1 or more processes")
    return workers


def cmd_serve(args: argparse.Namespace) -> int:
    from serving.service import serve

    serve(args.host, int(_number("port", args.port, int) or 8080), float(_number("poll", args.poll, float) or 30),
          args.event_bus, _processes(args.workers))
    return 0


def _serving_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict every player-game of a date and store the predictions")
    p.add_argument("--game-date", "--game_date", dest="game_date", required=True,
                   help="the date to predict, YYYY-MM-DD (required)")
    p.add_argument("--slate", default="", help="CSV of games not yet played: game_date,team,opponent,is_home"
                   "[,players as id;id;...] (default: none, the date's rows in the feature store)")
    p.add_argument("--worker-url", "--worker_url", dest="worker_url", default="",
                   help="a running worker (default: start one in this process for the run)")
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("serve", help="start the worker (port) and the coordinator (port + 1)")
    p.add_argument("--host", default="127.0.0.1", help="address both servers listen on")
    p.add_argument("--port", default="8080", help="the worker's port; the coordinator listens on the next one")
    p.add_argument("--poll", default="30", help="seconds between registry checks for a moved alias")
    p.add_argument("--event-bus", "--event_bus", dest="event_bus", default="inprocess",
                   help="inprocess, or pubsub://PROJECT/TOPIC/SUBSCRIPTION")
    p.add_argument("--workers", default="1", help="worker processes sharing the port, each with its own models "
                   "and feature cache (default: 1, in the coordinator's process)")
    p.set_defaults(func=cmd_serve)


def cmd_daily(args: argparse.Namespace) -> int:
    markets = _markets(args.markets, MARKET_NAMES)
    from live.daily import DailyConfig, run_daily
    from live.worker import worker_for
    from monitoring.alerts import check_webhook_url
    from serving.events import bus_from_url
    from sources import from_options
    from warehouse import connect

    webhook_url = args.webhook_url or settings.alert_webhook_url()
    if webhook_url:  # before any work: a bad URL found at the alert step would waste the day's run
        check_webhook_url(webhook_url)
    day = parse_date("date", args.date) or dt.date.today()
    cfg = DailyConfig(day, retrain_every=int(_number("retrain_every", args.retrain_every, int)),
                      gate_days=int(_number("gate_days", args.gate_days, int)), webhook_url=webhook_url,
                      markets=markets)
    warehouse = connect()
    bus = bus_from_url(args.event_bus)
    try:
        with worker_for(warehouse, args.worker_url) as worker:
            report = run_daily(cfg, from_options(args.results, args.lines, args.out_list), warehouse, worker, bus)
    finally:
        if bus is not None:
            bus.close()
    print(report.render())
    if report.alerts or report.held:
        print(f"daily: {report.verdict()}", file=sys.stderr)
        return 1
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    markets = _markets(args.markets, (DEFAULT_MARKET,))
    from live.retrain import retrain

    day = parse_date("date", args.date) or dt.date.today()
    result = retrain(day, gate_days=int(_number("gate_days", args.gate_days, int)),
                     train_start=parse_date("train_start", args.train_start), markets=markets)
    print(result.render())
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from live.replay import ReplayConfig, replay, write_result
    from sources import from_options

    markets = _markets(args.markets, (DEFAULT_MARKET,))
    start, end = parse_date("start_date", args.start_date), parse_date("end_date", args.end_date)
    if start is None or end is None:
        raise UsageError("replay needs both start_date and end_date (YYYY-MM-DD)")
    cfg = ReplayConfig(start, end, Path(args.home or settings.MLRUNS_DIR / "replay"),
                       from_options(args.results, args.lines, args.out_list),
                       retrain_every=int(_number("retrain_every", args.retrain_every, int)),
                       gate_days=int(_number("gate_days", args.gate_days, int)),
                       train_years=int(_number("train_years", args.train_years, int)), markets=markets)
    report = replay(cfg, progress=args.progress)
    print(report.render())
    if args.output:
        write_result(report, Path(args.output))
    return 0


def _live_parsers(sub: argparse._SubParsersAction) -> None:
    def markets(p: argparse.ArgumentParser, default: str) -> None:
        p.add_argument("--markets", default="", help="'all' or comma-separated, of " + ", ".join(MARKET_NAMES)
                       + f" (default: {default})")

    def sources(p: argparse.ArgumentParser, results: str, lines: str) -> None:
        p.add_argument("--results", default=results,
                       help=f"'nba_api' (stats.nba.com), 'shipped' (data/nba) or a box-score CSV path/glob "
                            f"(default: {results})")
        p.add_argument("--lines", default=lines,
                       help=f"a daily-fantasy lines drop folder, 'shipped', 'odds_api' (ODDS_API_KEY) or 'none' "
                            f"(default: {lines})")
        p.add_argument("--out-list", "--out_list", dest="out_list", default="",
                       help="folder of injury reports, one YYYY-MM-DD.csv per date (default: none, guess the roster)")
        p.add_argument("--retrain-every", "--retrain_every", dest="retrain_every", default="7",
                       help="days between retrains through the gate; 0: never (default: 7)")
        p.add_argument("--gate-days", "--gate_days", dest="gate_days", default="14",
                       help="the most recent game days a retrained challenger is judged on (default: 14)")

    p = sub.add_parser("daily", help="ingest, check, rebuild features, grade, retrain when due, predict tonight")
    p.add_argument("--date", default="", help="the evening to predict, YYYY-MM-DD (default: today)")
    sources(p, "nba_api", "none")
    markets(p, "all")
    p.add_argument("--webhook-url", "--webhook_url", dest="webhook_url", default="",
                   help="POST alerts here as Slack-compatible JSON; a secret, better given as ALERT_WEBHOOK_URL or "
                        "ALERT_WEBHOOK_URL_FILE, since a command line is visible to others (default: those)")
    p.add_argument("--worker-url", "--worker_url", dest="worker_url", default="",
                   help="a running worker (default: start one in this process)")
    p.add_argument("--event-bus", "--event_bus", dest="event_bus", default="inprocess",
                   help="inprocess, or pubsub://PROJECT/TOPIC/SUBSCRIPTION")
    p.set_defaults(func=cmd_daily)

    p = sub.add_parser("retrain", help="train challengers up to yesterday and promote those that pass the gate")
    p.add_argument("--date", default="", help="the retrain day, YYYY-MM-DD (default: today)")
    p.add_argument("--gate-days", "--gate_days", dest="gate_days", default="14",
                   help="the most recent game days the challengers are judged on (default: 14)")
    p.add_argument("--train-start", "--train_start", dest="train_start", default="",
                   help="first game date to fit on (default: all stored)")
    markets(p, DEFAULT_MARKET)
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("replay", help="run the daily job over a past range, from what was known before it")
    p.add_argument("--start-date", "--start_date", dest="start_date", default="2024-10-22",
                   help="first evening to replay, YYYY-MM-DD")
    p.add_argument("--end-date", "--end_date", dest="end_date", default="2025-01-13",
                   help="last evening to replay, YYYY-MM-DD")
    sources(p, "shipped", "shipped")
    p.add_argument("--train-years", "--train_years", dest="train_years", default="3",
                   help="seasons of history each retrain fits on (default: 3)")
    p.add_argument("--home", default="", help="the replay's own warehouse and MLflow store (default: mlruns/replay)")
    p.add_argument("--output", default="", help="write the figures as JSON here (default: none)")
    markets(p, DEFAULT_MARKET)
    p.set_defaults(func=cmd_replay)


PARSERS: list[Callable[[argparse._SubParsersAction], None]] = [
    _backfill_parser, _train_parser, _backtest_parser, _registry_parsers, _serving_parsers, _live_parsers]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nba-props", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in PARSERS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # before any heavy import: --help and usage errors answer at once
    level = getattr(args, "log_level", logging.INFO)
    configure_logging(level)
    args.progress = level < logging.WARNING

    from monitoring.alerts import AlertConfigError
    from registry.promotion import PromotionError
    from serving.coordinator import CoordinatorError
    from serving.events import EventError
    from training.spec import ConfigError
    from training.splits import SplitError
    from training.tuning import StorageError
    from warehouse import WarehouseError
    from warehouse.ingest import InputError

    try:
        return args.func(args)
    except (UsageError, InputError, WarehouseError, ConfigError, SplitError, StorageError, PromotionError,
            CoordinatorError, EventError, AlertConfigError, settings.SettingError) as exc:
        print(settings.hide_secrets(f"{args.command}: {exc}"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
