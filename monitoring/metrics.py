"""Monitoring metrics: how the graded predictions did, and whether today's inputs look like training's.

Model metrics are per system and model version over the game day and the rolling 7 and 30
calendar days ending on it, computed from ``prediction_grades``. Every group gets the full set of
``MONITORING_METRIC_KEYS`` (null where a metric is undefined, e.g. no calls), so storing a day again
by key replaces every value it stored before. Data metrics (system ``data``) compare the day's
feature rows with a summary of the training rows made once (``DriftReference``), so a daily call
never rereads the training data.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from contracts import (
    ALL_MARKETS,
    BOX_SCORES_SCHEMA,
    CONFIDENCE_BUCKETS,
    DATA_SYSTEM,
    FEATURE_VERSION,
    GRADED,
    LOSS,
    MONITORING_METRIC_KEYS,
    MONITORING_SCHEMA,
    PERIODS,
    PREDICTION_GRADES_SCHEMA,
    PUSH,
    VOID,
    WIN,
)
from features.definitions import FEATURE_NAMES
from features.store import read_store
from monitoring.store import write_changed
from registry.probability import brier
from training.metrics import WITHIN
from warehouse import Warehouse

PSI_BINS = 10
PSI_FLOOR = 1e-4  # share given to an empty bin, so one empty bin does not make the PSI infinite
DRIFT_DAYS = 7
# features whose distribution follows the calendar by design (season position, rest and schedule
# density): their PSI is logged but does not count towards psi_max, which would otherwise fire
# every opening week and every break
SEASONAL_FEATURES = ("games_played_season", "days_rest", "is_back_to_back", "games_last_7_days",
                     "minutes_last_7_days", "fatigue_score")
LOOKBACK_DAYS = 366  # a season, and any gap between two game days, fits in a year


def _rate(hits: int, total: int) -> float:
    return 100.0 * hits / total if total else np.nan


def _bucket_metrics(calls: pd.DataFrame) -> dict[str, float]:
    """Hit rate of decided calls by how far ``p_over`` is from a coin flip: a calibrated model
    should hit more often where it is more confident."""
    confidence = (calls["p_over"] - 0.5).abs().round(6)  # |0.7 - 0.5| is 0.19999999999999996 in floats
    out = {}
    for name, low, high in CONFIDENCE_BUCKETS:
        upper = confidence <= high if high >= 0.5 else confidence < high
        in_bucket = calls[(confidence >= low) & upper]
        out[f"hit_rate_{name}"] = _rate(int((in_bucket["ou_result"] == WIN).sum()), len(in_bucket))
        out[f"n_calls_{name}"] = float(len(in_bucket))
    return out


def group_metrics(grades: pd.DataFrame) -> dict[str, float]:
    """Every key of ``MONITORING_METRIC_KEYS`` for one system-version's grades of one period."""
    graded = grades[grades["outcome"] == GRADED]
    errors = graded["abs_error"].to_numpy(float)
    calls = graded[graded["ou_result"].isin((WIN, LOSS))]
    wins = int((calls["ou_result"] == WIN).sum())
    judged = graded[graded["p_over"].notna() & graded["line"].notna()
                    & (graded["actual_points"] != graded["line"])]  # a push has no over/under truth
    truth = (judged["actual_points"] > judged["line"]).to_numpy(float)
    out = {
        "mae": float(errors.mean()) if len(errors) else np.nan,
        "within_3_pct": float(100 * np.mean(errors <= WITHIN)) if len(errors) else np.nan,
        "hit_rate": _rate(wins, len(calls)),
        "brier": brier(judged["p_over"].to_numpy(float), truth),
        "n_graded": float(len(graded)),
        "n_void": float((grades["outcome"] == VOID).sum()),
        "n_calls": float(len(calls)),
        "n_pushes": float((graded["ou_result"] == PUSH).sum()),
        **_bucket_metrics(calls[calls["p_over"].notna()]),
    }
    return {key: out[key] for key in MONITORING_METRIC_KEYS}


def _long_rows(day: dt.date, market: str, system: str, version: str, period: str, values: dict[str, float],
               created_at: pd.Timestamp) -> list[dict]:
    return [{"game_date": day, "market": market, "system": system, "model_version": version, "period": period,
             "metric": metric, "value": float(value), "created_at": created_at} for metric, value in values.items()]


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=MONITORING_SCHEMA.column_names)


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("s")


def model_metrics(grades: pd.DataFrame, day: dt.date, created_at: pd.Timestamp | None = None) -> pd.DataFrame:
    """``monitoring_metrics`` rows of ``day`` for every market's system-version graded in each period;
    ``grades`` must cover the 30 days ending on ``day``."""
    created_at = created_at or _now()
    rows: list[dict] = []
    for period, days in PERIODS.items():
        window = grades[(grades["game_date"] > day - dt.timedelta(days=days)) & (grades["game_date"] <= day)]
        for (market, system, version), group in window.groupby(["market", "system", "model_version"], sort=True):
            rows += _long_rows(day, market, system, version, period, group_metrics(group), created_at)
    return _frame(rows)


