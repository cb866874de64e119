"""The command line: one sub-command per MLproject entry point, with the same option names.

Each sub-command parses its options, calls one typed function, and prints the result (tables,
summaries) on stdout; progress bars and the platform's log go to stderr, at the level ``-v`` or ``-q``
picks. Errors a user can act on (bad dates, a malformed file, an unknown system) end the command with
one sentence on stderr and exit status 2, never a stack trace. Only the standard library, settings,
contracts and the live defaults are imported before the options are parsed and checked
(``OPTION_VALUES``), so ``--help`` and a bad value answer at once; each sub-command imports what it runs.
Under ``mlflow run`` the entry run is named first of all (``registry.tracking.claim_entry_run``), so
a run refused for a bad option is named too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import settings
from contracts import DEFAULT_EXPERIMENT, ENTRY_POINTS, SYSTEMS, season_window
from live import defaults
from markets import DEFAULT_MARKET, MARKET_NAMES, MarketError, parse_markets

FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # writes the OS refuses for want of room
# the platform's own loggers (its top-level packages); third-party ones stay at WARNING unless -v
PLATFORM_LOGGERS = ("features", "live", "monitoring", "registry", "serving", "sources", "training", "warehouse")
# third-party output that ignores the root logger's level: MLflow's logger (configured on import from
# MLFLOW_LOGGING_LEVEL) and its artifact download bars; Optuna's is set once it is imported (main)
QUIET_THIRD_PARTY = {"MLFLOW_LOGGING_LEVEL": "WARNING", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
EXPERIMENT_NAME_HELP = ("MLflow experiment the runs are logged to (default: the `mlflow run` experiment, else "
                        f"MLFLOW_EXPERIMENT_NAME, else {DEFAULT_EXPERIMENT})")


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
    """Once per command: the platform's loggers at ``level``, everyone else's at WARNING (DEBUG: INFO,
    and MLflow's download bars). A variable the user set wins."""
    third_party = logging.INFO if level == logging.DEBUG else logging.WARNING
    logging.basicConfig(level=third_party, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for handler in logging.getLogger().handlers:  # no secret in any library's log line (settings.hide_secrets)
        if not any(isinstance(f, settings.SecretFilter) for f in handler.filters):
            handler.addFilter(settings.SecretFilter())
    for name in PLATFORM_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if level > logging.DEBUG:
        for name, value in QUIET_THIRD_PARTY.items():
            os.environ.setdefault(name, value)
    logging.getLogger("mlflow").setLevel(os.environ.get("MLFLOW_LOGGING_LEVEL", logging.getLevelName(third_party)))


class UsageError(ValueError):
    """A setting the user gave that cannot work; the message names it and its value."""


def parse_date(name: str, value: str | None) -> dt.date | None:
    """``YYYY-MM-DD`` or empty (MLproject passes "" for 'not given'), within the league's seasons and
    one season ahead: ``daily --date 9999-12-31`` would ingest everything and build no feature."""
    if value in (None, ""):
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{name} is {value!r}, expected a date YYYY-MM-DD") from None
    first, last = season_window(dt.date.today())
    if day < first:
        raise UsageError(f"{name} is {value!r}, before the league's first season (1946-47)")
    if day > last:
        raise UsageError(f"{name} is {value!r}, after {last}, the end of the season after this one")
    return day


def integer(minimum: int | None = None, blank: bool = True) -> Callable[[str, str], int | None]:
    """A whole number (at least ``minimum``); empty is 'not given' where ``blank``."""
    def parse(name: str, value: str) -> int | None:
        if value == "" and blank:
            return None
        try:
            number = int(value)
        except ValueError:
            raise UsageError(f"{name} is {value!r}, expected an integer") from None
        if minimum is not None and number < minimum:
            raise UsageError(f"{name} is {number}, expected {minimum} or more")
        return number
    return parse


def number(name: str, value: str) -> float | None:
    """A number; empty is 'not given'."""
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"{name} is {value!r}, expected a number") from None


def positive(name: str, value: str) -> float:
    found = number(name, value)
    if found is None or found <= 0:
        raise UsageError(f"{name} is {value!r}, expected a number above 0")
    return found


def seconds_or_none(name: str, value: str) -> float | str | None:
    """A number of seconds, 'none' (no limit, kept as the word for the spec), or empty: the spec's."""
    return "none" if value.lower() == "none" else number(name, value)


def systems(name: str, value: str) -> tuple[str, ...] | None:
    chosen = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SYSTEMS]
    if unknown:
        raise UsageError(f"{name} has {unknown[0]!r}, expected some of {', '.join(SYSTEMS)}")
    return chosen or None


