"""Rows of ``player_prop_predictions``: one shape for the backtest, the coordinator and the worker."""

from __future__ import annotations

import numpy as np
import pandas as pd

from contracts import PREDICTIONS_SCHEMA
from registry.probability import decide

PRICE_COLUMNS = ("line", "recommendation", "p_over", "p_push", "p_under", "confidence")


def priced(probabilities: tuple[np.ndarray, np.ndarray, np.ndarray], line: np.ndarray) -> dict[str, np.ndarray]:
    """The call on each line and its probabilities: the call is derived from the probabilities
    (``registry.probability.decide``), so it never contradicts them; PASS and nulls without a line."""
    line = np.asarray(line, float)
    p_over, p_push, p_under = (np.round(np.asarray(p, float), 4) for p in probabilities)
    call, confidence = decide(p_over, p_under)
    none = np.isnan(line)
    return {"line": line, "recommendation": np.where(none, "PASS", call).astype(object),
            "p_over": np.where(none, np.nan, p_over), "p_push": np.where(none, np.nan, p_push),
            "p_under": np.where(none, np.nan, p_under), "confidence": np.where(none, np.nan, confidence)}


def prediction_rows(features: pd.DataFrame, market: str, system: str, model_version: str, predicted: np.ndarray,
                    prices: dict[str, np.ndarray], source: str,
                    created_at: pd.Timestamp | None = None) -> pd.DataFrame:
    """``features`` supplies the keys; ``prices`` the line and what :func:`priced` derives from it.
    ``created_at`` is the writer's clock (a season replay passes the simulated evening, so reruns
    write identical rows); default now. A row whose prediction is NaN (the system abstained: no line)
    is no row: the table holds what was predicted."""
    rows = pd.DataFrame({
        "game_date": features["game_date"].to_numpy(), "game_id": features["game_id"].to_numpy(),
        "player_id": features["player_id"].astype("int64").to_numpy(), "market": market, "system": system,
        "model_version": str(model_version), "predicted_points": np.round(np.asarray(predicted, float), 3),
        **prices,
        "source": source, "created_at": created_at if created_at is not None else pd.Timestamp.now(tz="UTC").floor("s"),
    })[PREDICTIONS_SCHEMA.column_names]
    return rows[rows["predicted_points"].notna()].reset_index(drop=True)
