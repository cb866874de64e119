"""MLproject and the CLI agree: every entry point's command, as MLflow renders it, parses."""

from __future__ import annotations

import shlex

import pytest
from mlflow.projects import _project_spec

import cli
import settings
from contracts import ENTRY_POINTS

REQUIRED = {"promote": {"system": "xgboost_v1"}, "rollback": {"system": "xgboost_v1"},
            "history": {"system": "xgboost_v1"}, "predict": {"game_date": "2025-01-10"},
            "accept": {"date": "2025-01-10", "reason": "checked by hand"}}


@pytest.fixture(scope="module")
def project() -> _project_spec.Project:
    return _project_spec.load_project(str(settings.REPO_ROOT))


def test_every_contract_entry_point_exists(project: _project_spec.Project) -> None:
    assert set(project._entry_points) == set(ENTRY_POINTS)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_default_command_parses_to_the_cli_defaults(project: _project_spec.Project, name: str) -> None:
    # MLflow quotes every value (an empty default becomes ''), so the CLI must receive "" for "not given"
    argv = shlex.split(project.get_entry_point(name).compute_command(REQUIRED.get(name, {}), "/tmp"))
    assert argv[:3] == ["python", "cli.py", name]
    args = cli.build_parser().parse_args(argv[2:])
    defaults = cli.build_parser().parse_args([name, *sum((["--" + k.replace("_", "-"), v]
                                                          for k, v in REQUIRED.get(name, {}).items()), [])])
    assert vars(args) == vars(defaults) | {k: v for k, v in vars(args).items() if k == "func"}


def test_a_reason_with_quotes_and_spaces_arrives_whole(project: _project_spec.Project) -> None:
    command = project.get_entry_point("promote").compute_command(
        {"system": "xgboost_v1", "force": "true", "reason": "hotfix: Luka's line moved"}, "/tmp")
    args = cli.build_parser().parse_args(shlex.split(command)[2:])
    assert (args.reason, args.force) == ("hotfix: Luka's line moved", "true")
