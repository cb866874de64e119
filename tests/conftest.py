"""Shared fixtures: slices of the real shipped data, and a throw-away warehouse per test."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest

import settings
from warehouse import Warehouse, connect
from warehouse.ingest import read_box_scores, read_lines

SEASON_2024_25 = settings.BOX_SCORES_DEFAULT / "player_logs_2024-25.csv.gz"


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


@pytest.fixture(scope="session")
def trained(small_store: str, tmp_path_factory: pytest.TempPathFactory):
    """Every system of the table trained by ``experiments/quick.yaml`` (2 Optuna trials per tuned
    system, data to 2025-02-15, test from 2025-01-01) and registered in a SQLite MLflow store."""
    from training.spec import load_spec
    from training.train import train

    root = tmp_path_factory.mktemp("mlflow")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
           "MLFLOW_ARTIFACT_ROOT": (root / "artifacts").as_uri(), "WAREHOUSE_URL": small_store}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        spec = load_spec(QUICK_SPEC)
        results = train(spec, connect(small_store), optuna_storage=f"sqlite:///{root / 'optuna.db'}", progress=False)
    return {"env": env, "results": results, "spec": spec}


@pytest.fixture
def trained_env(trained: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The trained platform's settings applied to this test's environment."""
    import mlflow

    for key, value in trained["env"].items():
        monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(trained["env"]["MLFLOW_TRACKING_URI"])
    return trained
