"""Line Blend V1: the production prediction moved towards the market's posted line, for games with a line only.

Why: a book's line is the strongest public forecast there is (on the 2024-25 daily-fantasy window the
points line's MAE is 5.18, the models' 5.28-5.29), yet the models hardly see it, because almost no
training row has one. This system predicts ``line + weight * (prediction - line) + shift`` where
``prediction`` is its base member's (the ensemble, else the last member of the table), with weight
(0..1) and shift fitted by least absolute deviations on the validation rows that had a posted line:
the rows before the day it predicts whose members' predictions were made out of sample. A line stored
on day d and graded is thus used by the first fit whose validation window holds day d (the next
retrain, the next backtest month), never for a prediction of day d or before. With fewer than
``probability.MIN_LINE_ROWS`` graded lines it predicts the line itself (weight 0, shift 0): nothing is
claimed beyond the line before lines show it.

Where a row has no line the system abstains: ``predict`` returns NaN there (``ABSTAINS``). The worker
answers ``predicted_points`` null with a PASS for it, ``player_prop_predictions`` holds no row for it,
and so grading, monitoring and the pages see only the games it predicted.

Its P(over) is fitted by the system itself (``fit_distribution``), on the validation rows with a line:
over against under as a logistic of the blend's distance to the line (``probability.fit_graded``;
even odds while there are too few lines), P(push) on a whole line from the spread of the outcome
around the blend (the base member's spread around its own predictions while there are too few lines).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import optimize

from contracts import ENSEMBLE_V1, LINE_BLEND_V1
from registry import probability

if TYPE_CHECKING:
    from registry.points_model import Bundle
    from training.splits import Splits

NAME = LINE_BLEND_V1
KIND = "line_blend"
TUNED = False
COMBINES = True
ABSTAINS = True


@dataclass
class LineBlend:
    base: str  # the member whose prediction is blended
    line_feature: str
    weight: float  # of the prediction's distance from the line; 0: the line itself
    shift: float
    rows: int  # graded lines the weight and shift were fitted on (0: the default)
    position: int  # of ``line_feature`` in the bundle's feature order
    distribution: dict = field(default_factory=dict)  # fitted with the blend; the bundle stores it as meta.probability


def members(available: tuple[str, ...]) -> tuple[str, ...]:
    """The one member it blends: the ensemble where the run has one, else the last system of the table."""
    return (ENSEMBLE_V1,) if ENSEMBLE_V1 in available else available[-1:]


def fit_blend(predicted: np.ndarray, line: np.ndarray, actual: np.ndarray) -> tuple[float, float, int]:
    """(weight, shift, rows) minimising sum |actual - line - weight (predicted - line) - shift| over the
    rows with all three, 0 <= weight <= 1; (0, 0, rows) with fewer than ``probability.MIN_LINE_ROWS``.
    For a given weight the best shift is the median residual, and the least absolute deviation left is
    convex in the weight (a partial minimum of a convex function), so a bounded scalar search finds it:
    milliseconds for a season of lines, where a linear program over every row takes seconds."""
    predicted, line, actual = (np.asarray(a, float) for a in (predicted, line, actual))
    keep = np.isfinite(predicted) & np.isfinite(line) & np.isfinite(actual)
    n = int(keep.sum())
    if n < probability.MIN_LINE_ROWS:
        return 0.0, 0.0, n
    gap, target = predicted[keep] - line[keep], actual[keep] - line[keep]

    def deviation(weight: float) -> float:
        residual = target - weight * gap
        return float(np.abs(residual - np.median(residual)).sum())

    weight = float(optimize.minimize_scalar(deviation, bounds=(0.0, 1.0), method="bounded",
                                            options={"xatol": 1e-4}).x)
    return weight, float(np.median(target - weight * gap)), n


def fit(params: dict[str, Any], splits: Splits, seed: int, report: Callable[[int, float], None] | None = None,
        members: Mapping[str, Bundle] | None = None) -> LineBlend:
    """Fitted on the validation rows with a line (``fit_blend``); the members were fitted on the train rows."""
    if not members or len(members) != 1:
        raise ValueError(f"{NAME} blends exactly one other system's prediction, got {len(members or {})}")
    (base, member), = members.items()
    market = splits.market
    x_val, actual = splits.x("val"), splits.y("val")
    base_val = member.predict(x_val)
    line = x_val[market.line_feature].to_numpy(float)
    weight, shift, rows = fit_blend(base_val, line, actual)
    model = LineBlend(base, market.line_feature, weight, shift, rows, splits.features.index(market.line_feature))
    blended = blend(model, base_val, line)
    lined = np.isfinite(line) & np.isfinite(actual)
    # P(push) from a spread around the blend where there are lines to fit it, else the member's
    spread = (probability.fit(market.distribution, actual[lined], blended[lined]) if rows >= probability.MIN_LINE_ROWS
              else probability.fit(market.distribution, actual, base_val))
    model.distribution = probability.fit_graded(spread, actual, blended, line)
    return model


def blend(model: LineBlend, predicted: np.ndarray, line: np.ndarray) -> np.ndarray:
    """The blended prediction per row; NaN (abstained) where the line is."""
    line = np.asarray(line, float)
    return line + model.weight * (np.asarray(predicted, float) - line) + model.shift


def combine(model: LineBlend, parts: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    return blend(model, parts[model.base], x[:, model.position])


def fit_distribution(model: LineBlend, distribution: str, actual: np.ndarray, predicted: np.ndarray,
                     line: np.ndarray) -> dict:
    """The distribution ``fit`` fitted: the validation predictions are NaN wherever there was no line."""
    return model.distribution


def save(model: LineBlend, folder: Path) -> dict[str, Any]:
    """The blend's numbers; the base member's bundle is saved beside them by the bundle."""
    return {"blend": {"base": model.base, "line_feature": model.line_feature, "weight": model.weight,
                      "shift": model.shift, "rows": model.rows}}


def load(meta: dict[str, Any], folder: Path) -> LineBlend:
    fitted = meta["blend"]
    return LineBlend(fitted["base"], fitted["line_feature"], fitted["weight"], fitted["shift"], fitted["rows"],
                     meta["features"].index(fitted["line_feature"]))


def importances(model: LineBlend, splits: Splits) -> dict[str, float]:
    """The weights of the base prediction and of the line in the blend."""
    return {model.base: model.weight, model.line_feature: 1.0 - model.weight}
