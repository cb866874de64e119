"""The promotion gate on made-up errors: the rule promote() follows, without a registry or a model."""

from __future__ import annotations

import numpy as np
import pytest

from registry.gate import judge

GAMES = 2000


def errors(seed: int = 1) -> np.ndarray:
    """Absolute errors shaped like the models': about 4.5 points on average."""
    return np.abs(np.random.default_rng(seed).normal(0, 5.6, GAMES))


def test_a_clearly_better_challenger_passes_with_its_figures() -> None:
    baseline = errors()
    result = judge(baseline - 0.3, baseline)
    assert result.passed
    assert result.games == GAMES and result.improvement == pytest.approx(0.3)
    assert result.baseline_mae == pytest.approx(baseline.mean()) and result.challenger_mae == pytest.approx(
        baseline.mean() - 0.3)
    # every game gains exactly 0.3: every resample does too
    assert result.ci_low == pytest.approx(0.3) and result.ci_high == pytest.approx(0.3)


def test_an_equal_challenger_fails() -> None:
    baseline = errors()
    result = judge(baseline.copy(), baseline)
    assert not result.passed
    assert (result.improvement, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert "-0.0" not in str(result.figures())  # recorded figures never show a negative zero


def test_a_better_mean_whose_interval_reaches_below_zero_fails() -> None:
    baseline = errors()
    noise = np.random.default_rng(2).normal(0, 2.0, GAMES)
    challenger = baseline - 0.03 + (noise - noise.mean())  # 0.03 points better on average, give or take 2
    result = judge(challenger, baseline)
    assert result.improvement == pytest.approx(0.03) and result.ci_low < 0 < result.ci_high
    assert not result.passed


def test_min_improvement_is_respected() -> None:
    baseline = errors()
    challenger = baseline - 0.2
    assert judge(challenger, baseline, min_improvement=0.15).passed
    assert judge(challenger, baseline, min_improvement=0.2).passed  # at least: equal is enough
    assert not judge(challenger, baseline, min_improvement=0.25).passed


def test_the_interval_is_of_the_improvement_baseline_minus_challenger() -> None:
    baseline = errors()
    worse = baseline + np.abs(np.random.default_rng(3).normal(0.5, 0.3, GAMES))
    result = judge(worse, baseline)
    assert result.improvement < 0 and result.ci_low <= result.improvement <= result.ci_high < 0
    assert not result.passed
    flipped = judge(baseline, worse)
    assert flipped.improvement == pytest.approx(-result.improvement) and flipped.ci_low > 0 and flipped.passed


def test_the_same_seed_gives_the_same_interval_and_another_seed_another() -> None:
    baseline = errors()
    challenger = np.abs(baseline + np.random.default_rng(4).normal(-0.2, 1.5, GAMES))
    assert judge(challenger, baseline, seed=7) == judge(challenger, baseline, seed=7)
    assert judge(challenger, baseline, seed=7).ci_low != judge(challenger, baseline, seed=8).ci_low


def test_errors_of_different_games_are_refused() -> None:
    with pytest.raises(ValueError, match=r"the same games: got \(3,\) and \(2,\)"):
        judge(np.ones(3), np.ones(2))
