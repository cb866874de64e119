"""The promotion gate: does a challenger beat the model it would replace, on the same games?

A pure function of the two models' absolute errors on the same held-out games, so the rule a
promotion follows can be read and tested without a registry, a store or a trained model. The
improvement is the baseline's MAE minus the challenger's, in points (positive: the challenger is
better); its 95% interval comes from a paired bootstrap (games resampled in pairs, so the game-to-game
variance both models share cancels). A challenger passes when the improvement is at least
``min_improvement`` and the whole interval lies above zero. Which baseline (the production version, or
the moving-average baseline when there is no champion) is the caller's choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class GateResult:
    games: int
    challenger_mae: float
    baseline_mae: float
    improvement: float  # baseline MAE - challenger MAE, points
    ci_low: float
    ci_high: float
    passed: bool

    def figures(self) -> dict[str, float]:
        """The figures a promotion event records."""
        return {"games": float(self.games), "challenger_mae": self.challenger_mae, "baseline_mae": self.baseline_mae,
                "improvement": self.improvement, "ci_low": self.ci_low, "ci_high": self.ci_high}


def judge(challenger_errors: np.ndarray, baseline_errors: np.ndarray, min_improvement: float = 0.0,
          seed: int = 0, samples: int = BOOTSTRAP_SAMPLES) -> GateResult:
    """The gate's figures and verdict for absolute errors of the same games, in the same order."""
    challenger, baseline = np.asarray(challenger_errors, float), np.asarray(baseline_errors, float)
    if challenger.shape != baseline.shape or challenger.ndim != 1 or not len(challenger):
        raise ValueError(f"the gate needs the errors of the same games: got {challenger.shape} and {baseline.shape}")
    gain = baseline - challenger
    rng = np.random.default_rng(seed)
    # one draw at a time: a season of games times 2000 samples at once would take gigabytes
    means = np.array([gain[rng.integers(0, len(gain), len(gain))].mean() for _ in range(samples)])
    low, high = np.quantile(means, [0.025, 0.975])
    improvement = float(gain.mean())
    # + 0.0 turns a -0.0 into 0.0 in the recorded figures
    return GateResult(games=len(gain), challenger_mae=float(challenger.mean()), baseline_mae=float(baseline.mean()),
                      improvement=improvement + 0.0, ci_low=float(low) + 0.0, ci_high=float(high) + 0.0,
                      passed=bool(improvement >= min_improvement and low > 0))
