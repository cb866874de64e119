"""The project's one environment file, as MLflow's project runner reads it for each env manager."""

from __future__ import annotations

from mlflow.projects import _project_spec, env_type
from mlflow.utils.environment import _PythonEnv

import settings


def test_the_project_names_conda_yaml_and_nothing_else() -> None:
    """A python_env project is refused by --env-manager conda; a conda_env one runs under all four."""
    project = _project_spec.load_project(str(settings.REPO_ROOT))
    assert project.env_type == env_type.CONDA
    assert project.env_config_path == str(settings.REPO_ROOT / "conda.yaml")
    assert not (settings.REPO_ROOT / "python_env.yaml").exists()


def test_virtualenv_and_uv_read_the_pinned_stack_from_conda_yaml() -> None:
    """What --env-manager virtualenv/uv install: conda.yaml converted by MLflow, the exact versions
    coming from constraints.txt (the README's install), and a Python that pyproject.toml accepts."""
    env = _PythonEnv.from_conda_yaml(settings.REPO_ROOT / "conda.yaml")
    assert env.dependencies == ["-c constraints.txt", "."]
    assert env.build_dependencies == ["pip"]
    major, minor, _ = env.python.split(".")
    assert (int(major), int(minor)) in {(3, 11), (3, 12)}
    pins = (settings.REPO_ROOT / "constraints.txt").read_text().splitlines()
    assert {"mlflow==3.17.2", "xgboost==3.2.0", "catboost==1.2.10", "optuna==5.0.0"} <= set(pins)