def spec_file(name: str, value: str) -> str:
    """A spec path as ``training.spec.load_spec`` finds it: from the working directory, then the repository."""
    if not (Path(value).is_file() or (settings.REPO_ROOT / value).is_file()):
        raise UsageError(f"{name} is {value!r}, expected an experiment spec file (YAML)")
    return value


def port(name: str, value: str) -> int:
    found = integer(1, blank=False)(name, value)
    if found > 65534:  # the coordinator takes the next port
        raise UsageError(f"{name} is {value!r}, expected a port from 1 to 65534")
    return found


# Every option whose value is more than text, by its name (the MLproject parameter): checked and
# converted in ``main`` before any heavy import, so a command receives typed values. A new option
# shared by several commands (a market, say) is one line here and one ``add_argument`` each.
def markets_option(name: str, value: str) -> tuple[str, ...] | None:
    """``all`` or a comma list of declared markets (``points,rebounds``); empty: the command's default."""
    try:
        return parse_markets(value) if value.strip() else None
    except MarketError as exc:
        raise UsageError(f"{name}: {exc}") from None


OPTION_VALUES: dict[str, Callable[[str, str], object]] = {
    "start_date": parse_date, "end_date": parse_date, "test_start": parse_date, "train_start": parse_date,
    "date": parse_date, "game_date": parse_date,
    "experiment": spec_file, "systems": systems, "n_trials": integer(0), "timeout": seconds_or_none,
    "seed": integer(), "min_improvement": number,
    "port": port, "poll": positive,
    "retrain_every": integer(0, blank=False), "gate_days": integer(1, blank=False),
    "train_years": integer(1, blank=False), "markets": markets_option, "workers": integer(1, blank=False),
}


def check_options(args: argparse.Namespace) -> None:
    for name, parse in OPTION_VALUES.items():
        if hasattr(args, name):
            setattr(args, name, parse(name, getattr(args, name)))


# --- sub-commands -------------------------------------------------------------------------------
def cmd_backfill(args: argparse.Namespace) -> int:
    from features.backfill import backfill
    from warehouse import connect

    summary = backfill(
        connect(), args.box_scores or settings.BOX_SCORES_DEFAULT,
        None if args.lines == "none" else (args.lines or settings.LINES_DEFAULT),
        args.start_date, args.end_date, progress=args.progress)
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


def _spec(args: argparse.Namespace, **overrides: object):  # -> training.spec.RunSpec (imported late: --help)
    """The experiment spec named by ``--experiment``, with the options given on the command line in
    place of its values (an empty option, MLproject's default, keeps the spec's)."""
    from training.spec import load_spec

    return load_spec(args.experiment).override(systems=args.systems, seed=args.seed, markets=args.markets,
                                               **overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from registry.tracking import experiment_id_for, project_experiment, runs_page
    from training.train import summary_table, train

    spec = _spec(args, start_date=args.start_date, end_date=args.end_date, test_start=args.test_start,
                 n_trials=args.n_trials, timeout=args.timeout)
    experiment = project_experiment(args.experiment_name)
    results = train(spec, optuna_storage=args.optuna_storage or None, study_name=args.study_name,
                    experiment_name=experiment, progress=args.progress)
    print(summary_table(results))
    print(f"runs in the MLflow UI: {runs_page(experiment_id_for(experiment))}")
    return 0


def _experiment_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", default="experiments/default.yaml",
                   help="experiment spec (YAML) whose settings the other options override")
    p.add_argument("--markets", default="", help="'all' or comma-separated, of " + ", ".join(MARKET_NAMES)
                   + " (default: the spec's, points)")


def _run_options(p: argparse.ArgumentParser) -> None:
    """The options train and backtest share after their own: the seed and where the runs go."""
    p.add_argument("--seed", default="", help="random seed (default: the spec's)")
    p.add_argument("--experiment-name", "--experiment_name", dest="experiment_name", default="",
                   help=EXPERIMENT_NAME_HELP)


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
    from registry.tracking import project_experiment
    from training.backtest import backtest

    spec = _spec(args, backtest_start=args.start_date, backtest_end=args.end_date)
    result = backtest(spec, experiment_name=project_experiment(args.experiment_name), progress=args.progress)
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

    decision = promote(args.system, args.version or None, args.min_improvement or 0.0, force=args.force == "true",
                       reason=args.reason)
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
    from registry.tracking import project_experiment

    print(compare(experiment_name=project_experiment(args.experiment_name)).markdown())
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
    p.add_argument("--experiment-name", "--experiment_name", dest="experiment_name", default="",
                   help=EXPERIMENT_NAME_HELP)
    p.set_defaults(func=cmd_compare)


