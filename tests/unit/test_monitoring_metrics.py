"""Monitoring metrics on hand-built grades and feature rows, values checked exactly, plus a real season slice."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from contracts import DATA_METRIC_KEYS, MONITORING_METRIC_KEYS, PREDICTION_GRADES_SCHEMA
from features.build import build_features
from features.definitions import FEATURE_NAMES
from monitoring.metrics import DriftReference, data_metrics, drift_reference, feature_psi, model_metrics

DAY = dt.date(2025, 1, 20)
NOW = pd.Timestamp("2025-01-21 08:00", tz="UTC")


def grades(rows: list[tuple], day: dt.date = DAY, system: str = "xgboost_v1", version: str = "3") -> pd.DataFrame:
    """(outcome, actual, error, line, ou_result, p_over) -> prediction_grades rows."""
    frame = pd.DataFrame(rows, columns=["outcome", "actual_points", "abs_error", "line", "ou_result", "p_over"])
    return frame.assign(game_date=day, game_id="G", player_id=range(len(frame)), market="points", system=system,
                        model_version=version, predicted_points=0.0, recommendation="OVER",
                        graded_at=NOW)[PREDICTION_GRADES_SCHEMA.column_names]


def values(rows: pd.DataFrame, period: str = "day", system: str = "xgboost_v1") -> dict[str, float]:
    """The metrics of one period of ``system`` (its version "3"; the data metrics' only version)."""
    picked = rows[(rows["period"] == period) & (rows["system"] == system) & (rows["model_version"] != "4")]
    return dict(zip(picked["metric"], picked["value"], strict=True))


DAY_GRADES = grades([
    ("graded", 20.0, 1.0, 18.5, "win", 0.7),    # over happened, p 0.7: (0.7 - 1)^2 = 0.09
    ("graded", 10.0, 2.0, 12.5, "loss", 0.4),   # under happened, p 0.4: 0.16
    ("graded", 15.0, 3.0, 15.0, "push", 0.9),   # push: no over/under truth, left out of the Brier score
    ("graded", 30.0, 4.0, np.nan, None, np.nan),
    ("void", np.nan, np.nan, 11.5, None, 0.6),
])


def test_day_metrics_are_exact_on_known_grades() -> None:
    got = values(model_metrics(DAY_GRADES, DAY, created_at=NOW))
    assert set(got) == set(MONITORING_METRIC_KEYS)
    assert got["mae"] == 2.5 and got["within_3_pct"] == 75.0
    assert got["hit_rate"] == 50.0 and got["n_calls"] == 2 and got["n_pushes"] == 1
    assert got["brier"] == pytest.approx(0.125)
    assert got["n_graded"] == 4 and got["n_void"] == 1
    # |p - 0.5|: 0.2 (win) falls in [0.2, 0.5], 0.1 (loss) in [0.1, 0.2)
    assert got["hit_rate_conf_20_50"] == 100.0 and got["n_calls_conf_20_50"] == 1
    assert got["hit_rate_conf_10_20"] == 0.0 and got["n_calls_conf_10_20"] == 1
    assert np.isnan(got["hit_rate_conf_00_05"]) and got["n_calls_conf_00_05"] == 0  # undefined, stored as null


def test_rolling_windows_count_calendar_days_per_system_and_version() -> None:
    history = pd.concat([
        DAY_GRADES,
        grades([("graded", 10.0, 6.0, np.nan, None, np.nan)], day=DAY - dt.timedelta(days=6)),   # in 7d
        grades([("graded", 10.0, 8.0, np.nan, None, np.nan)], day=DAY - dt.timedelta(days=7)),   # 30d only
        grades([("graded", 10.0, 9.0, np.nan, None, np.nan)], day=DAY - dt.timedelta(days=30)),  # outside
        grades([("graded", 10.0, 1.0, np.nan, None, np.nan)], version="4"),
    ], ignore_index=True)
    rows = model_metrics(history, DAY, created_at=NOW)
    assert values(rows, "7d")["mae"] == pytest.approx((1 + 2 + 3 + 4 + 6) / 5)
    assert values(rows, "30d")["mae"] == pytest.approx((1 + 2 + 3 + 4 + 6 + 8) / 6)
    v4 = rows[rows["model_version"] == "4"]
    assert set(v4["period"]) == {"day", "7d", "30d"} and (v4[v4["metric"] == "mae"]["value"] == 1.0).all()


def _features(values: dict[str, list[float]], day: dt.date = DAY) -> pd.DataFrame:
    n = len(next(iter(values.values())))
    frame = pd.DataFrame({name: values.get(name, [1.0] * n) for name in FEATURE_NAMES})
    return frame.assign(game_date=day)


def test_psi_of_a_known_shift_and_reference_round_trip() -> None:
    reference = drift_reference(_features({"is_home": [0.0, 0.0, 1.0, 1.0] * 25}))
    assert reference.shares["is_home"] == [0.0, 0.5, 0.0, 0.5]  # a bin per value, not one bin for a flag
    home_heavy = _features({"is_home": [0.0] * 20 + [1.0] * 80})
    expected = (0.2 - 0.5) * np.log(0.2 / 0.5) + (0.8 - 0.5) * np.log(0.8 / 0.5)
    assert feature_psi(reference, home_heavy)["is_home"] == pytest.approx(expected)
    assert feature_psi(reference, _features({"is_home": [0.0, 1.0] * 50}))["is_home"] == pytest.approx(0.0)
    assert DriftReference.from_json(reference.to_json()) == reference


def test_data_metrics_missing_share_freshness_and_seasonal_features_left_out_of_the_max() -> None:
    reference = drift_reference(_features({"is_home": [0.0, 1.0] * 50, "days_rest": [1.0, 2.0] * 50}))
    today = _features({"is_home": [0.0, 1.0] * 5, "days_rest": [0.0] * 10, "vegas_points_line": [np.nan] * 10})
    earlier = _features({"is_home": [0.0] * 10}, day=DAY - dt.timedelta(days=3))
    rows = data_metrics(DAY, pd.concat([today, earlier]), reference, latest_results=DAY - dt.timedelta(days=2),
                        created_at=NOW)
    day, week = values(rows, "day", "data"), values(rows, "7d", "data")
    assert set(day) | set(week) == {*DATA_METRIC_KEYS, *(f"psi.{name}" for name in FEATURE_NAMES)}
    assert day["missing_input_share"] == pytest.approx(1 / len(FEATURE_NAMES))
    assert day["freshness_days"] == 2 and day["n_feature_rows"] == 10
    assert week["psi.is_home"] == pytest.approx(feature_psi(reference, pd.concat([today, earlier]))["is_home"])
    assert week["psi.days_rest"] > week["psi.is_home"]  # a schedule feature: logged, not the alarm
    assert week["psi_max"] == week["psi.is_home"]


def test_real_season_drift_is_quiet_mid_season_and_loud_on_opening_week(box_2024_25: pd.DataFrame) -> None:
    """Reference: the real 2024-25 rows before Jan 2025. Mid-January (same players, same teams)
    stays below the default alert bound; the opening week, when lineup features restart, does not."""
    features = build_features(box_2024_25)
    reference = drift_reference(features[(features["game_date"] >= dt.date(2024, 11, 15))
                                         & (features["game_date"] < dt.date(2025, 1, 1))])
    quiet = values(data_metrics(dt.date(2025, 1, 20), features, reference, dt.date(2025, 1, 19)), "7d", "data")
    loud = values(data_metrics(dt.date(2024, 10, 28), features, reference, dt.date(2024, 10, 27)), "7d", "data")
    assert quiet["psi_max"] < 1.0 < 2.0 < loud["psi_max"]