@dataclass(frozen=True)
class DriftReference:
    """The training rows' distribution of each feature: interior quantile edges and the share of
    non-null values in each of the ``len(edges) + 1`` bins they make."""

    edges: dict[str, list[float]]
    shares: dict[str, list[float]]
    rows: int

    def to_json(self) -> str:
        return json.dumps({"edges": self.edges, "shares": self.shares, "rows": self.rows})

    @classmethod
    def from_json(cls, text: str) -> DriftReference:
        data = json.loads(text)
        return cls(data["edges"], data["shares"], int(data["rows"]))


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def drift_reference(features: pd.DataFrame, bins: int = PSI_BINS) -> DriftReference:
    """Quantile bins of each feature's non-null training values. A value that fills several
    quantiles (0/1 flags, counts) becomes an edge of its own, so discrete features get one bin
    per common value instead of collapsing into a single bin."""
    edges, shares = {}, {}
    for name in FEATURE_NAMES:
        values = features[name].dropna().to_numpy(float)
        if len(values) == 0:
            continue  # never observed in training (e.g. lines before they were collected): no PSI
        cuts = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
        edges[name] = cuts.tolist()
        shares[name] = _bin_shares(values, cuts).tolist()
    return DriftReference(edges, shares, len(features))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index, sum of (actual - expected) * ln(actual / expected) over bins."""
    expected, actual = np.maximum(expected, PSI_FLOOR), np.maximum(actual, PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def feature_psi(reference: DriftReference, features: pd.DataFrame) -> dict[str, float]:
    """PSI of each feature's non-null values against the reference; null where either side has none."""
    out = {}
    for name in FEATURE_NAMES:
        values = features[name].dropna().to_numpy(float) if name in features else np.array([])
        if name not in reference.edges or len(values) == 0:
            out[name] = np.nan
            continue
        shares = _bin_shares(values, np.asarray(reference.edges[name], float))
        out[name] = psi(np.asarray(reference.shares[name], float), shares)
    return out


def data_metrics(day: dt.date, features: pd.DataFrame, reference: DriftReference,
                 latest_results: dt.date | None, created_at: pd.Timestamp | None = None) -> pd.DataFrame:
    """``monitoring_metrics`` rows (system ``data``) of the feature rows of the ``DRIFT_DAYS`` days
    ending on ``day`` (e.g. the slates): PSI per feature and the largest (period ``7d``: one day
    holds too few games for team features to fill their bins), and of the day itself the share of
    null feature values, the rows' count and how many days old the latest ingested results are."""
    window = features[(features["game_date"] > day - dt.timedelta(days=DRIFT_DAYS)) & (features["game_date"] <= day)]
    today = window[window["game_date"] == day]
    by_feature = feature_psi(reference, window)
    judged = [v for name, v in by_feature.items() if name not in SEASONAL_FEATURES and not np.isnan(v)]
    cells = today.reindex(columns=list(FEATURE_NAMES)).to_numpy(float)
    drift = {"psi_max": max(judged) if judged else np.nan, **{f"psi.{k}": v for k, v in by_feature.items()}}
    inputs = {
        "missing_input_share": float(np.isnan(cells).mean()) if cells.size else np.nan,
        "freshness_days": float((day - latest_results).days) if latest_results else np.nan,
        "n_feature_rows": float(len(today)),
    }
    created_at = created_at or _now()
    return _frame(_long_rows(day, ALL_MARKETS, DATA_SYSTEM, FEATURE_VERSION, f"{DRIFT_DAYS}d", drift, created_at)
                  + _long_rows(day, ALL_MARKETS, DATA_SYSTEM, FEATURE_VERSION, "day", inputs, created_at))


def worst_feature(metrics: pd.DataFrame) -> str | None:
    """The feature with the largest PSI among ``psi.<feature>`` rows."""
    by_feature = metrics[metrics["metric"].str.startswith("psi.")].dropna(subset=["value"])
    return None if by_feature.empty else by_feature.loc[by_feature["value"].idxmax(), "metric"].removeprefix("psi.")


def record_model_metrics(warehouse: Warehouse, day: dt.date, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Compute and store the model metrics of ``day`` from the stored grades; returns them."""
    longest = max(PERIODS.values())
    grades = warehouse.read(PREDICTION_GRADES_SCHEMA, date_range=(day - dt.timedelta(days=longest - 1), day))
    rows = model_metrics(grades, day, now)
    write_changed(warehouse, MONITORING_SCHEMA, rows, stamp="created_at")
    return rows


def latest_results_date(warehouse: Warehouse, day: dt.date) -> dt.date | None:
    """The latest game date with ingested box scores on or before ``day`` (within a year)."""
    box = warehouse.read(BOX_SCORES_SCHEMA, date_range=(day - dt.timedelta(days=LOOKBACK_DAYS), day))
    return max(box["game_date"]) if len(box) else None


def record_data_metrics(warehouse: Warehouse, day: dt.date, reference: DriftReference,
                        features: pd.DataFrame | None = None, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Compute and store the data metrics of ``day``; ``features`` defaults to the feature store's
    rows of the drift window (slates included once stored); returns the rows."""
    if features is None:
        features = read_store(warehouse, day - dt.timedelta(days=DRIFT_DAYS - 1), day)
    rows = data_metrics(day, features, reference, latest_results_date(warehouse, day), now)
    write_changed(warehouse, MONITORING_SCHEMA, rows, stamp="created_at")
    return rows
