"""The P(over) module: coherent probabilities, calls that follow them, exact scores on tiny inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import probability
from training.metrics import priced_metrics

RNG = np.random.default_rng(7)
PREDICTED = RNG.uniform(0.5, 30.0, 3000)
OUTCOMES = {
    "normal": np.maximum(np.round(PREDICTED + RNG.normal(0.0, np.sqrt(4.0 + PREDICTED))), 0.0),
    "negative_binomial": RNG.negative_binomial(1 / 0.2, (1 / 0.2) / (1 / 0.2 + PREDICTED)).astype(float),
}


@pytest.fixture(scope="module", params=probability.DISTRIBUTIONS)
def params(request: pytest.FixtureRequest) -> dict:
    """Parameters fitted on synthetic validation rows whose outcomes follow the distribution."""
    return probability.fit(request.param, OUTCOMES[request.param], PREDICTED)


def test_rows_sum_to_one_and_push_only_on_whole_lines(params: dict) -> None:
    predicted = np.repeat([3.2, 11.7, 24.0], 4)
    line = np.tile([2.5, 3.0, 11.5, 12.0], 3)
    over, push, under = probability.probabilities(params, predicted, line)
    np.testing.assert_allclose(over + push + under, 1.0, atol=1e-12)
    assert np.all((over >= 0) & (push >= 0) & (under >= 0))
    whole = line == np.round(line)
    assert np.all(push[~whole] == 0.0) and np.all(push[whole] > 0.0)


@pytest.mark.parametrize("alpha", [0.07, 0.2, 0.37, 1.7])
def test_the_count_distribution_is_scipys_negative_binomial_for_any_dispersion(alpha: float) -> None:
    """Uncalibrated and centred on the prediction, P(over 4.5) is P(Y >= 5) of the negative binomial with
    that mean and variance mean + alpha * mean**2, whatever alpha: 1 / alpha is seldom a whole number."""
    from scipy import stats

    flat = {"distribution": "negative_binomial", "alpha": alpha, "calibration": {"x": [0.0, 1.0], "y": [0.0, 1.0]},
            "line": {"weight": 0.0, "shift": 0.0}}
    mean = np.array([0.4, 2.5, 6.0, 11.0])
    over, push, under = probability.probabilities(flat, mean, np.full(4, 4.5))
    n = 1 / alpha
    np.testing.assert_allclose(over, stats.nbinom.sf(4, n, n / (n + mean)), rtol=1e-12)
    np.testing.assert_allclose(under, stats.nbinom.cdf(4, n, n / (n + mean)), rtol=1e-12)
    assert np.all(push == 0.0)


def test_nan_where_no_line(params: dict) -> None:
    over, push, under = probability.probabilities(params, np.array([10.0, 10.0]), np.array([np.nan, 9.5]))
    assert np.isnan([over[0], push[0], under[0]]).all() and np.isfinite([over[1], push[1], under[1]]).all()


def test_whole_and_half_lines_agree(params: dict) -> None:
    """Over 20 and over 20.5 are the same event (Y >= 21); under 20 is under 19.5 (one distribution:
    the books' consensus line 20 as its centre)."""
    over, _, under = probability.probabilities(params, np.full(4, 19.0), np.array([20.0, 20.5, 20.0, 19.5]),
                                               centre_line=np.full(4, 20.0))
    assert over[0] == pytest.approx(over[1]) and under[2] == pytest.approx(under[3])


@pytest.mark.parametrize("weight", [0.0, 0.8])
def test_monotone_in_the_line_and_in_the_prediction(params: dict, weight: float) -> None:
    """Against one distribution (a fixed consensus line) P(over) falls as the priced line rises; a higher
    prediction never lowers it."""
    fitted = {**params, "line": {"weight": weight, "shift": 0.3}}
    line = np.arange(0.0, 40.0, 0.5)
    over, _, under = probability.probabilities(fitted, np.full(len(line), 12.0), line, np.full(len(line), 13.5))
    assert np.all(np.diff(over) <= 1e-12) and np.all(np.diff(under) >= -1e-12)
    rising = probability.probabilities(fitted, np.linspace(1.0, 30.0, 50), np.full(50, 12.5))[0]
    assert np.all(np.diff(rising) >= -1e-12)
    half = np.arange(0.5, 40.0, 1.0)  # centred on the priced line itself: monotone across half lines
    assert np.all(np.diff(probability.probabilities(fitted, np.full(len(half), 12.0), half)[0]) <= 1e-12)


def test_calibration_map_is_monotone_and_spans_0_1(params: dict) -> None:
    x, y = np.asarray(params["calibration"]["x"]), np.asarray(params["calibration"]["y"])
    assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) >= 0)
    assert (x[0], y[0], x[-1], y[-1]) == (0.0, 0.0, 1.0, 1.0)


