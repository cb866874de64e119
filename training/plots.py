"""Figures logged to every training run: what a person would rather look at than numbers."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")  # files only: training runs on servers with no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

SAMPLE = 5000


def _sample(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(n, size=min(n, SAMPLE), replace=False)


def feature_importance(importances: dict[str, float], title: str, top: int = 20) -> Figure:
    ranked = sorted(importances.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(ranked) + 1.5))
    ax.barh([name for name, _ in ranked], [value for _, value in ranked], color="#1f6f8b")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def residuals(actual: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    pick = _sample(len(actual))
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter(predicted[pick], actual[pick] - predicted[pick], s=4, alpha=0.3)
    ax.axhline(0, color="black", lw=1)
    ax.set(xlabel="predicted points", ylabel="actual - predicted", title=title)
    fig.tight_layout()
    return fig


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    pick = _sample(len(actual))
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(predicted[pick], actual[pick], s=4, alpha=0.3)
    top = float(max(actual.max(), predicted.max()))
    ax.plot([0, top], [0, top], color="black", lw=1)
    ax.set(xlabel="predicted points", ylabel="actual points", title=title)
    fig.tight_layout()
    return fig


def calibration(actual: np.ndarray, predicted: np.ndarray, title: str, bins: int = 15) -> Figure:
    """Mean actual points per bin of predicted points: on the diagonal when the model is calibrated."""
    edges = np.unique(np.quantile(predicted, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.digitize(predicted, edges[1:-1]), 0, len(edges) - 2)
    mean_pred = [predicted[which == b].mean() for b in range(len(edges) - 1)]
    mean_act = [actual[which == b].mean() for b in range(len(edges) - 1)]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot(mean_pred, mean_act, marker="o")
    top = float(max(max(mean_pred), max(mean_act)))
    ax.plot([0, top], [0, top], color="black", lw=1, ls="--")
    ax.set(xlabel="mean predicted points", ylabel="mean actual points", title=title)
    fig.tight_layout()
    return fig


def _optuna_figure(draw: Callable[[optuna.Study], Axes], study: optuna.Study, title: str) -> Figure:
    with warnings.catch_warnings():  # optuna.visualization.matplotlib is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = draw(study)
    ax.set_title(title)
    ax.figure.set_size_inches(8, 5)
    ax.figure.tight_layout()
    return ax.figure


def optuna_history(study: optuna.Study, title: str) -> Figure:
    """Each trial's validation MAE and the best so far: whether more trials would still help."""
    return _optuna_figure(optuna.visualization.matplotlib.plot_optimization_history, study, title)


IMPORTANCE_MIN_TRIALS = 2


def param_importances(study: optuna.Study, title: str) -> Figure | None:
    """How much each searched parameter explains the trials' scores (fANOVA); None below
    ``IMPORTANCE_MIN_TRIALS`` complete trials, where there is no variation to explain."""
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < IMPORTANCE_MIN_TRIALS:
        return None
    return _optuna_figure(optuna.visualization.matplotlib.plot_param_importances, study, title)
