"""A calibrated predictive distribution per player-game: P(over), P(push), P(under) and the call.

Why this replaces the residual quantiles: one spread for every player turns a 2-point gap between a
prediction and the line into the same P(over) for a bench player (whose outcomes spread little) and a
star (whose outcomes spread a lot), and the call was read off the point prediction, not off P(over), so
the two could disagree. Here each market's outcome is an integer with a distribution around the
system's prediction whose spread depends on the prediction:

* ``normal`` (points, pra): a normal with variance ``c0 + c1 * prediction``, discretised with a
  continuity correction: P(Y >= j) = 1 - Phi((j - 0.5 - mean) / sd), all mass below 0.5 on 0.
* ``negative_binomial`` (rebounds, assists, threes): mean ``max(prediction, EPS)`` and variance
  ``mean + alpha * mean**2``, ``alpha`` fitted by maximum likelihood.

Both are then calibrated by one monotone map ``g`` of the survival probability S(j) = P(Y >= j) to the
frequency observed on validation rows; applying ``g`` to S at the two thresholds around a line keeps the
three probabilities non-negative, summing to 1, monotone in the line and consistent between whole and
half lines (over 20 and over 20.5 are the same event, Y >= 21).

Where a line is posted, the distribution is centred between the prediction and the line, by a weight
fitted on graded lines (``fit_line``): the line is the better forecast, and a P(over) that ignores it
is overconfident against it (on the 2024-25 daily-fantasy lines, Brier 0.253-0.257 centred on the
prediction alone, 0.247-0.2495 with the walk-forward weight; ``benchmarks/probability.py``).

Parameters are plain JSON (lists and floats): this module is copied into every logged model and needs
only numpy and scipy at predict time (scikit-learn only to fit).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special, stats

DISTRIBUTIONS = ("normal", "negative_binomial")
EPS = 0.05  # the smallest mean a count distribution takes: a prediction of 0 still allows an outcome of 1

NO_BET_BAND = 0.024
"""The call is PASS unless the side called wins with probability at least 0.5 + NO_BET_BAND (given the
bet is graded, i.e. a push refunded). 0.524 is the break-even of a -110 price, the standard sportsbook
price of a player prop (110 / 210): a call below it loses money at the book even when its probability
is right, so calling it would advertise an edge the user cannot collect."""

SYNTHETIC_WINDOW = 1.5
"""Where the calibration looks: every integer threshold j within SYNTHETIC_WINDOW predictive standard
deviations of the prediction. Books post a line near the expected outcome, so a line sits well inside
that window around a system's prediction; most validation rows have no line, so these thresholds stand
in for lines, and taking every integer in the window (not a few fixed offsets) covers P(Y >= j) evenly
from about 0.07 to 0.93, where the map is used. Whole and half lines need no separate thresholds: a
half line k + 0.5 and a whole line k + 1 ask about the same S(k + 1)."""

DEFAULT_LINE_WEIGHT = 1.0
"""The weight of the line in a distribution's centre until graded lines have fitted one: the line."""
MIN_LINE_ROWS = 300
"""Graded lines needed before their weight is fitted: with fewer, two parameters of a likelihood of
coin-flip outcomes are mostly noise (a hit rate of 300 coin flips has a 95% interval of +-0.057)."""

CONFIDENCE_EDGES = (0.5 + NO_BET_BAND, 0.54, 0.56, 0.58, 1.0)
"""Bucket edges of the confidence of a call for the hit-rate-by-confidence table: the first bucket
starts where a call starts (the no-bet band), the last holds the strongest calls."""


# --- the distributions ---------------------------------------------------------------------------
def _check(distribution: str) -> None:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution {distribution!r} is not one of {', '.join(DISTRIBUTIONS)}")


def _normal_sd(params: dict, mean: np.ndarray) -> np.ndarray:
    return np.sqrt(params["variance_intercept"] + params["variance_slope"] * np.maximum(mean, 0.0))


