"""Alert rules end to end: stored alert rows and Slack-style POSTs received by a real HTTP server on loopback."""

from __future__ import annotations

import datetime as dt
import re
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


@pytest.mark.parametrize(("url", "shown"), [("hooks.slack.com/services/T0/B0/secret", "'hooks.slack.com/…'"),
                                           ("http://[::1/services/secret", "'http://[::1/…'"),
                                           ("ftp://hooks.example.com/secret", "'ftp://hooks.example.com/…'")])
def test_bad_webhook_url_is_named_without_its_secret_path(warehouse, url: str, shown: str) -> None:
    # "http://[::1/x" ended in a ValueError traceback from urlsplit; the message showed 40 characters of the URL
    with pytest.raises(AlertConfigError, match=f"^alert webhook URL {re.escape(shown)} is not an http") as refused:
        raise_alerts(warehouse, DAY, metric_rows(4.0, 10, 0.1), {}, Thresholds(), url)
    assert "secret" not in str(refused.value)


# --- issue 15 row 1: delivery state, retried on later runs with backoff, bounded ------------------
def _delivery(warehouse) -> list[tuple]:
    return [tuple(r) for r in warehouse.read(ALERTS_SCHEMA)[["rule", "delivery", "attempts"]].itertuples(index=False)]


def test_a_failed_post_is_retried_by_later_runs_once_its_wait_is_over(warehouse, receiver: Receiver) -> None:
    # before: a failed POST was stored like a sent one and never tried again
    metrics = metric_rows(mae_7d=5.2, n_graded=900, psi_max=0.1)
    mae = {("xgboost_v1", "3"): 4.45}
    with Receiver(status=503) as broken:
        first = raise_alerts(warehouse, DAY, metrics, mae, Thresholds(), broken.url, NOW)
        assert broken.bodies.get(timeout=5)
    assert (first.notified, first.pending) == (0, 1)
    assert first.webhook_error == "alert webhook at 127.0.0.1 answered HTTP 503"
    stored = warehouse.read(ALERTS_SCHEMA).iloc[0]
    assert (stored["delivery"], stored["attempts"], stored["attempted_at"]) == ("pending", 1, NOW)
    assert stored["delivery_error"] == first.webhook_error

    early = raise_alerts(warehouse, DAY, metrics, mae, Thresholds(), receiver.url, NOW + pd.Timedelta(minutes=20))
    assert receiver.bodies.empty() and (early.notified, early.pending) == (0, 1)  # 30 minutes not over yet
    # the next evening raises nothing new, and the day before's alert arrives
    later = raise_alerts(warehouse, DAY + dt.timedelta(days=1), metric_rows(4.0, 10, 0.1).assign(
        game_date=DAY + dt.timedelta(days=1)), mae, Thresholds(), receiver.url, NOW + pd.Timedelta(days=1))
    assert later.alerts == [] and (later.notified, later.pending, later.webhook_error) == (1, 0, None)
    text = receiver.bodies.get(timeout=5)["text"]
    assert "1 alert(s)" in text and "2025-01-20 mae_above_test [points xgboost_v1]" in text
    assert _delivery(warehouse) == [("mae_above_test", "delivered", 2)]
    raise_alerts(warehouse, DAY, metrics, mae, Thresholds(), receiver.url, NOW + pd.Timedelta(days=2))
    assert receiver.bodies.empty()  # delivered: never again


def test_retries_are_bounded_and_wait_longer_each_time(warehouse) -> None:
    from monitoring.alerts import DELIVERY_ATTEMPTS

    metrics = metric_rows(mae_7d=5.2, n_graded=900, psi_max=0.1)
    posts, given_up = [], 0
    with Receiver(status=500) as broken:
        for minute in (0, 15, 30, 85, 90, 210, 450, 930, 2880):  # runs just before and when each retry is due
            outcome = raise_alerts(warehouse, DAY, metrics, {("xgboost_v1", "3"): 4.45}, Thresholds(), broken.url,
                                   NOW + pd.Timedelta(minutes=minute))
            given_up += outcome.given_up
            if not broken.bodies.empty():
                broken.bodies.get()
                posts.append(minute)
    # waits of 30 minutes doubling after each failure: 30, 60, 120, 240, 480; then no more tries
    assert DELIVERY_ATTEMPTS == 6 and posts == [0, 30, 90, 210, 450, 930] and given_up == 1
    assert _delivery(warehouse) == [("mae_above_test", "given_up", 6)]


def test_alerts_stored_without_a_webhook_are_sent_once_one_is_set(warehouse, receiver: Receiver) -> None:
    metrics = metric_rows(mae_7d=5.2, n_graded=900, psi_max=0.1)
    raise_alerts(warehouse, DAY, metrics, {("xgboost_v1", "3"): 4.45}, Thresholds(), None, NOW)
    assert _delivery(warehouse) == [("mae_above_test", "unsent", 0)]
    rerun = raise_alerts(warehouse, DAY, metrics, {("xgboost_v1", "3"): 4.45}, Thresholds(), receiver.url, NOW)
    assert rerun.notified == 1 and receiver.bodies.get(timeout=5)
    assert _delivery(warehouse) == [("mae_above_test", "delivered", 1)]


def test_alerts_of_an_older_store_gain_the_delivery_columns_and_are_not_sent_again(
        warehouse, receiver: Receiver) -> None:
    import duckdb

    with duckdb.connect(warehouse.url.removeprefix("duckdb:///")) as con:  # the table as the last version made it
        con.execute("CREATE TABLE alerts (game_date DATE NOT NULL, rule VARCHAR NOT NULL, system VARCHAR NOT NULL, "
                    "value DOUBLE, threshold DOUBLE, message VARCHAR NOT NULL, created_at TIMESTAMPTZ NOT NULL)")
        con.execute("INSERT INTO alerts VALUES ('2025-01-19', 'drift', 'data', 3.0, 2.0, 'old', '2025-01-19 08:00Z')")
    outcome = raise_alerts(warehouse, DAY, metric_rows(4.0, 10, 0.1), {}, Thresholds(), receiver.url, NOW)
    assert outcome.alerts == [] and outcome.notified == 0 and receiver.bodies.empty()
    old = warehouse.read(ALERTS_SCHEMA).iloc[0]
    assert old["message"] == "old" and pd.isna(old["delivery"])
