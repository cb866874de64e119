"""The command line's surface: help that shows every default and choice, answered without importing the
platform, and -v/-q choosing the log level and the progress bars."""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import cli
import settings
from contracts import BOX_SCORES_SCHEMA, SYSTEMS
from live.daily import DailyConfig
from live.replay import ReplayConfig
from live.retrain import retrain
from registry import tracking
from serving.local import free_port
from tests.conftest import SEASON_2024_25, write_csv
from training.spec import DEFAULT_SPEC
from warehouse import Warehouse, connect
from warehouse.checks import DayCheck, record_checks


def sub_commands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("name", list(sub_commands()))
def test_every_option_has_help_showing_its_default_and_choices(name: str) -> None:
    parser = sub_commands()[name]
    text = " ".join(parser.format_help().split())  # one line: help wraps anywhere
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.option_strings[0]} has no help"
        rendered = cli.HelpFormatter(name)._get_help_string(action)
        if action.required:
            assert "(required)" in rendered, (name, action.dest)
        elif action.default not in (argparse.SUPPRESS, False):
            assert "default" in rendered, f"{name} {action.option_strings[0]}: help does not say its default"
        for choice in (c for c in action.choices or () if c):
            assert choice in text, (name, action.dest, choice)
    if name == "promote":
        assert "(default: 0)" in text and "--force {true,false}" in text and "{" + ",".join(SYSTEMS) + "}" in text


