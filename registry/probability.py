"""P(over), P(push) and P(under) of a line from a system's prediction (interim: an uncalibrated
distribution around the prediction; replaced by the calibrated model of issue 13)."""

from __future__ import annotations

import numpy as np
from scipy import stats

NO_BET_BAND = 0.04


def fit(distribution: str, actual: np.ndarray, predicted: np.ndarray) -> dict:
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    if distribution == "normal":
        return {"distribution": distribution, "sd": float(np.std(actual - predicted))}
    mean = np.maximum(predicted, 0.05)
    var = float(np.mean((actual - mean) ** 2))
    excess = max(var - float(np.mean(mean)), 1e-3)
    return {"distribution": distribution, "r": float(np.mean(mean) ** 2 / excess)}


def probabilities(params: dict, predicted: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    predicted, line = np.asarray(predicted, float), np.asarray(line, float)
    whole = np.floor(line)
    if params["distribution"] == "normal":
        cdf = stats.norm(predicted, params["sd"]).cdf
        below = cdf(whole - 0.5)
        at = cdf(whole + 0.5) - below
    else:
        mean = np.maximum(predicted, 0.05)
        r = params["r"]
        dist = stats.nbinom(r, r / (r + mean))
        below = dist.cdf(whole - 1)
        at = dist.pmf(whole)
    is_whole = whole == line
    p_push = np.where(is_whole, at, 0.0)
    p_under = np.where(is_whole, below, below + at)
    p_over = 1.0 - p_push - p_under
    nan = np.isnan(line)
    return tuple(np.where(nan, np.nan, p) for p in (p_over, p_push, p_under))


def decide(p_over: np.ndarray, p_under: np.ndarray, band: float = NO_BET_BAND) -> tuple[np.ndarray, np.ndarray]:
    p_over, p_under = np.asarray(p_over, float), np.asarray(p_under, float)
    call = np.where(p_over >= 0.5 + band, "OVER", np.where(p_under >= 0.5 + band, "UNDER", "PASS")).astype(object)
    confidence = np.where(call == "OVER", p_over, np.where(call == "UNDER", p_under, np.nan))
    return call, confidence


def brier(p: np.ndarray, outcome: np.ndarray) -> float:
    p, outcome = np.asarray(p, float), np.asarray(outcome, float)
    return float(np.mean((p - outcome) ** 2)) if len(p) else float("nan")


def expected_calibration_error(p: np.ndarray, outcome: np.ndarray, bins: int = 10) -> float:
    p, outcome = np.asarray(p, float), np.asarray(outcome, float)
    if not len(p):
        return float("nan")
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(p[inside].mean() - outcome[inside].mean())
    return float(total / len(p))
