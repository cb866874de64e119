"""The metric keys of ``contracts.METRIC_KEYS``, computed the same way for every system."""

from __future__ import annotations

import numpy as np
import pandas as pd

from registry.predictions import recommendation

WITHIN = 3.0  # points


def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(actual, float) - np.asarray(predicted, float))))


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(actual, float) - np.asarray(predicted, float)) ** 2)))


def within_pct(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(100 * np.mean(np.abs(np.asarray(actual, float) - np.asarray(predicted, float)) <= WITHIN))


def line_metrics(frame: pd.DataFrame, predicted: np.ndarray, prefix: str = "test") -> dict[str, float]:
    """The line's own MAE and the model's on the same games, and the over/under hit rate
    (pushes, where the points equal the line, are neither hits nor misses)."""
    line = frame["vegas_points_line"].to_numpy(float)
    has_line = ~np.isnan(line)
    if not has_line.any():
        return {}
    actual = frame["points"].to_numpy(float)[has_line]
    pred, line = np.asarray(predicted, float)[has_line], line[has_line]
    decided = actual != line
    calls = recommendation(pred, line)[decided]
    truth = np.where(actual[decided] > line[decided], "OVER", "UNDER")
    counted = calls != "PASS"
    return {
        f"{prefix}_line_mae": mae(actual, line),
        f"{prefix}_model_mae_on_lines": mae(actual, pred),
        f"{prefix}_hit_rate": float(100 * np.mean(calls[counted] == truth[counted])) if counted.any() else 0.0,
        f"n_{prefix}_lines": float(has_line.sum()),
    }


def contract_metrics(actual: dict[str, np.ndarray], predicted: dict[str, np.ndarray],
                     test_frame: pd.DataFrame) -> dict[str, float]:
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
    out.update(line_metrics(test_frame, predicted["test"]))
    return out