def cmd_predict(args: argparse.Namespace) -> int:
    from features.slate import read_slate_csv
    from serving.coordinator import predict_date
    from serving.local import local_worker
    from warehouse import connect

    game_date = args.game_date
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


def cmd_serve(args: argparse.Namespace) -> int:
    from serving.service import serve

    for taken in (args.port, args.port + 1):
        with socket.socket() as probe:
            try:
                probe.bind((args.host, taken))
            except OSError as exc:
                raise UsageError(f"port {taken} on {args.host} is not free ({exc.strerror}): the worker takes --port "
                                 "and the coordinator the next one, so pick another --port") from None
    stopped_by = serve(args.host, args.port, args.poll, args.event_bus, args.workers)
    # Ctrl+C ends it as an interrupted command (130, which `mlflow run` records as a failed run, not a
    # finished one); SIGTERM is a supervisor's ordinary stop (0)
    return 128 + signal.SIGINT if stopped_by == signal.SIGINT else 0


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
    from monitoring.alerts import check_webhook_url  # light: checked before the job's heavy imports

    webhook_url = args.webhook_url or settings.alert_webhook_url()
    if webhook_url:  # before any work: a bad URL found at the alert step would waste the day's run
        check_webhook_url(webhook_url)
    from live.daily import DailyConfig, run_daily
    from live.worker import worker_for
    from serving.events import bus_from_url
    from sources import from_options
    from warehouse import connect

    cfg = DailyConfig(args.date or dt.date.today(), retrain_every=args.retrain_every, gate_days=args.gate_days,
                      webhook_url=webhook_url, markets=args.markets or MARKET_NAMES)
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
    from live.retrain import retrain

    result = retrain(args.date or dt.date.today(), gate_days=args.gate_days, train_start=args.train_start,
                     markets=args.markets or (DEFAULT_MARKET,))
    print(result.render())
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from live.replay import ReplayConfig, replay, write_result
    from sources import from_options

    if args.start_date is None or args.end_date is None:
        raise UsageError("replay needs both start_date and end_date (YYYY-MM-DD)")
    cfg = ReplayConfig(args.start_date, args.end_date, Path(args.home or settings.MLRUNS_DIR / "replay"),
                       from_options(args.results, args.lines, args.out_list), retrain_every=args.retrain_every,
                       gate_days=args.gate_days, train_years=args.train_years,
                       markets=args.markets or (DEFAULT_MARKET,))
    report = replay(cfg, progress=args.progress)
    print(report.render())
    if args.output:
        write_result(report, Path(args.output))
    return 0


def _live_parsers(sub: argparse._SubParsersAction) -> None:
    def markets(p: argparse.ArgumentParser, default: str) -> None:
        p.add_argument("--markets", default="", help="'all' or comma-separated, of " + ", ".join(MARKET_NAMES)
                       + f" (default: {default})")

    def gate_days(p: argparse.ArgumentParser, judged: str) -> None:
        p.add_argument("--gate-days", "--gate_days", dest="gate_days", default=str(defaults.GATE_DAYS),
                       help=f"the most recent game days {judged} judged on")

    def sources(p: argparse.ArgumentParser, results: str, lines: str) -> None:
        p.add_argument("--results", default=results,
                       help=f"'nba_api' (stats.nba.com), 'shipped' (data/nba) or a box-score CSV path/glob "
                            f"(default: {results})")
        p.add_argument("--lines", default=lines,
                       help=f"a daily-fantasy lines drop folder, 'shipped', 'odds_api' (ODDS_API_KEY) or 'none' "
                            f"(default: {lines})")
        p.add_argument("--out-list", "--out_list", dest="out_list", default="",
                       help="folder of injury reports, one YYYY-MM-DD.csv per date (default: none, guess the roster)")
        p.add_argument("--retrain-every", "--retrain_every", dest="retrain_every",
                       default=str(defaults.RETRAIN_EVERY_DAYS),
                       help="days between retrains through the gate; 0: never")
        gate_days(p, "a retrained challenger is")

    p = sub.add_parser("daily", help="ingest, check, rebuild features, grade, retrain when due, predict tonight")
    p.add_argument("--date", default="", help="the evening to predict, YYYY-MM-DD (default: today)")
    sources(p, defaults.DAILY_RESULTS, defaults.DAILY_LINES)
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
    gate_days(p, "the challengers are")
    p.add_argument("--train-start", "--train_start", dest="train_start", default="",
                   help="first game date to fit on (default: all stored)")
    markets(p, DEFAULT_MARKET)
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("replay", help="run the daily job over a past range, from what was known before it")
    p.add_argument("--start-date", "--start_date", dest="start_date", default=str(defaults.REPLAY_START),
                   help="first evening to replay, YYYY-MM-DD")
    p.add_argument("--end-date", "--end_date", dest="end_date", default=str(defaults.REPLAY_END),
                   help="last evening to replay, YYYY-MM-DD")
    sources(p, defaults.REPLAY_RESULTS, defaults.REPLAY_LINES)
    p.add_argument("--train-years", "--train_years", dest="train_years", default=str(defaults.TRAIN_YEARS),
                   help="seasons of history each retrain fits on")
    p.add_argument("--home", default="", help="the replay's own warehouse and MLflow store (default: mlruns/replay)")
    p.add_argument("--output", default="", help="write the figures as JSON here (default: none)")
    markets(p, DEFAULT_MARKET)
    p.set_defaults(func=cmd_replay)


