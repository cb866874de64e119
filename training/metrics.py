"""The metric keys of ``contracts.METRIC_KEYS``, computed the same way for every system."""

from __future__ import annotations

import numpy as np
import pandas as pd

from markets import Market
from registry import probability
from registry.predictions import priced

WITHIN = 3.0  # of the market's unit; within_3_pct is a points figure, kept for every market alike


def _errors(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Absolute errors of the rows that have a prediction: a system that abstains (no line) is scored
    on the games it predicted (NaN, not 0, where it predicted none)."""
    error = np.abs(np.asarray(actual, float) - np.asarray(predicted, float))
    return error[~np.isnan(np.asarray(predicted, float))]


def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    error = _errors(actual, predicted)
    return float(np.mean(error)) if len(error) else float("nan")


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    error = _errors(actual, predicted)
    return float(np.sqrt(np.mean(error**2))) if len(error) else float("nan")


def within_pct(actual: np.ndarray, predicted: np.ndarray) -> float:
    error = _errors(actual, predicted)
    return float(100 * np.mean(error <= WITHIN)) if len(error) else float("nan")


def line_metrics(frame: pd.DataFrame, predicted: np.ndarray, market: Market, params: dict,
                 prefix: str = "test") -> dict[str, float]:
    """:func:`priced_metrics` of the market's posted lines in ``frame``, priced with the distribution ``params``."""
    line = frame[market.line_feature].to_numpy(float)
    has_line = ~np.isnan(line) & ~np.isnan(np.asarray(predicted, float))
    pred, line = np.asarray(predicted, float)[has_line], line[has_line]
    prices = priced(probability.probabilities(params, pred, line), line)
    return priced_metrics(frame[market.name].to_numpy(float)[has_line], pred, prices, prefix)


def priced_metrics(actual: np.ndarray, predicted: np.ndarray, prices: dict[str, np.ndarray],
                   prefix: str = "test") -> dict[str, float]:
    """Against posted lines: the line's own MAE and the model's on the same games, the hit rate of the
    calls (pushes, where the outcome equals the line, are neither hits nor misses), and how good P(over)
    is (Brier score, expected calibration error). Empty without a line."""
    line = np.asarray(prices["line"], float)
    if not len(line):
        return {}
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    decided = actual != line
    calls = np.asarray(prices["recommendation"])[decided]
    over = actual[decided] > line[decided]
    counted = calls != "PASS"
    p_over = np.asarray(prices["p_over"], float)[decided]
    # the probability a graded bet wins with, scored on the same graded outcomes: on a whole-number line
    # P(over) leaves P(push) out, so scoring it against outcomes without their pushes under-forecasts the over
    wins = probability.over_wins(p_over, np.asarray(prices["p_under"], float)[decided])
    return {
        f"{prefix}_line_mae": mae(actual, line),
        f"{prefix}_model_mae_on_lines": mae(actual, predicted),
        # no call made (every line PASS): no hit rate, rather than a 0% nobody lost
        f"{prefix}_hit_rate": float(100 * np.mean((calls == "OVER")[counted] == over[counted]))
        if counted.any() else float("nan"),
        f"{prefix}_brier": probability.brier(p_over, over),
        f"{prefix}_ece": probability.expected_calibration_error(p_over, over),
        f"{prefix}_brier_graded": probability.brier(wins, over),
        f"{prefix}_ece_graded": probability.expected_calibration_error(wins, over),
        f"n_{prefix}_lines": float(len(line)),
        f"n_{prefix}_calls": float(counted.sum()),
    }


def contract_metrics(actual: dict[str, np.ndarray], predicted: dict[str, np.ndarray],
                     test_frame: pd.DataFrame, market: Market, params: dict) -> dict[str, float]:
    """Every key of METRIC_KEYS (and the line keys where lines exist) from the three splits."""
    out = {
        "train_mae": mae(actual["train"], predicted["train"]),
        "val_mae": mae(actual["val"], predicted["val"]),
        "test_mae": mae(actual["test"], predicted["test"]),
        "val_rmse": rmse(actual["val"], predicted["val"]),
        "test_rmse": rmse(actual["test"], predicted["test"]),
        "val_within_3_pct": within_pct(actual["val"], predicted["val"]),
        "test_within_3_pct": within_pct(actual["test"], predicted["test"]),
        "n_train": float(len(actual["train"])), "n_val": float(len(actual["val"])),
        "n_test": float(len(actual["test"])),
    }
    out["train_val_gap"] = abs(out["val_mae"] - out["train_mae"])
    out.update(line_metrics(test_frame, predicted["test"], market, params))
    return out
