"""Points: the market the platform started with; its 33 features are the shared ones plus its form."""

from markets.base import Market

MARKET = Market(
    name="points", label="Points", target=("points",),
    line_keys=("player_points",),
    distribution="normal",
)