def test_calibrated_on_its_own_distribution(params: dict) -> None:
    """Rows drawn from the family fitted on: P(over) of the distribution around the prediction, at half
    lines near it, matches the observed rate."""
    distribution = params["distribution"]
    predicted = RNG.uniform(0.5, 30.0, 4000)
    actual = (np.maximum(np.round(predicted + RNG.normal(0.0, np.sqrt(4.0 + predicted))), 0.0)
              if distribution == "normal" else
              RNG.negative_binomial(5.0, 5.0 / (5.0 + predicted)).astype(float))
    line = np.round(predicted) + 0.5
    around_prediction = {**params, "line": {"weight": 0.0, "shift": 0.0}}
    over = probability.probabilities(around_prediction, predicted, line)[0]
    assert probability.expected_calibration_error(over, (actual > line).astype(float)) < 0.04


def test_round_trips_through_json(params: dict) -> None:
    again = json.loads(json.dumps(params))
    predicted, line = np.array([2.0, 8.4, 21.0]), np.array([1.5, 9.0, 20.5])
    for a, b in zip(probability.probabilities(params, predicted, line),
                    probability.probabilities(again, predicted, line), strict=True):
        np.testing.assert_array_equal(a, b)


def test_fitted_line_weight_round_trips_and_moves_towards_the_line(params: dict) -> None:
    """Lines that hold the truth (the outcome's mean) get the weight; the default is the line itself."""
    mean = RNG.uniform(2.0, 25.0, 2000)
    predicted = mean + RNG.normal(0.0, 3.0, len(mean))  # a poor system
    actual = RNG.poisson(mean).astype(float)
    line = np.round(mean) + 0.5
    fitted = probability.fit_line(params, actual, predicted, line)
    assert fitted["line"]["weight"] > 0.8 and fitted["line"]["rows"] == len(mean)
    assert json.loads(json.dumps(fitted)) == fitted
    assert "line" not in probability.fit_line(params, actual[:10], predicted[:10], line[:10])


def test_unknown_distribution_is_refused() -> None:
    with pytest.raises(ValueError, match="'poisson' is not one of normal, negative_binomial"):
        probability.fit("poisson", np.ones(5), np.ones(5))


def test_walk_forward_uses_only_earlier_days(params: dict) -> None:
    days = np.repeat(np.arange(3), 400)
    predicted = np.full(len(days), 10.0)
    line = np.full(len(days), 10.5)
    actual = np.where(days < 2, 20.0, 0.0)  # day 2's outcomes must not move day 2's probabilities
    over = probability.walk_forward(params, days, actual, predicted, line)[0]
    first_two = probability.fit_line(params, actual[days < 2], predicted[days < 2], line[days < 2])
    np.testing.assert_allclose(over[days == 2], probability.probabilities(first_two, predicted[:400], line[:400])[0])
    default = probability.probabilities(params, predicted[:400], line[:400])[0]
    np.testing.assert_allclose(over[days == 0], default)  # day 0: no graded line yet, the default


probabilities_01 = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(probabilities_01, probabilities_01), min_size=1, max_size=20),
       st.floats(0.0, 0.3))
