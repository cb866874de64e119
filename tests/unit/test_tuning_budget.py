"""How the trial budget is spent, and the Optuna plots a tuned run gets (in-memory studies)."""

from __future__ import annotations

import optuna
import pytest

from training import plots
from training.tuning import startup_trials


@pytest.mark.parametrize(("n_trials", "random"), [(2, 2), (5, 2), (12, 4), (30, 10), (200, 10)])
def test_tpe_starts_up_on_a_third_of_the_budget(n_trials: int, random: int) -> None:
    """The default 12 trials: 4 random, 8 guided by TPE (Optuna's own 10 would leave 2 guided)."""
    assert startup_trials(n_trials) == random


def _study(n_complete: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("eta", 0.01, 0.3) - 0.1) ** 2 + t.suggest_int("depth", 3, 8) / 100,
                   n_trials=n_complete)
    return study


def test_parameter_importance_needs_two_complete_trials() -> None:
    assert plots.param_importances(_study(1), "one trial") is None
    figure = plots.param_importances(_study(4), "four trials")
    labels = {tick.get_text() for tick in figure.axes[0].get_yticklabels()}
    assert labels == {"eta", "depth"}


def test_history_plots_every_trial() -> None:
    figure = plots.optuna_history(_study(3), "history")
    assert figure.axes[0].get_title() == "history"
    assert sum(len(c.get_offsets()) for c in figure.axes[0].collections) >= 3
