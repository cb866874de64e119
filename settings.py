"""Where the platform finds things: the one place that reads the environment.

Defaults keep everything inside the checkout (a DuckDB file, a SQLite MLflow store under
``mlruns/``) so a laptop with no cloud account runs the whole platform. Operators point the same
code at BigQuery, an MLflow server or a shared Optuna storage by setting the variables below.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

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


class SettingError(ValueError):
    """A setting that cannot be read; the message names the variable."""


def _secret(name: str) -> str | None:
    """``NAME``, else the contents of the file ``NAME_FILE`` names (a mounted secret, as Docker and
    Kubernetes provide them), whitespace stripped. A secret is never a command-line option or an MLproject
    parameter: ``ps`` shows the one, MLflow stores the other as a run param."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingError(f"{name}_FILE is {path!r}, which cannot be read ({type(exc).__name__})") from None


def worker_token() -> str | None:
    """``WORKER_TOKEN`` (or ``WORKER_TOKEN_FILE``): Bearer token for the worker's and coordinator's
    write endpoints (``/reload``, ``/start``)."""
    return _secret("WORKER_TOKEN")


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
    """``ALERT_WEBHOOK_URL`` (or ``ALERT_WEBHOOK_URL_FILE``): where monitoring alerts are POSTed as
    Slack-compatible JSON; unset, none are sent. A Slack webhook URL is a secret: anyone holding it posts."""
    return _secret("ALERT_WEBHOOK_URL")


def odds_api_key() -> str | None:
    """``ODDS_API_KEY`` (or ``ODDS_API_KEY_FILE``): The Odds API key for sportsbook points lines
    (``sources/lines.py``)."""
    return _secret("ODDS_API_KEY")


# --- what may be shown of a setting --------------------------------------------------------------
SECRET_SETTINGS = ("ALERT_WEBHOOK_URL", "ODDS_API_KEY", "WORKER_TOKEN")
URL_SETTINGS = ("MLFLOW_TRACKING_URI", "WAREHOUSE_URL", "OPTUNA_STORAGE", "PROMOTION_LOCK_URL", "MLFLOW_ARTIFACT_ROOT")
SHORTEST_SECRET = 6  # a shorter value would blank out ordinary words
_URL_PASSWORD = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/\s:@'\"]*):[^/\s@'\"]*@")
_QUERY_SECRET = re.compile(r"(?i)\b(api_?key|token|password|secret)=[^&\s'\"]+")
_LOCAL_URI = re.compile(r"\b(file|sqlite|duckdb):/+[^\s'\"]*")
# an absolute path of two parts or more, not the path of a URL (whose slashes follow a host or a part)
_PATH = re.compile(r"(?<![\w.~%+=&:/-])(?:/[^\s/'\"(),;:]+){2,}/?")


def _secret_values() -> list[str]:
    """Every secret this process was given: the secret settings' values and the passwords in the URL
    settings, longest first (a key inside a URL goes with the URL)."""
    values = []
    for name in SECRET_SETTINGS:
        try:
            values.append(_secret(name) or "")
        except SettingError:
            continue
    for name in URL_SETTINGS:
        try:
            values.append(urlsplit(os.environ.get(name, "")).password or "")
        except ValueError:
            continue
    return sorted({v for v in values if len(v) >= SHORTEST_SECRET}, key=len, reverse=True)


def hide_secrets(text: str) -> str:
    """``text`` with each secret this process knows, each URL's password and each ``apiKey=``-style query
    value replaced by ``***``: for log lines and anything else a person or a log store keeps."""
    for value in _secret_values():
        text = text.replace(value, "***")
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m[1]}=***", text)


def public_text(text: str) -> str:
    """What an unauthenticated answer may show of ``text``: no secret (``hide_secrets``), and no path on
    the server (a file or local store is named by its last part: ``…/warehouse.duckdb``), since paths tell
    a caller how the machine is laid out."""
    text = _LOCAL_URI.sub(lambda m: f"{m[1]}:///…/{m[0].rstrip('/').rsplit('/', 1)[-1]}", hide_secrets(text))
    return _PATH.sub(lambda m: "…/" + m[0].rstrip("/").rsplit("/", 1)[-1], text)


class SecretFilter(logging.Filter):
    """Rewrites each record's message through ``hide_secrets``: installed on the log handlers, it covers
    every library's loggers, whatever they print (httpx's request URLs, MLflow's tracking URI)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = hide_secrets(message)
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


NBA_STATS_VARIABLES = {"timeout": "NBA_STATS_TIMEOUT", "attempts": "NBA_STATS_ATTEMPTS",
                       "backoff": "NBA_STATS_BACKOFF", "delay": "NBA_STATS_DELAY"}


def nba_stats_politeness() -> dict[str, str]:
    """How ``sources/nba_stats.py`` treats stats.nba.com (defaults there): ``NBA_STATS_TIMEOUT`` seconds per
    request, ``NBA_STATS_ATTEMPTS`` tries per request, ``NBA_STATS_BACKOFF`` seconds before the first retry
    (doubled for each next one), ``NBA_STATS_DELAY`` seconds between requests. Only the variables set."""
    return {key: os.environ[name] for key, name in NBA_STATS_VARIABLES.items() if os.environ.get(name)}