def _nb_shape(params: dict, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy's (n, p) of a negative binomial of that mean and variance mean + alpha * mean**2."""
    n = 1.0 / params["alpha"]
    return np.full_like(mean, n), n / (n + mean)


def _survival(params: dict, predicted: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Uncalibrated P(Y >= threshold) for integer thresholds (1 where threshold <= 0)."""
    predicted, threshold = np.broadcast_arrays(np.asarray(predicted, float), np.asarray(threshold, float))
    # scipy.special directly, without stats' argument checks (a served request's few rows cost a
    # fraction): stats.norm.sf is ndtr of the negated argument; the negative binomial's
    # P(Y >= t) = I_{1-p}(t, n), the regularised incomplete beta, for a real n (special.nbdtrc
    # would truncate n = 1 / alpha to an integer)
    if params["distribution"] == "normal":
        s = special.ndtr(-((threshold - 0.5 - predicted) / _normal_sd(params, predicted)))
    else:
        n, p = _nb_shape(params, np.maximum(predicted, EPS))
        s = special.betainc(np.maximum(threshold, 1.0), n, 1.0 - p)
    return np.where(threshold <= 0, 1.0, s)


def _log_pmf(params: dict, actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """log P(Y = actual) of the uncalibrated distribution, the likelihood the spread is fitted by."""
    if params["distribution"] == "normal":
        sd = _normal_sd(params, predicted)
        upper = special.log_ndtr((actual + 0.5 - predicted) / sd)
        lower = special.log_ndtr((actual - 0.5 - predicted) / sd)
        # log(exp(upper) - exp(lower)); actual 0 also holds the mass below -0.5
        return np.where(actual <= 0, upper, upper + np.log1p(-np.exp(np.minimum(lower - upper, -1e-12))))
    n, p = _nb_shape(params, np.maximum(predicted, EPS))
    return stats.nbinom.logpmf(actual, n, p)


def _fit_spread(distribution: str, actual: np.ndarray, predicted: np.ndarray) -> dict:
    """The spread parameters of maximum likelihood on validation rows."""
    if distribution == "normal":
        def nll(theta: np.ndarray) -> float:
            params = {"distribution": distribution, "variance_intercept": math.exp(theta[0]),
                      "variance_slope": math.exp(theta[1])}
            return -float(np.mean(_log_pmf(params, actual, predicted)))

        residual_var = max(float(np.var(actual - predicted)), 1.0)
        mean_pred = max(float(np.mean(predicted)), 1.0)
        start = np.log([residual_var / 2, residual_var / (2 * mean_pred)])
        best = optimize.minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-7})
        return {"variance_intercept": math.exp(best.x[0]), "variance_slope": math.exp(best.x[1])}

    def nll_alpha(log_alpha: float) -> float:
        params = {"distribution": distribution, "alpha": math.exp(log_alpha)}
        return -float(np.mean(_log_pmf(params, actual, predicted)))

    # alpha -> 0 is the Poisson; a bounded search keeps it a negative binomial of finite shape
    best = optimize.minimize_scalar(nll_alpha, bounds=(math.log(1e-4), math.log(10.0)), method="bounded")
    return {"alpha": math.exp(best.x)}


# --- fitting and predicting ----------------------------------------------------------------------
def _sd(params: dict, mean: np.ndarray) -> np.ndarray:
    """The predictive standard deviation at that mean."""
    if params["distribution"] == "normal":
        return _normal_sd(params, mean)
    mean = np.maximum(mean, EPS)
    return np.sqrt(mean + params["alpha"] * mean**2)


def synthetic_thresholds(params: dict, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, threshold) pairs: every integer threshold >= 1 within SYNTHETIC_WINDOW predictive sds of a
    validation row's prediction, the events Y >= j the calibration map is fitted on."""
    predicted = np.asarray(predicted, float)
    sd = _sd(params, predicted)
    low = np.maximum(np.ceil(predicted - SYNTHETIC_WINDOW * sd), 1.0).astype(int)
    high = np.maximum(np.floor(predicted + SYNTHETIC_WINDOW * sd), low).astype(int)
    counts = high - low + 1
    rows = np.repeat(np.arange(len(predicted)), counts)
    step = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, (low[rows] + step).astype(float)


def fit(distribution: str, actual: np.ndarray, predicted: np.ndarray, line: np.ndarray | None = None) -> dict:
    """Parameters of the predictive distribution, fitted on VALIDATION rows (the outcome vs the
    system's prediction of it, both never seen in training): the spread by maximum likelihood, then an
    isotonic map of P(Y >= j) to the observed frequency of Y >= j at the synthetic thresholds
    (``SYNTHETIC_WINDOW``). The map is stored as x/y lists (interpolated with np.interp), anchored at
    (0, 0) and (1, 1) so that thresholds far from any validation row keep their order. ``line``, where
    given, holds the line posted for a validation row (NaN where none): rows with one also fit how much
    the line says beyond the prediction (``fit_line``)."""
    from sklearn.isotonic import IsotonicRegression

    _check(distribution)
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    keep = np.isfinite(actual) & np.isfinite(predicted)
    if keep.sum() < 2:
        raise ValueError(f"fit: {int(keep.sum())} validation rows with an outcome and a prediction, expected "
                         "at least 2")
    params = {"distribution": distribution, **_fit_spread(distribution, actual[keep], predicted[keep])}
    rows, thresholds = synthetic_thresholds(params, predicted[keep])
    raw = _survival(params, predicted[keep][rows], thresholds)
    hit = (actual[keep][rows] >= thresholds).astype(float)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, hit)
    x, y = list(map(float, iso.X_thresholds_)), list(map(float, iso.y_thresholds_))
    if x[0] > 0.0:
        x, y = [0.0, *x], [0.0, *y]
    if x[-1] < 1.0:
        x, y = [*x, 1.0], [*y, 1.0]
    params["calibration"] = {"x": x, "y": y}
    params["validation_rows"] = int(keep.sum())
    return params if line is None else fit_line(params, actual, predicted, line)


def fit_line(params: dict, actual: np.ndarray, predicted: np.ndarray, line: np.ndarray,
             centre_line: np.ndarray | None = None) -> dict:
    """``params`` with the line's weight refitted on graded rows that had a posted line.

    Why: a book's line is a better forecast than a system's prediction (on the 2024-25 daily-fantasy
    window the points line's MAE is 5.19, the systems' 5.28-5.29), so the distance between the two is
    mostly the system's error, and P(over) read around the prediction alone is overconfident against
    exactly the lines it is asked about. The distribution is therefore centred on
    ``prediction + weight * (line - prediction) + shift`` where a line is posted; weight (0..1) and
    shift are fitted by maximum likelihood of the graded results (over, push, under) at those lines.
    With fewer than MIN_LINE_ROWS graded lines the default (weight 1, shift 0: the line's own
    P(over)) stays, so nothing is claimed beyond the line before lines show it. ``centre_line`` as in
    ``probabilities``."""
    actual, predicted, line = (np.asarray(a, float) for a in (actual, predicted, line))
    centre_line = line if centre_line is None else np.asarray(centre_line, float)
    keep = np.isfinite(actual) & np.isfinite(predicted) & np.isfinite(line) & np.isfinite(centre_line)
    out = {k: v for k, v in params.items() if k != "line"}
    if keep.sum() < MIN_LINE_ROWS:
        return out
    actual, predicted, line, centre_line = actual[keep], predicted[keep], line[keep], centre_line[keep]
    over, under = actual > line, actual < line
    push = ~over & ~under

    def nll(theta: np.ndarray) -> float:
        trial = {**out, "line": {"weight": float(special.expit(theta[0])), "shift": float(theta[1])}}
        p_over, p_push, p_under = probabilities(trial, predicted, line, centre_line)
        p = np.where(over, p_over, np.where(under, p_under, p_push))
        return -float(np.mean(np.log(np.clip(p, 1e-9, 1.0))))

    # start at "mostly the line" and let the simplex step the shift by half an outcome
    simplex = np.array([[2.0, 0.0], [3.0, 0.0], [2.0, 0.5]])
    best = optimize.minimize(nll, simplex[0], method="Nelder-Mead",
                             options={"initial_simplex": simplex, "xatol": 1e-4, "fatol": 1e-8})
    out["line"] = {"weight": float(special.expit(best.x[0])), "shift": float(best.x[1]),
                   "rows": int(keep.sum()), "pushes": int(push.sum())}
    return out


def fit_graded(params: dict, actual: np.ndarray, predicted: np.ndarray, line: np.ndarray) -> dict:
    """``params`` with P(over | the bet is graded) as a logistic of the prediction's distance to the line,
    ``expit(intercept + slope * (predicted - line))``, fitted by maximum likelihood on graded lines (a
    push left out); the distribution still gives P(push). With fewer than MIN_LINE_ROWS graded lines,
    intercept and slope 0: even odds, nothing claimed beyond the line.

    Why, for a prediction that already leans on the line (``registry/systems/line_blend_v1.py``): how
    much its distance from the line says is measured on exactly the events priced, the lines, and not
    read off a spread fitted around predictions; walk-forward on the 2024-25 daily-fantasy lines the
    Brier score of P(over) is 0.2496-0.2499 this way, 0.2499-0.2508 through the spread."""
    actual, predicted, line = (np.asarray(a, float) for a in (actual, predicted, line))
    keep = np.isfinite(actual) & np.isfinite(predicted) & np.isfinite(line) & (actual != line)
    out = {**params, "graded": {"intercept": 0.0, "slope": 0.0, "rows": int(keep.sum())}}
    if keep.sum() < MIN_LINE_ROWS:
        return out
    gap, over = predicted[keep] - line[keep], (actual[keep] > line[keep]).astype(float)

    def nll(theta: np.ndarray) -> float:
        z = theta[0] + theta[1] * gap
        return float(np.mean(np.logaddexp(0.0, z) - over * z))

    best = optimize.minimize(nll, np.zeros(2), method="BFGS")
    out["graded"].update(intercept=float(best.x[0]), slope=float(best.x[1]))
    return out


def _centre(params: dict, predicted: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Where the distribution of a row with a posted line is centred (see ``fit_line``)."""
    fitted = params.get("line", {"weight": DEFAULT_LINE_WEIGHT, "shift": 0.0})
    return predicted + fitted["weight"] * (line - predicted) + fitted["shift"]


def _calibrated_survival(params: dict, centre: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    cal = params["calibration"]
    return np.interp(_survival(params, centre, threshold), cal["x"], cal["y"])


def probabilities(params: dict, predicted: np.ndarray, line: np.ndarray,
                  centre_line: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_over, p_push, p_under) per row, each row summing to 1; NaN where the line (or the
    prediction) is NaN. Outcomes are integers: over is Y >= floor(line) + 1, under is
    Y <= ceil(line) - 1, push is Y == line and happens only on a whole-number line.

    The distribution is centred towards ``centre_line`` (default: ``line``): pass the books'
    consensus (their median line) to price several books' lines of one player-game against one
    distribution; then P(over) falls as the line rises. Centred towards the priced line itself, a
    whole line k reads as a lower expectation than k + 0.5, so P(over k) can be below P(over k + 0.5)."""
    _check(params["distribution"])
    centre_line = line if centre_line is None else centre_line
    predicted, line, centre_line = np.broadcast_arrays(*(np.asarray(a, float) for a in (predicted, line, centre_line)))
    known = np.isfinite(predicted) & np.isfinite(line) & np.isfinite(centre_line)
    # only the rows with a line are priced: a served batch or a slate is mostly rows without one
    pred, ln = predicted[known], line[known]
    centre = _centre(params, pred, centre_line[known])
    at_least_over = _calibrated_survival(params, centre, np.floor(ln) + 1.0)  # P(Y >= floor + 1)
    at_least_line = _calibrated_survival(params, centre, np.ceil(ln))  # P(Y >= ceil): equal on a half line
    p_over = at_least_over
    p_push = np.maximum(at_least_line - at_least_over, 0.0)
    p_under = np.maximum(1.0 - at_least_line, 0.0)
    if "graded" in params:  # over against under from the graded lines' logistic (``fit_graded``)
        fitted = params["graded"]
        wins = special.expit(fitted["intercept"] + fitted["slope"] * (pred - ln))
        p_push = np.minimum(p_push, 1.0)
        p_over, p_under = (1.0 - p_push) * wins, (1.0 - p_push) * (1.0 - wins)
    out = tuple(np.full(predicted.shape, np.nan) for _ in range(3))
    for whole, part in zip(out, (p_over, p_push, p_under), strict=True):
        whole[known] = part
    return out


def walk_forward(params: dict, game_date: np.ndarray, actual: np.ndarray, predicted: np.ndarray, line: np.ndarray,
                 centre_line: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_over, p_push, p_under) of rows over many days, each day's from the line weight fitted on the
    lines graded before that day only (``fit_line``), as the live loop would have had them: the honest
    score of a backtest or replay. ``params`` come from ``fit`` on validation."""
    game_date = np.asarray(game_date)
    actual, predicted, line = (np.asarray(a, float) for a in (actual, predicted, line))
    centre_line = line if centre_line is None else np.asarray(centre_line, float)
    out = tuple(np.full(len(line), np.nan) for _ in range(3))
    for day in np.unique(game_date):
        before, today = game_date < day, game_date == day
        fitted = fit_line(params, actual[before], predicted[before], line[before], centre_line[before])
        today_p = probabilities(fitted, predicted[today], line[today], centre_line[today])
        for whole, part in zip(out, today_p, strict=True):
            whole[today] = part
    return out


def over_wins(p_over: np.ndarray, p_under: np.ndarray) -> np.ndarray:
    """P(over | the bet is graded) = p_over / (p_over + p_under): a push is refunded, so this is what an
    OVER bet wins with and what a graded outcome (a push left out) is scored against; NaN without a line."""
    p_over, p_under = np.broadcast_arrays(np.asarray(p_over, float), np.asarray(p_under, float))
    graded = p_over + p_under
    known = np.isfinite(graded) & (graded > 0)
    return np.where(known, p_over / np.where(known, graded, 1.0), np.nan)


def decide(p_over: np.ndarray, p_under: np.ndarray, band: float = NO_BET_BAND) -> tuple[np.ndarray, np.ndarray]:
    """(call, confidence) per row. The confidence of a side is its probability of winning once the bet
    is graded, p_side / (p_over + p_under), since a push is refunded; OVER when that of over is at least
    0.5 + band, UNDER when that of under is, PASS otherwise and where there is no line. The confidence
    is that of the side called (NaN on PASS). Because a call needs its side's probability to be the
    larger one, a call never contradicts its own probability."""
    p_over, p_under = np.broadcast_arrays(np.asarray(p_over, float), np.asarray(p_under, float))
    wins = over_wins(p_over, p_under)
    known = np.isfinite(wins)
    threshold = 0.5 + band
    is_over = known & (wins >= threshold) & (p_over > p_under)
    is_under = known & (1.0 - wins >= threshold) & (p_under > p_over)
    call = np.where(is_over, "OVER", np.where(is_under, "UNDER", "PASS"))
    confidence = np.where(is_over, wins, np.where(is_under, 1.0 - wins, np.nan))
    return call, confidence


# --- scoring -------------------------------------------------------------------------------------
def _scored(p: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows that have both a probability and an outcome (a row without a line has neither)."""
    p, outcome = np.asarray(p, float).ravel(), np.asarray(outcome, float).ravel()
    keep = np.isfinite(p) & np.isfinite(outcome)
    return p[keep], outcome[keep]


def brier(p: np.ndarray, outcome: np.ndarray) -> float:
    """Mean squared difference of a probability and its 0/1 outcome (NaN when nothing is scored);
    always saying 0.5 scores 0.25."""
    p, outcome = _scored(p, outcome)
    return float(np.mean((p - outcome) ** 2)) if len(p) else float("nan")


def _bin_of(p: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bins of [0, 1]; 1.0 falls in the last."""
    return np.minimum((p * bins).astype(int), bins - 1)


def reliability(p: np.ndarray, outcome: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean predicted, observed frequency, rows) of every non-empty one of ``bins`` equal-width bins
    of [0, 1], lowest first: the points of a reliability plot."""
    p, outcome = _scored(p, outcome)
    which = _bin_of(p, bins)
    return [(float(p[which == b].mean()), float(outcome[which == b].mean()), int((which == b).sum()))
            for b in range(bins) if (which == b).any()]


def expected_calibration_error(p: np.ndarray, outcome: np.ndarray, bins: int = 10) -> float:
    """The row-weighted mean gap between predicted and observed frequency over equal-width bins."""
    points = reliability(p, outcome, bins)
    total = sum(n for _, _, n in points)
    return float(sum(n * abs(mean - freq) for mean, freq, n in points) / total) if total else float("nan")


def wilson_interval(wins: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a hit rate (0.95 by default): unlike the normal approximation it
    stays inside [0, 1] and is honest for the few calls of a top-confidence bucket; (0, 1) for n = 0."""
    if n == 0:
        return 0.0, 1.0
    rate = wins / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def hit_rate_by_confidence(confidence: np.ndarray, won: np.ndarray,
                           edges: tuple[float, ...] = CONFIDENCE_EDGES) -> list[dict]:
    """Per confidence bucket [low, high) (the last closed) of the graded calls (``won`` is 1/0, NaN for
    a push or no call): rows, wins, hit rate and its Wilson interval."""
    confidence, won = _scored(confidence, won)
    out = []
    for i, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        inside = (confidence >= low) & ((confidence < high) | (i == len(edges) - 2) & (confidence <= high))
        n, wins = int(inside.sum()), int(won[inside].sum())
        interval = wilson_interval(wins, n)
        out.append({"low": low, "high": high, "n": n, "wins": wins,
                    "hit_rate": wins / n if n else float("nan"),
                    "wilson_low": interval[0], "wilson_high": interval[1]})
    return out