def test_a_call_never_contradicts_its_probability(pairs: list[tuple[float, float]], band: float) -> None:
    over = np.array([a * (1 - b) for a, b in pairs])  # p_over + p_under <= 1, the rest a push
    under = np.array([(1 - a) * (1 - b) for a, b in pairs])
    call, confidence = probability.decide(over, under, band)
    graded = over + under
    assert np.all(over[call == "OVER"] > under[call == "OVER"])
    assert np.all(under[call == "UNDER"] > over[call == "UNDER"])
    side = np.where(call == "OVER", over, under) / np.where(graded > 0, graded, 1.0)
    np.testing.assert_allclose(confidence[call != "PASS"], side[call != "PASS"])
    assert np.all(confidence[call != "PASS"] >= 0.5 + band - 1e-12) and np.isnan(confidence[call == "PASS"]).all()


def test_decide_band_and_missing_lines() -> None:
    call, confidence = probability.decide(np.array([0.53, 0.51, 0.40, np.nan, 0.45]),
                                          np.array([0.47, 0.49, 0.60, np.nan, 0.40]), band=0.024)
    assert call.tolist() == ["OVER", "PASS", "UNDER", "PASS", "OVER"]
    np.testing.assert_allclose(confidence[[0, 2, 4]], [0.53, 0.60, 0.45 / 0.85])


def test_brier_ece_reliability_exact_values() -> None:
    p, outcome = np.array([0.1, 0.2, 0.8, 0.9, np.nan]), np.array([0.0, 1.0, 1.0, 1.0, 1.0])
    assert probability.brier(p, outcome) == pytest.approx((0.01 + 0.64 + 0.04 + 0.01) / 4)
    assert probability.brier(np.full(4, 0.5), np.array([0, 1, 0, 1])) == pytest.approx(0.25)
    # bins of width 0.5: (0.1, 0.2) -> mean 0.15 vs 0.5; (0.8, 0.9) -> 0.85 vs 1.0
    assert probability.reliability(p, outcome, bins=2) == [(pytest.approx(0.15), 0.5, 2), (pytest.approx(0.85), 1.0, 2)]
    assert probability.expected_calibration_error(p, outcome, bins=2) == pytest.approx((2 * 0.35 + 2 * 0.15) / 4)
    assert probability.expected_calibration_error(np.array([1.0]), np.array([1.0]), bins=10) == 0.0
    assert np.isnan(probability.brier(np.array([np.nan]), np.array([1.0])))


def test_wilson_interval_exact_values() -> None:
    low, high = probability.wilson_interval(50, 100)
    assert low == pytest.approx(0.40383, abs=1e-5) and high == pytest.approx(0.59617, abs=1e-5)
    assert probability.wilson_interval(0, 10)[0] == 0.0
    assert probability.wilson_interval(0, 0) == (0.0, 1.0)


def test_hit_rate_by_confidence_buckets() -> None:
    confidence = np.array([0.53, 0.56, 0.57, 0.7, 1.0, np.nan])
    won = np.array([1.0, 0.0, 1.0, 1.0, 1.0, np.nan])
    buckets = probability.hit_rate_by_confidence(confidence, won, edges=(0.524, 0.55, 0.6, 1.0))
    assert [(b["n"], b["wins"]) for b in buckets] == [(1, 1), (2, 1), (2, 2)]
    assert buckets[1]["hit_rate"] == 0.5


def test_a_push_share_is_not_scored_as_an_under_forecast_of_the_over() -> None:
    """On a whole line, P(over) 0.425 with P(push) 0.15 is even odds once graded: its Brier score against
    the graded outcomes (pushes left out) is 0.2556, that of P(over | graded) exactly 0.25."""
    line, actual = np.array([10.0, 10.0, 10.0]), np.array([12.0, 7.0, 10.0])  # over, under, push
    prices = {"line": line, "recommendation": np.array(["PASS"] * 3), "p_over": np.full(3, 0.425),
              "p_under": np.full(3, 0.425)}
    scores = priced_metrics(actual, actual, prices)
    assert scores["test_brier"] == pytest.approx((0.575**2 + 0.425**2) / 2)
    assert scores["test_brier_graded"] == pytest.approx(0.25) and scores["test_ece_graded"] == pytest.approx(0.0)
