"""The prediction systems: ``contracts.SYSTEMS`` is the table, one module here per entry, named after it.

Every module implements the same interface, so training, the backtest, the registry and serving
iterate the table instead of switching on names:

* ``NAME`` (from ``contracts``), ``KIND`` (written into the bundle, maps a bundle back to its module),
  ``TUNED`` (has a search space in the experiment spec), ``COMBINES`` (fitted on the bundles of the
  systems before it in the table that its ``members(available)`` names, and predicts by combining
  theirs), ``ABSTAINS`` (may predict NaN for a row: no prediction, e.g. a game without a posted line);
* ``fit(params, splits, seed, report=None, members=None) -> model``: ``params`` are the spec's fixed
  parameters, overlaid with a trial's or the tuned ones; ``report(step, val_mae)`` may raise to stop a
  trial early; ``members`` are the finished bundles a combining system is fitted on;
* ``predict(model, x)`` (a float matrix in the bundle's feature order), or ``combine(model, parts, x)``
  for a combining system (its members' predictions by name, and the same matrix);
* optionally ``fit_distribution(model, distribution, actual, predicted, line)``: the predictive
  distribution of a system that fits its own (``registry.probability.fit`` on validation otherwise);
* ``save(model, folder) -> meta``, ``load(meta, folder) -> model``: the model's part of the bundle;
* ``importances(model, splits) -> {name: value}``: what the run logs as its importance chart.

These modules are the registry's model format, packaged with every logged model (``code_paths``):
they import the model libraries and ``contracts`` only, never ``training``, ``features`` or ``serving``.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

import numpy as np

from contracts import SYSTEMS
from registry import probability


@cache
def module(name: str) -> ModuleType:
    """The module of one system of the table."""
    if name not in SYSTEMS:
        raise ValueError(f"system {name!r} is not one of {', '.join(SYSTEMS)}")
    return importlib.import_module(f"{__name__}.{name}")


def by_kind(kind: str) -> ModuleType:
    """The module that reads bundles of this kind."""
    kinds = {module(name).KIND: module(name) for name in SYSTEMS}
    if kind not in kinds:
        raise ValueError(f"bundle kind {kind!r} is not one of {', '.join(kinds)}")
    return kinds[kind]


def tuned_systems() -> tuple[str, ...]:
    return tuple(name for name in SYSTEMS if module(name).TUNED)


def members_of(name: str, available: tuple[str, ...]) -> tuple[str, ...]:
    """The systems, of those fitted before it, whose bundles a system is fitted on (none unless it combines)."""
    chosen = module(name)
    return tuple(chosen.members(available)) if chosen.COMBINES else ()


def fit_distribution(name: str, model: object, distribution: str, actual: np.ndarray, predicted: np.ndarray,
                     line: np.ndarray) -> dict:
    """A system's predictive distribution from its validation rows (``registry/probability.py``): its
    own where it fits one, since a system that abstains has no prediction on most of those rows."""
    own = getattr(module(name), "fit_distribution", None)
    if own is not None:
        return own(model, distribution, actual, predicted, line)
    return probability.fit(distribution, actual, predicted, line=line)


def abstained(system: ModuleType, predicted: np.ndarray) -> np.ndarray:
    """Rows where a NaN prediction is an abstention (a system that ``ABSTAINS``), not a failure."""
    return np.isnan(np.asarray(predicted, float)) & bool(system.ABSTAINS)
