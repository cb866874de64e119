"""Points + rebounds + assists: the combo, modelled like points (a large count) on the three's forms."""

from markets.base import Market

MARKET = Market(
    name="pra", label="Points + rebounds + assists", target=("points", "reb", "ast"),
    line_keys=("player_points_rebounds_assists",),
    distribution="normal",
)