def test_help_answers_without_importing_the_platform() -> None:
    probe = ("import sys, cli\ntry:\n    cli.main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('mlflow', 'pandas', 'xgboost', 'catboost', 'fastapi') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=settings.REPO_ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    assert "--experiment-name EXPERIMENT_NAME" in done.stdout
    assert done.stdout.splitlines()[-1] == "[]"


def test_a_bad_choice_is_one_usage_line_naming_the_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["promote", "--system", "xgboost_v9"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "nba-props promote: error: argument --system: invalid choice: 'xgboost_v9' (choose from "
        + ", ".join(repr(s) for s in SYSTEMS) + ")")


@pytest.fixture
def platform_log_levels() -> Iterator[None]:
    """cli.main sets the platform's and MLflow's logger levels (and MLflow's variables) for the process:
    put them back for the next test."""
    names = (*cli.PLATFORM_LOGGERS, "mlflow")
    before = {name: logging.getLogger(name).level for name in names}
    environment = {name: os.environ.get(name) for name in cli.QUIET_THIRD_PARTY}
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.mark.parametrize(("flags", "level", "bar"), [
    ([], logging.INFO, True), (["-v"], logging.DEBUG, True), (["-q"], logging.WARNING, False),
    (["backfill", "--quiet"], logging.WARNING, False),  # after the sub-command as well
])
@pytest.mark.usefixtures("platform_log_levels")
def test_v_and_q_set_the_log_level_and_the_progress_bar(flags: list[str], level: int, bar: bool, tmp_path: Path,
                                                        box_csv_lines: list[str], monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", f"duckdb:///{tmp_path / 'w.duckdb'}")
    caplog.set_level(logging.DEBUG, logger="features")
    box = write_csv(tmp_path / "box.csv", box_csv_lines)
    argv = [*flags, "--box-scores", str(box), "--lines", "none"]
    assert cli.main(argv if "backfill" in flags else [*flags, "backfill", *argv[len(flags):]]) == 0
    out, err = capsys.readouterr()
    # the result stays on stdout whatever the level
    assert out.startswith("backfill 2024-10-26 .. 2024-10-28: 3 game dates, 400 player-games")
    assert logging.getLogger("features").level == level
    levels = {r.levelno for r in caplog.records if r.name == "features.backfill"}
    assert levels == {lvl for lvl in (logging.DEBUG, logging.INFO) if lvl >= level}
    assert ("backfill: 100%" in err) is bar


# --- every error a user can act on: one sentence, exit 2 -----------------------------------------
@pytest.mark.parametrize(("argv", "sentence"), [
    (["train", "--n-trials", "abc"], "train: n_trials is 'abc', expected an integer"),
    (["train", "--systems", "xgboost_v1,foo"],
     f"train: systems has 'foo', expected some of {', '.join(SYSTEMS)}"),
    (["backtest", "--experiment", "experiments/nope.yaml"],
     "backtest: experiment is 'experiments/nope.yaml', expected an experiment spec file (YAML)"),
    (["retrain", "--gate-days", "0"], "retrain: gate_days is 0, expected 1 or more"),
    (["daily", "--retrain-every", "weekly"], "daily: retrain_every is 'weekly', expected an integer"),
    (["replay", "--start-date", "2024-13-01"], "replay: start_date is '2024-13-01', expected a date YYYY-MM-DD"),
    (["serve", "--port", "70000"], "serve: port is '70000', expected a port from 1 to 65534"),
])
def test_a_bad_option_value_is_one_sentence_and_exit_2(argv: list[str], sentence: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == sentence + "\n"


def test_ctrl_c_is_one_line_and_exit_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import live.replay

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(live.replay, "replay", interrupted)
    assert cli.main(["replay", "--start-date", "2024-12-02", "--end-date", "2024-12-04",
                     "--home", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "replay: interrupted (Ctrl+C); run it again to finish\n"


def test_option_values_are_refused_before_the_platform_is_imported() -> None:
    probe = ("import sys, cli\ncode = cli.main(['train', '--n-trials', 'abc'])\n"
             "print(code, sorted(m for m in ('mlflow', 'pandas', 'optuna', 'xgboost') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=settings.REPO_ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.splitlines()[-1] == "2 []"
    assert done.stderr == "train: n_trials is 'abc', expected an integer\n"


def test_serve_on_a_busy_port_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"serve: port {port} on 127.0.0.1 is not free (") and err.count("\n") == 1
    assert "pick another --port" in err


@pytest.fixture
def evening_without_predictions(tmp_path: Path, box_2024_25: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A warehouse holding the results of 2025-01-01 … 2025-01-09 (every team's last game), and an empty
    registry: ``daily`` for 2025-01-10 goes as far as predicting tonight's slate."""
    monkeypatch.setenv("WAREHOUSE_URL", f"duckdb:///{tmp_path / 'w.duckdb'}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    days = box_2024_25["game_date"].between(dt.date(2025, 1, 1), dt.date(2025, 1, 9))
    connect().write(BOX_SCORES_SCHEMA, box_2024_25[days])
    return tmp_path


DAILY = ["daily", "--date", "2025-01-10", "--results", str(SEASON_2024_25), "--lines", "none", "--retrain-every", "0"]


@pytest.mark.usefixtures("evening_without_predictions", "platform_log_levels")
def test_daily_without_a_worker_or_a_model_is_an_alert_in_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    """No worker, or one that serves nothing, is the day's worker_unavailable alert (issue 15): the run still
    grades and monitors, and ends in one sentence with the alerts' exit status, never a traceback."""
    nobody = f"http://127.0.0.1:{free_port()}"
    assert cli.main([*DAILY, "--worker-url", nobody]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1].startswith("daily: 2025-01-10: 1 alert(s) raised (worker_unavailable")
    assert "Traceback" not in captured.err and f"the worker at {nobody} could not be asked" in captured.out
    assert cli.main(DAILY) == 1  # its own worker, with nothing promoted
    captured = capsys.readouterr()
    assert "serves no system of points, rebounds, assists, threes, pra" in captured.out
    assert "Traceback" not in captured.err


@pytest.mark.usefixtures("platform_log_levels")
def test_held_lists_and_accept_lets_in_once(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", warehouse.url)
    monkeypatch.setenv("PROMOTED_BY", "ops")
    day = dt.date(2025, 1, 10)
    record_checks(warehouse, [DayCheck(day, ("2025-01-10 game 0022400528: BOS minutes 139, expected 240",))])
    assert cli.main(["held"]) == 0
    assert f"  held      {day}  2025-01-10 game 0022400528: BOS minutes 139" in capsys.readouterr().out
    assert cli.main(["accept", "--date", str(day), "--reason", "two players' minutes missing upstream"]) == 0
    assert capsys.readouterr().out.endswith("accepted by ops: two players' minutes missing upstream\n")
    assert cli.main(["accept", "--date", str(day), "--reason", "again"]) == 2
    assert capsys.readouterr().err == f"accept: accept: game_date {day} is accepted, not held\n"
    assert cli.main(["held"]) == 0
    assert f"  accepted  {day}  " in capsys.readouterr().out


def test_a_run_refused_under_mlflow_run_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("project", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment).info.run_id  # what `mlflow run --experiment-name project` hands over
    monkeypatch.setenv("MLFLOW_RUN_ID", run)
    # the claim a refused command leaves is this process's only: later tests' trains must not adopt it
    monkeypatch.setattr(tracking, "_claimed", {})
    assert cli.main(["train", "--n-trials", "abc"]) == 2
    assert client.get_run(run).info.run_name == "mlflow run -e train"
    assert "MLFLOW_RUN_ID" not in os.environ
    assert capsys.readouterr().err == "train: n_trials is 'abc', expected an integer\n"


# --- one definition per default ------------------------------------------------------------------
def _cli_default(command: str, dest: str) -> str:
    (action,) = [a for a in sub_commands()[command]._actions if a.dest == dest]
    return action.default


@pytest.mark.parametrize(("command", "dest", "library"), [
    ("daily", "retrain_every", DailyConfig.__dataclass_fields__["retrain_every"].default),
    ("daily", "gate_days", DailyConfig.__dataclass_fields__["gate_days"].default),
    ("retrain", "gate_days", inspect.signature(retrain).parameters["gate_days"].default),
    ("replay", "retrain_every", ReplayConfig.__dataclass_fields__["retrain_every"].default),
    ("replay", "gate_days", ReplayConfig.__dataclass_fields__["gate_days"].default),
    ("replay", "train_years", ReplayConfig.__dataclass_fields__["train_years"].default),
    ("train", "experiment", DEFAULT_SPEC), ("backtest", "experiment", DEFAULT_SPEC),
])
def test_the_mlproject_and_cli_defaults_are_the_librarys(command: str, dest: str, library: object) -> None:
    from mlflow.projects import _project_spec

    mlproject = _project_spec.load_project(str(settings.REPO_ROOT)).get_entry_point(command).parameters[dest].default
    assert mlproject == _cli_default(command, dest) == str(library)


@pytest.mark.usefixtures("platform_log_levels")
def test_third_party_output_is_quiet_at_the_default_level(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import optuna

    monkeypatch.setenv("WAREHOUSE_URL", warehouse.url)
    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    assert cli.main(["held"]) == 0
    optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="quiet")  # says so at INFO
    logging.getLogger("mlflow.pyfunc").info("Validating input example against model signature")
    err = capfd.readouterr().err
    assert "A new study created" not in err and "Validating input example" not in err
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"  # MLflow's download bars
    optuna.logging.set_verbosity(optuna.logging.INFO)
