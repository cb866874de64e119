"""Where the platform finds things: the one place that reads the environment.

Defaults keep everything inside the checkout (a DuckDB file, a SQLite MLflow store under
``mlruns/``) so a laptop with no cloud account runs the whole platform. Operators point the same
code at BigQuery, an MLflow server or a shared Optuna storage by setting the variables below.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


def data_root() -> Path:
    """``DATA_ROOT``: the one folder whose files ``POST /backfill`` may read (default the repository's
    ``data/``), so a token holder cannot make the server open any other path on it."""
    return Path(os.environ.get("DATA_ROOT") or REPO_ROOT / "data").resolve()


# MLflow's own defaults retry a failed HTTP call 7 times with doubling waits (about 4 minutes) and
# wait 120 s for an answer; the worker's registry lookups must fail in seconds instead, so a dead
# tracking server leaves what is loaded serving. An operator's own values of these variables win.
REGISTRY_HTTP_BOUNDS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@contextmanager
def bounded_registry_http() -> Iterator[None]:
    """MLflow reads these variables at every call, so setting them only while the worker refreshes
    bounds its lookups and leaves the defaults to training and promotion run in the same process
    (the worker's own process makes no other MLflow calls meanwhile)."""
    unset = [name for name in REGISTRY_HTTP_BOUNDS if name not in os.environ]
    os.environ.update({name: REGISTRY_HTTP_BOUNDS[name] for name in unset})
    try:
        yield
    finally:
        for name in unset:
            os.environ.pop(name, None)


def promoted_by() -> str:
    """Who a promotion or rollback is recorded as: ``PROMOTED_BY`` (a CI job sets it), else the OS user."""
    import getpass

    return os.environ.get("PROMOTED_BY") or getpass.getuser()


def promotion_lock_url() -> str | None:
    """``PROMOTION_LOCK_URL``: where promotions of one system take turns across machines
    (``postgresql://USER:PASSWORD@HOST/DB``, or ``file:///DIR`` for one machine); unset, a lock next to
    a local tracking store (see ``registry/locks.py``)."""
    return os.environ.get("PROMOTION_LOCK_URL") or None


def promotion_lock_wait() -> str:
    """``PROMOTION_LOCK_WAIT``: seconds a promotion waits for another of the same system (default 300)."""
    return os.environ.get("PROMOTION_LOCK_WAIT") or "300"


def alert_webhook_url() -> str | None:
    """``ALERT_WEBHOOK_URL``: where monitoring alerts are POSTed as Slack-compatible JSON; unset, none are sent."""
    return os.environ.get("ALERT_WEBHOOK_URL") or None


def odds_api_key() -> str | None:
    """``ODDS_API_KEY``: The Odds API key for sportsbook points lines (``sources/lines.py``)."""
    return os.environ.get("ODDS_API_KEY") or None


NBA_STATS_VARIABLES = {"timeout": "NBA_STATS_TIMEOUT", "attempts": "NBA_STATS_ATTEMPTS",
                       "backoff": "NBA_STATS_BACKOFF", "delay": "NBA_STATS_DELAY"}


def nba_stats_politeness() -> dict[str, str]:
    """How ``sources/nba_stats.py`` treats stats.nba.com (defaults there): ``NBA_STATS_TIMEOUT`` seconds per
    request, ``NBA_STATS_ATTEMPTS`` tries per request, ``NBA_STATS_BACKOFF`` seconds before the first retry
    (doubled for each next one), ``NBA_STATS_DELAY`` seconds between requests. Only the variables set."""
    return {key: os.environ[name] for key, name in NBA_STATS_VARIABLES.items() if os.environ.get(name)}
