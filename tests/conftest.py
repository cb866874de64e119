"""Shared fixtures: slices of the real shipped data, and a throw-away warehouse per test."""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import settings
from warehouse import Warehouse, connect
from warehouse.ingest import read_box_scores, read_lines

SEASON_2024_25 = settings.BOX_SCORES_DEFAULT / "player_logs_2024-25.csv.gz"


@pytest.fixture(scope="session", autouse=True)
def stores_outside_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every store whose default lies in the checkout (settings.py) in a session temp dir, so the suite
    leaves the checkout as it found it and never writes a developer's exported ``MLFLOW_TRACKING_URI``.
    A fixture that sets its own value (``monkeypatch.setenv``) wins for its tests. Runs must name an
    experiment (``registry.tracking.experiment_id_for``): MLflow's "Default" one keeps its artifacts
    under ``./mlruns`` of the working directory, whatever the store."""
    import mlflow

    root = tmp_path_factory.mktemp("session-stores")
    stores = {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
              "MLFLOW_ARTIFACT_ROOT": (root / "artifacts").as_uri(),
              "WAREHOUSE_URL": f"duckdb:///{root / 'warehouse.duckdb'}",
              "OPTUNA_STORAGE": f"sqlite:///{root / 'optuna.db'}"}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in stores.items():
            mp.setenv(name, value)
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        mp.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])  # over one set before the session
        yield


@pytest.fixture(scope="session")
def box_2024_25() -> pd.DataFrame:
    """The real 2024-25 regular season (26k player-games)."""
    return read_box_scores(SEASON_2024_25)


@pytest.fixture(scope="session")
def lines_2024_25(box_2024_25: pd.DataFrame) -> pd.DataFrame:
    return read_lines(settings.LINES_DEFAULT, box_2024_25).lines


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return connect(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")


@pytest.fixture(scope="session")
def box_csv_lines() -> list[str]:
    """The header and first 400 rows of the real 2024-25 file, as text lines."""
    with gzip.open(SEASON_2024_25, "rt") as fh:
        return [next(fh) for _ in range(401)]


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(lines))
    return path


@pytest.fixture
def two_months_csv(tmp_path: Path) -> Path:
    """Oct-Nov 2024 of the real data as a plain CSV file (a user's own file)."""
    frame = pd.read_csv(SEASON_2024_25, dtype=str)
    frame = frame[frame["GAME_DATE"] < "2024-12-01"]
    path = tmp_path / "box_oct_nov_2024.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def lines_copy(tmp_path: Path) -> Path:
    target = tmp_path / "lines"
    shutil.copytree(settings.LINES_DEFAULT, target)
    return target


# --- a small trained platform, shared by the training, registry and serving tests ---------------
QUICK_SPEC = "experiments/quick.yaml"  # the data window and trial budget of the trained platform


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A warehouse holding the real 2024-25 season's feature store; returns its URL."""
    from features.backfill import backfill

    url = f"duckdb:///{tmp_path_factory.mktemp('store') / 'warehouse.duckdb'}"
    backfill(connect(url), SEASON_2024_25, settings.LINES_DEFAULT, progress=False)
    return url


def train_into(root: Path, store: str, spec) -> dict:  # spec: training.spec.RunSpec
    """``spec`` trained on ``store`` and registered in a SQLite MLflow store under ``root``: the settings
    (``env``), the results and the spec."""
    import mlflow

    from training.train import train

    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
           "MLFLOW_ARTIFACT_ROOT": (root / "artifacts").as_uri(), "WAREHOUSE_URL": store}
    before = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        results = train(spec, connect(store), optuna_storage=f"sqlite:///{root / 'optuna.db'}", progress=False)
    mlflow.set_tracking_uri(before)  # training set MLflow's global URI: later tests must not write this registry
    return {"env": env, "results": results, "spec": spec}


@pytest.fixture(scope="session")
def trained(small_store: str, tmp_path_factory: pytest.TempPathFactory):
    """Every system of the table trained by ``experiments/quick.yaml`` (2 Optuna trials per tuned
    system, data to 2025-02-15, test from 2025-01-01) and registered in a SQLite MLflow store."""
    from training.spec import load_spec

    return train_into(tmp_path_factory.mktemp("mlflow"), small_store, load_spec(QUICK_SPEC))


def registry_copy(trained: dict, source: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict]:
    """The trained platform's settings applied to this test's environment, with this test's own copy of
    the registry ``source`` (the artifacts stay shared, written once): the aliases, versions and history a
    test makes or moves die with the copy, so no test sees another's, whatever the order or an assert
    that failed half way. ``trained["env"]`` keeps naming the original stores."""
    import mlflow

    for key, value in trained["env"].items():
        monkeypatch.setenv(key, value)
    registry = tmp_path / "registry" / "mlflow.db"
    registry.parent.mkdir()
    shutil.copy(source.removeprefix("sqlite:///"), registry)
    before = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{registry}")
    mlflow.set_tracking_uri(f"sqlite:///{registry}")
    yield trained
    mlflow.set_tracking_uri(before)  # MLflow keeps the URI in a global: the next test must not find this copy


@pytest.fixture
def trained_env(trained: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict]:
    """The trained platform, nothing promoted, in this test's own copy of the registry."""
    yield from registry_copy(trained, trained["env"]["MLFLOW_TRACKING_URI"], monkeypatch, tmp_path)


PROMOTED_SYSTEMS = ("moving_average", "xgboost_v1", "catboost_v8", "ensemble_v1")  # what the serving tests expect


@pytest.fixture(scope="session")
def promoted_registry(trained: dict, small_store: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The trained registry with the trained versions of ``PROMOTED_SYSTEMS`` in production (forced past
    the gate): made once, copied by each test that serves (``promoted_env``)."""
    import mlflow

    from registry.promotion import promote

    registry = tmp_path_factory.mktemp("promoted") / "mlflow.db"
    shutil.copy(trained["env"]["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"), registry)
    before = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**trained["env"], "MLFLOW_TRACKING_URI": f"sqlite:///{registry}"}.items():
            mp.setenv(key, value)
        for system in PROMOTED_SYSTEMS:
            promote(system, trained["results"][system].version, force=True, reason="serving tests",
                    warehouse=connect(small_store))
    mlflow.set_tracking_uri(before)
    return f"sqlite:///{registry}"


@pytest.fixture
def promoted_env(trained: dict, promoted_registry: str, monkeypatch: pytest.MonkeyPatch,
                 tmp_path: Path) -> Iterator[dict]:
    """The trained platform with ``PROMOTED_SYSTEMS`` in production, in this test's own copy of the registry."""
    yield from registry_copy(trained, promoted_registry, monkeypatch, tmp_path)
