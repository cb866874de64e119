"""The table of systems: one module per system with one interface, and the ensemble's weights."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import SYSTEMS
from registry import systems
from registry.systems.ensemble_v1 import fit_weights
from serving.models import LEAD_ORDER

INTERFACE = ("NAME", "KIND", "TUNED", "COMBINES", "fit", "save", "load", "importances")


@pytest.mark.parametrize("name", SYSTEMS)
def test_every_system_of_the_table_has_a_module_with_the_interface(name: str) -> None:
    module = systems.module(name)
    assert name == module.NAME and all(hasattr(module, attr) for attr in INTERFACE)
    assert hasattr(module, "combine" if module.COMBINES else "predict")
    assert systems.by_kind(module.KIND) is module


def test_kinds_are_unique_and_serving_leads_with_the_combination() -> None:
    assert len({systems.module(s).KIND for s in SYSTEMS}) == len(SYSTEMS)
    assert set(LEAD_ORDER) == set(SYSTEMS) and systems.module(LEAD_ORDER[0]).COMBINES
    with pytest.raises(ValueError, match="bundle kind 'lightgbm' is not one of moving_average"):
        systems.by_kind("lightgbm")


def test_weights_recover_an_exact_mixture() -> None:
    rng = np.random.default_rng(1)
    a, b, c = rng.gamma(2, 5, (3, 400))
    weights = fit_weights({"a": a, "b": b, "c": c}, 0.3 * a + 0.7 * b)
    assert weights == pytest.approx({"a": 0.3, "b": 0.7, "c": 0.0}, abs=1e-6)


def test_weights_stay_on_the_simplex_and_beat_every_member() -> None:
    rng = np.random.default_rng(2)
    actual = rng.gamma(2, 5, 2000)
    preds = {"good": actual + rng.normal(0, 2, 2000), "noisy": actual + rng.normal(0, 4, 2000),
             "wrong": 40 - actual}  # anti-correlated: a free regression would give it a negative weight
    weights = fit_weights(preds, actual)
    assert all(w >= 0 for w in weights.values()) and sum(weights.values()) == pytest.approx(1.0)
    assert weights["wrong"] == pytest.approx(0.0, abs=1e-9) and weights["good"] > weights["noisy"]
    blended = sum(w * preds[n] for n, w in weights.items())
    assert np.mean(np.abs(actual - blended)) < min(np.mean(np.abs(actual - p)) for p in preds.values())


def test_ten_members_are_weighted_without_a_grid_search() -> None:
    # the old 0.05 grid would need 21**9 (8e11) evaluations for ten members; how fast: benchmarks/bounds.py
    rng = np.random.default_rng(3)
    actual = rng.gamma(2, 5, 5000)
    preds = {f"m{i}": actual + rng.normal(0, 2 + i, 5000) for i in range(10)}
    weights = fit_weights(preds, actual)
    assert max(weights, key=weights.get) == "m0" and sum(weights.values()) == pytest.approx(1.0)