def cmd_held(args: argparse.Namespace) -> int:
    from warehouse import connect
    from warehouse.checks import accepted_dates, held_dates

    warehouse = connect()
    held, accepted = held_dates(warehouse), accepted_dates(warehouse)
    print(f"{len(held)} held day(s), {len(accepted)} accepted" +
          (": let one in with `accept --date YYYY-MM-DD --reason TEXT`" if held else ""))
    for day, problems in sorted(held.items()):
        print(f"  held      {day}  {problems}")
    for day, problems in sorted(accepted.items()):
        print(f"  accepted  {day}  {problems}")
    return 0


def cmd_accept(args: argparse.Namespace) -> int:
    from warehouse import connect
    from warehouse.checks import accept

    if args.date is None:
        raise UsageError("accept needs the held day's date (YYYY-MM-DD)")
    print(f"accepted {args.date}: {accept(connect(), args.date, args.reason)}")
    return 0


def _checks_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("held", help="list the data days the checks hold out of features, and those accepted")
    p.set_defaults(func=cmd_held)
    p = sub.add_parser("accept", help="let a held data day into features as it is, recording who and why")
    p.add_argument("--date", required=True, help="the held game date, YYYY-MM-DD (required)")
    p.add_argument("--reason", required=True, help="why the day is usable as it is, kept in data_checks (required)")
    p.set_defaults(func=cmd_accept)


PARSERS: list[Callable[[argparse._SubParsersAction], None]] = [
    _backfill_parser, _train_parser, _backtest_parser, _registry_parsers, _serving_parsers, _live_parsers,
    _checks_parsers]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nba-props", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in PARSERS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("MLFLOW_RUN_ID"):  # under `mlflow run`: its run is named before any check can fail
        from registry.tracking import claim_entry_run

        claim_entry_run(next((a for a in argv if a in ENTRY_POINTS), "cli"))
    args = build_parser().parse_args(argv)  # before any heavy import: --help and usage errors answer at once
    try:
        check_options(args)
    except UsageError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
    level = getattr(args, "log_level", logging.INFO)
    configure_logging(level)
    args.progress = level < logging.WARNING

    import optuna

    from monitoring.alerts import AlertConfigError
    from registry.promotion import PromotionError
    from serving.coordinator import CoordinatorError
    from serving.events import EventError
    from training.spec import ConfigError
    from training.splits import SplitError
    from training.tuning import StorageError
    from warehouse import WarehouseError
    from warehouse.ingest import InputError

    optuna.logging.set_verbosity(logging.INFO if level == logging.DEBUG else logging.WARNING)  # its own handler
    try:
        return args.func(args)
    except (UsageError, InputError, WarehouseError, ConfigError, SplitError, StorageError, PromotionError,
            CoordinatorError, EventError, AlertConfigError, settings.SettingError) as exc:
        print(settings.hide_secrets(f"{args.command}: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl+C is the user's stop, not a fault: one line and 130 (as a shell gives), no traceback; every
        # job stores its work in transactions a rerun picks up (serve stops on its own signal handler)
        print(f"{args.command}: interrupted (Ctrl+C); run it again to finish", file=sys.stderr)
        return 128 + signal.SIGINT
    except OSError as exc:
        if exc.errno not in FULL_DISK:
            raise
        # a model artifact, a plot, a lock file: written by MLflow or a library, named by the OS
        print(settings.hide_secrets(f"{args.command}: could not write {exc.filename or 'a file'}: {exc.strerror}; "
                                    "free space and run it again"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
