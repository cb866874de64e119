"""Issue 15 rows 1 and 5 through the daily job: a worker that cannot be reached or serves nothing is an
alert of its own while monitoring still runs, ``daily`` ends in one sentence (exit 1), and a bad
webhook URL is refused before any work (exit 2)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import cli
from contracts import ALERTS_SCHEMA, DATA_CHECKS_SCHEMA, DATA_SYSTEM, MONITORING_SCHEMA, season_window
from live.daily import DailyConfig, Worker, run_daily
from live.replay import evening
from sources.base import Sources
from sources.files import FileResults
from tests.conftest import SEASON_2024_25
from tests.fakes.webhook import Receiver
from tests.integration.test_daily import EVENINGS, evening_before  # noqa: F401 (fixture)
from warehouse import Warehouse

DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once


def _rules(warehouse: Warehouse, day: dt.date) -> dict[str, tuple[str, str]]:
    alerts = warehouse.read(ALERTS_SCHEMA, date_range=(day, day))
    return {r.rule: (r.message, r.delivery) for r in alerts.itertuples()}


@pytest.mark.slow
def test_an_unreachable_worker_is_an_alert_and_monitoring_still_runs(evening_before: Warehouse) -> None:  # noqa: F811
    # before: ConnectError traceback at the slate step; the monitor and alert steps never ran
    day = EVENINGS[0]
    with Receiver() as webhook:
        report = run_daily(DailyConfig(day, retrain_every=0, now=evening(day), webhook_url=webhook.url),
                           Sources(FileResults(SEASON_2024_25)), evening_before, Worker(DEAD, reload=lambda: None))
        posted = webhook.bodies.get(timeout=5)["text"]
    steps = dict(report.steps)
    assert steps["predict"].startswith(f"the worker at {DEAD} could not be asked what it serves (ConnectError")
    assert "drift" in steps and "worker_unavailable [worker]" in steps["alerts"]
    message, delivery = _rules(evening_before, day)["worker_unavailable"]
    assert message == steps["predict"] and delivery == "delivered" and "worker_unavailable [worker]" in posted
    stored = evening_before.read(MONITORING_SCHEMA, date_range=(day, day))
    assert (stored["system"] == DATA_SYSTEM).any()  # the day's data metrics were recorded all the same


@pytest.mark.slow
def test_a_worker_serving_nothing_is_an_alert_and_daily_ends_in_one_sentence(
        evening_before: Warehouse, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],  # noqa: F811
        tmp_path: Path) -> None:
    # an MLflow store of its own with no registered model: the in-process worker serves no system
    monkeypatch.setenv("WAREHOUSE_URL", evening_before.url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    day = EVENINGS[0]
    code = cli.main(["-q", "daily", "--date", str(day), "--results", str(SEASON_2024_25), "--lines", "none",
                     "--retrain-every", "0"])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"daily: {day}: 1 alert(s) raised (worker_unavailable) and 0 day(s) "
                                            "held; the alerts and checks lines above say why")
    message, delivery = _rules(evening_before, day)["worker_unavailable"]
    assert message.startswith("the worker at http://127.0.0.1:") and "serves no system" in message
    assert delivery == "unsent" and "worker_unavailable" in out


@pytest.mark.parametrize("url", ["http://[::1/services/T0/B0/secret", "hooks.slack.com/services/T0/B0/secret"])
def test_a_bad_webhook_url_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], url: str) -> None:
    # before: found at the alert step, after the day's work, as an AlertConfigError (or ValueError) traceback
    store = tmp_path / "never.duckdb"
    monkeypatch.setenv("WAREHOUSE_URL", f"duckdb:///{store}")
    monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
    assert cli.main(["-q", "daily", "--date", "2025-01-09", "--results", "shipped"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("daily: alert webhook URL '") and "secret" not in err
    assert not store.exists()  # nothing was opened, let alone written



@pytest.mark.parametrize(("day", "why"), [("9999-12-31", "after {last}, the end of the season after this one"),
                                          ("0001-01-01", "before the league's first season (1946-47)")])
def test_row_7_a_date_outside_the_seasons_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str], day: str,
                                                                   why: str) -> None:
    # issue 15 row 7, before: 9999-12-31 ingested every day and built no feature (exit 0); 0001-01-01 a traceback
    store = tmp_path / "never.duckdb"
    monkeypatch.setenv("WAREHOUSE_URL", f"duckdb:///{store}")
    assert cli.main(["-q", "daily", "--date", day, "--results", "shipped"]) == 2
    last = season_window(dt.date.today())[1]
    assert capsys.readouterr().err == f"daily: date is '{day}', {why.format(last=last)}\n"
    assert not store.exists()

def test_a_ragged_results_file_ends_daily_with_exit_2_not_1(evening_before: Warehouse, tmp_path: Path,  # noqa: F811
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # issue 15 row 6 through daily: a ragged results file is the user's to fix (2), not an alert (1)
    bad = tmp_path / "results.csv"
    bad.write_text("PLAYER_ID,PTS\n1,2,3\n")
    monkeypatch.setenv("WAREHOUSE_URL", evening_before.url)
    before = evening_before.read(DATA_CHECKS_SCHEMA)
    assert cli.main(["-q", "daily", "--date", "2025-01-09", "--results", str(bad), "--retrain-every", "0"]) == 2
    assert capsys.readouterr().err == f"daily: {bad} line 2: 3 cell(s), expected 2 as in the header\n"
    assert evening_before.read(DATA_CHECKS_SCHEMA).equals(before)
