"""Alert rules end to end: stored alert rows and Slack-style POSTs received by a real HTTP server on loopback."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pandas as pd
import pytest

from contracts import ALERT_RULES, ALERTS_SCHEMA, BOX_SCORES_SCHEMA, MONITORING_SCHEMA, SCHEDULE_SCHEMA
from monitoring.alerts import AlertConfigError, Thresholds, post_webhook, raise_alerts
from tests.fakes.webhook import Receiver

DAY = dt.date(2025, 1, 20)
NOW = pd.Timestamp("2025-01-20 08:00", tz="UTC")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def metric_rows(mae_7d: float, n_graded: float, psi_max: float, freshness: float = 1.0) -> pd.DataFrame:
    rows = [("xgboost_v1", "3", "7d", "mae", mae_7d), ("xgboost_v1", "3", "7d", "n_graded", n_graded),
            ("xgboost_v1", "3", "30d", "hit_rate", 44.0), ("xgboost_v1", "3", "30d", "n_calls", 150.0),
            ("data", "v2.1", "7d", "psi_max", psi_max), ("data", "v2.1", "7d", "psi.pace_score", psi_max),
            ("data", "v2.1", "day", "freshness_days", freshness)]
    frame = pd.DataFrame(rows, columns=["system", "model_version", "period", "metric", "value"])
    market = frame["system"].map(lambda s: "all" if s == "data" else "points")
    return frame.assign(game_date=DAY, market=market, created_at=NOW)[MONITORING_SCHEMA.column_names]


def schedule(dates: list[dt.date]) -> pd.DataFrame:
    return pd.DataFrame({"game_date": dates, "game_id": [f"G{i}" for i in range(len(dates))], "season": "2024-25",
                         "home_team": "BOS", "away_team": "NYK"})


def test_forced_thresholds_store_alerts_and_post_once(warehouse, box_2024_25: pd.DataFrame,
                                                      receiver: Receiver) -> None:
    warehouse.write(BOX_SCORES_SCHEMA, box_2024_25[box_2024_25["game_date"].isin(
        [dt.date(2025, 1, 17), dt.date(2025, 1, 19)])])
    warehouse.write(SCHEDULE_SCHEMA, schedule([dt.date(2025, 1, 17), dt.date(2025, 1, 18), dt.date(2025, 1, 19)]))
    metrics = metric_rows(mae_7d=5.2, n_graded=900, psi_max=2.7)
    forced = Thresholds(min_calls=100)  # the 150 calls at 44% now count

    outcome = raise_alerts(warehouse, DAY, metrics, {("xgboost_v1", "3"): 4.45}, forced, receiver.url)

    fired = {(a.rule, a.system): a for a in outcome.alerts}
    assert {rule for rule, _ in fired} < set(ALERT_RULES)
    assert set(fired) == {("mae_above_test", "xgboost_v1"), ("hit_rate_low", "xgboost_v1"), ("drift", "data"),
                          ("day_missing", "data")}
    assert fired["mae_above_test", "xgboost_v1"].threshold == pytest.approx(4.95)
    assert "2025-01-18" in fired["day_missing", "data"].message and fired["day_missing", "data"].value == 1
    assert "pace_score" in fired["drift", "data"].message
    text = receiver.bodies.get(timeout=5)["text"]
    assert "4 alert(s)" in text and "mae_above_test [points xgboost_v1]" in text and "day_missing [data]" in text
    stored = warehouse.read(ALERTS_SCHEMA)
    assert len(stored) == 4 and outcome.notified == 4 and outcome.webhook_error is None

    again = raise_alerts(warehouse, DAY, metrics, {("xgboost_v1", "3"): 4.45}, forced, receiver.url)
    assert len(again.alerts) == 4 and again.notified == 0
    assert receiver.bodies.empty()  # the POST is synchronous: a second one would be queued by now
    pd.testing.assert_frame_equal(warehouse.read(ALERTS_SCHEMA), stored)


def test_within_thresholds_nothing_fires(warehouse, receiver: Receiver) -> None:
    # MAE far above test but over too few player-games; drift and hit rate under their bounds
    outcome = raise_alerts(warehouse, DAY, metric_rows(mae_7d=9.0, n_graded=50, psi_max=0.8),
                           {("xgboost_v1", "3"): 4.45}, Thresholds(), receiver.url)
    assert outcome.alerts == [] and receiver.bodies.empty() and warehouse.count(ALERTS_SCHEMA) == 0


def test_stale_results_fire_in_season_only(warehouse) -> None:
    stale = raise_alerts(warehouse, DAY, metric_rows(5.0, 0, 0.1, freshness=12), {}, Thresholds())
    assert [(a.rule, a.value) for a in stale.alerts] == [("stale_results", 12.0)]
    opening = dt.date(2025, 10, 21)  # latest results from last April: a new season, nothing stale
    rows = metric_rows(5.0, 0, 0.1, freshness=(opening - dt.date(2025, 4, 13)).days).assign(game_date=opening)
    assert raise_alerts(warehouse, opening, rows, {}, Thresholds()).alerts == []


def test_failing_webhook_is_reported_not_raised(warehouse) -> None:
    metrics = metric_rows(mae_7d=5.2, n_graded=900, psi_max=0.1)
    with Receiver(status=500) as broken:
        outcome = raise_alerts(warehouse, DAY, metrics, {("xgboost_v1", "3"): 4.45}, Thresholds(), broken.url)
        assert broken.bodies.get(timeout=5)["text"]
    assert [a.rule for a in outcome.alerts] == ["mae_above_test"] and outcome.notified == 0
    assert outcome.webhook_error == "alert webhook at 127.0.0.1 answered HTTP 500"  # no secret path in it
    assert warehouse.count(ALERTS_SCHEMA) == 1


def test_webhook_timeout_is_bounded() -> None:
    from monitoring.alerts import Alert

    alert = Alert(DAY, "drift", "all", "data", 3.0, 2.0, "test")
    with Receiver(hang=True) as silent:
        error = post_webhook([alert], silent.url, timeout=0.5)
        assert silent.bodies.get(timeout=5)["text"]
    assert error is not None and error.startswith("alert webhook at 127.0.0.1 failed: ReadTimeout")


@pytest.mark.parametrize(("settings", "message"), [
    ({"max_psi": -1}, "max_psi is -1; expected a number >= 0"),
    ({"hit_rate_period": "14d"}, "hit_rate_period is '14d'; expected one of day, 7d, 30d"),
    ({"min_hit_rate": 150}, "min_hit_rate is 150; expected a percentage <= 100"),
])
def test_bad_thresholds_are_named(settings: dict, message: str) -> None:
    with pytest.raises(AlertConfigError, match=f"^{message}$"):
        Thresholds(**settings)


def test_bad_webhook_url_is_named(warehouse) -> None:
    with pytest.raises(AlertConfigError, match="alert webhook URL is 'hooks.slack.com/x'; expected an http"):
        raise_alerts(warehouse, DAY, metric_rows(4.0, 10, 0.1), {}, Thresholds(), "hooks.slack.com/x")
