"""The prediction systems: ``contracts.SYSTEMS`` is the table, one module here per entry, named after it.

Every module implements the same interface, so training, the backtest, the registry and serving
iterate the table instead of switching on names:

* ``NAME`` (from ``contracts``), ``KIND`` (written into the bundle, maps a bundle back to its module),
  ``TUNED`` (has a search space in the experiment spec), ``COMBINES`` (fitted on the bundles of the
  systems before it in the table, and predicts by combining theirs);
* ``fit(params, splits, seed, report=None, members=None) -> model``: ``params`` are the spec's fixed
  parameters, overlaid with a trial's or the tuned ones; ``report(step, val_mae)`` may raise to stop a
  trial early; ``members`` are the finished bundles a combining system is fitted on;
* ``predict(model, x)`` (a float matrix in the bundle's feature order), or ``combine(model, parts)``
  for a combining system (its members' predictions by name);
* ``save(model, folder) -> meta``, ``load(meta, folder) -> model``: the model's part of the bundle;
* ``importances(model, splits) -> {name: value}``: what the run logs as its importance chart.

These modules are the registry's model format, packaged with every logged model (``code_paths``):
they import the model libraries and ``contracts`` only, never ``training``, ``features`` or ``serving``.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

from contracts import SYSTEMS


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
