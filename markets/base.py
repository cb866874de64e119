"""What a market declares, and the small vocabulary its own features are written in."""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts import Feature


class MarketError(ValueError):
    """A market name the platform does not declare."""


@dataclass(frozen=True)
class Market:
    """One prop market.

    ``target`` names the ``box_scores`` columns whose sum is the market's outcome (stored in the feature
    store under the market's name). ``line_keys`` are the market keys its lines carry in the daily-fantasy
    files and The Odds API. ``distribution`` says how P(over) is modelled around a prediction:
    ``normal`` (a location-scale distribution for the high-count markets, whose spread grows with the
    prediction) or ``negative_binomial`` (a count distribution with a fitted dispersion for small counts);
    both are then calibrated on validation (``registry/probability.py``). ``features`` are the features
    only this market uses; every market also gets the shared features and its own form features
    (``features/definitions.py``).
    """

    name: str
    label: str
    target: tuple[str, ...]
    line_keys: tuple[str, ...]
    distribution: str
    features: tuple[Feature, ...] = field(default=())

    @property
    def registered_prefix(self) -> str:
        """Registered models are named ``<prefix><system>``: points keeps the names it had before there
        were markets (``xgboost_v1``), so existing aliases, URIs and scripts keep working; every other
        market is a namespace of its own (``rebounds.xgboost_v1``), promoted and rolled back on its own."""
        return "" if self.name == "points" else f"{self.name}."

    def registered_name(self, system: str) -> str:
        return f"{self.registered_prefix}{system}"

    @property
    def line_feature(self) -> str:
        """The feature holding the market's median line over books (null when none was posted)."""
        return f"vegas_{self.name}_line"
