"""Where the platform finds things: the one place that reads the environment.

Defaults keep everything inside the checkout (a DuckDB file, a SQLite MLflow store under
``mlruns/``) so a laptop with no cloud account runs the whole platform. Operators point the same
code at BigQuery, an MLflow server or a shared Optuna storage by setting the variables below.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
DATA_DIR = REPO_ROOT / "data" / "nba"
BOX_SCORES_DEFAULT = DATA_DIR / "box_scores"
LINES_DEFAULT = DATA_DIR / "dfs_lines_2024-25"
MLRUNS_DIR = REPO_ROOT / "mlruns"


def warehouse_url() -> str:
    """``WAREHOUSE_URL``: ``duckdb:///PATH`` or ``bigquery://PROJECT/DATASET``."""
    return os.environ.get("WAREHOUSE_URL") or f"duckdb:///{REPO_ROOT / 'warehouse.duckdb'}"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else a SQLite store under ``mlruns/`` (set explicitly: MLflow's
    own default moved to ``./mlflow.db`` and depends on the working directory)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{MLRUNS_DIR / 'mlflow.db'}"


def artifact_root() -> str:
    """Where new experiments keep artifacts when the tracking store is local."""
    return os.environ.get("MLFLOW_ARTIFACT_ROOT") or (MLRUNS_DIR / "artifacts").as_uri()


def optuna_storage_default() -> str:
    return os.environ.get("OPTUNA_STORAGE") or f"sqlite:///{MLRUNS_DIR / 'optuna.db'}"


def worker_token() -> str | None:
    """Bearer token for the worker's and coordinator's write endpoints (``/reload``, ``/start``)."""
    return os.environ.get("WORKER_TOKEN")


def promoted_by() -> str:
    """Who a promotion or rollback is recorded as: ``PROMOTED_BY`` (a CI job sets it), else the OS user."""
    import getpass

    return os.environ.get("PROMOTED_BY") or getpass.getuser()
