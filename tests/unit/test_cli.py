"""The command line's surface: help that shows every default and choice, answered without importing the
platform, and -v/-q choosing the log level and the progress bars."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import cli
import settings
from contracts import SYSTEMS
from tests.conftest import write_csv


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
    """cli.main sets the platform's logger levels for the process: put them back for the next test."""
    before = {name: logging.getLogger(name).level for name in cli.PLATFORM_LOGGERS}
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


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
