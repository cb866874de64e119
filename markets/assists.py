"""Assists: a player's share of his team's made baskets and how many the team makes."""

from contracts import Feature
from markets.base import Market

MARKET = Market(
    name="assists", label="Assists", target=("ast",),
    line_keys=("player_assists",),
    distribution="negative_binomial",
    features=(
        Feature("assist_share_last_10", "assists", "last 10 games",
                "The player's assists over his team's made field goals, summed over the window.",
                compute=("player_ratio", "ast", "team_fgm", 10)),
        Feature("turnovers_avg_last_10", "assists", "last 10 games", "Mean turnovers (ball-handling load).",
                compute=("player_mean", "tov", 10)),
        Feature("team_fgm_last_10", "assists", "team's last 10 games", "Field goals the team made per game.",
                compute=("team_mean", "fgm", 10)),
        Feature("opponent_fgm_allowed_last_10", "assists", "opponent's last 10 games",
                "Field goals the opponent allowed per game.",
                compute=("opponent_mean", "allowed_fgm", 10)),
    ),
)
