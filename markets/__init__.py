"""The table of prop markets: points, rebounds, assists, threes and points+rebounds+assists.

A market is declared once, in a module of this package named after it (its target as a sum of
box-score columns, the keys its lines are posted under, the features only it needs, and the
distribution its P(over) is modelled with); every stage (feature store, training, registry, serving,
the daily job, grading and monitoring) iterates :data:`MARKETS` as it iterates the systems, so adding
a market is a new module here plus its name in :data:`MARKET_MODULES`.
"""

from __future__ import annotations

from importlib import import_module

from markets.base import Market, MarketError

# Served and trained in this order; the first is the default market everywhere one is optional.
MARKET_MODULES = ("points", "rebounds", "assists", "threes", "pra")
MARKETS: dict[str, Market] = {m.name: m for m in (import_module(f"markets.{n}").MARKET for n in MARKET_MODULES)}
DEFAULT_MARKET = MARKET_MODULES[0]
MARKET_NAMES = tuple(MARKETS)


def market(name: str) -> Market:
    """The declared market of that name; an error listing the markets otherwise."""
    try:
        return MARKETS[name]
    except KeyError:
        raise MarketError(f"market {name!r} is not one of {', '.join(MARKETS)}") from None


def parse_markets(text: str | None, default: tuple[str, ...] = (DEFAULT_MARKET,)) -> tuple[str, ...]:
    """A ``markets`` option: ``all``, a comma list (``points,rebounds``) or empty for ``default``;
    in table order, each once."""
    if text is None or not text.strip():
        return default
    if text.strip() == "all":
        return MARKET_NAMES
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    for name in wanted:
        market(name)
    return tuple(name for name in MARKETS if name in wanted)


def registered(name: str) -> tuple[Market, str]:
    """The market and system of a registered model name (``rebounds.xgboost_v1``; a bare system name is
    points, whose models kept their names)."""
    prefix, dot, system = name.partition(".")
    if dot and prefix in MARKETS:
        return MARKETS[prefix], system
    return MARKETS[DEFAULT_MARKET], name


def by_line_key(key: str) -> Market | None:
    """The market a line source's market key (``player_rebounds``) belongs to, None when unknown."""
    return next((m for m in MARKETS.values() if key in m.line_keys), None)


__all__ = ["DEFAULT_MARKET", "MARKETS", "MARKET_NAMES", "Market", "MarketError", "by_line_key", "market",
           "parse_markets", "registered"]
