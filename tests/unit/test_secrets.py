"""Issue 15 row 5: secrets come from the environment or a file, never an MLproject parameter, and no log
line or open answer shows one (``settings.hide_secrets``, ``settings.public_text``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.projects import _project_spec

import settings
from contracts import ENTRY_POINTS

WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"


def test_a_secret_comes_from_the_variable_or_the_file_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    (tmp_path / "webhook").write_text(WEBHOOK + "\n")
    monkeypatch.setenv("ALERT_WEBHOOK_URL_FILE", str(tmp_path / "webhook"))
    assert settings.alert_webhook_url() == WEBHOOK
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "https://example.com/hook")
    assert settings.alert_webhook_url() == "https://example.com/hook"  # the variable wins
    monkeypatch.delenv("ODDS_API_KEY", raising=False)
    monkeypatch.setenv("ODDS_API_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(settings.SettingError, match=r"^ODDS_API_KEY_FILE is '.*missing', which cannot be read "
                                                    r"\(FileNotFoundError\)$"):
        settings.odds_api_key()


def test_no_entry_point_takes_a_secret_as_a_parameter() -> None:
    # mlflow run stores every parameter as a run param and prints the command line: webhook_url was one
    project = _project_spec.load_project(str(settings.REPO_ROOT))
    names = {name for entry in ENTRY_POINTS for name in project.get_entry_point(entry).parameters}
    assert not {n for n in names if any(word in n for word in ("webhook", "key", "token", "password", "secret"))}


def test_secrets_passwords_and_paths_are_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_URL", WEBHOOK)
    monkeypatch.setenv("ODDS_API_KEY", "k-odds-123456")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ops:tr4cking-pw@mlflow.internal:5000")
    text = (f"POST {WEBHOOK} failed; GET /v4/events?apiKey=k-odds-123456&regions=us; password tr4cking-pw; "
            "postgresql://lock:l0ck-pw@db:5432/locks; token=abcdef123")
    assert settings.hide_secrets(text) == (
        "POST *** failed; GET /v4/events?apiKey=***&regions=us; password ***; postgresql://lock:***@db:5432/locks; "
        "token=***")
    shown = settings.public_text("duckdb:////srv/nba/warehouse.duckdb: IO Error: Cannot open file "
                                 '"/srv/nba/warehouse.duckdb": not a database; model at file:///srv/mlruns/1/a/model '
                                 "via http://mlflow.internal:5000/api/2.0/mlflow/registered-models/alias")
    assert shown == ('duckdb:///…/warehouse.duckdb: IO Error: Cannot open file "…/warehouse.duckdb": not a database; '
                     "model at file:///…/model via http://mlflow.internal:5000/api/2.0/mlflow/registered-models/alias")


def test_no_log_line_of_any_library_shows_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # with -v, httpx logged the odds request URL with apiKey=, and MLflow its tracking URI
    monkeypatch.setenv("ODDS_API_KEY", "k-odds-123456")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ops:tr4cking-pw@mlflow.internal:5000")
    code = ("import logging, cli; cli.configure_logging(logging.DEBUG); "
            "logging.getLogger('httpx').info('HTTP Request: GET %s', 'https://x/v4?apiKey=k-odds-123456'); "
            "logging.getLogger('mlflow').warning('tracking %s', 'http://ops:tr4cking-pw@mlflow.internal:5000'); "
            "logging.getLogger('sources.lines').info('key k-odds-123456')")
    err = subprocess.run([sys.executable, "-c", code], cwd=settings.REPO_ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stderr
    assert err.count("\n") == 3 and "apiKey=***" in err and "ops:***@mlflow.internal" in err and "key ***" in err
    assert "k-odds-123456" not in err and "tr4cking-pw" not in err
