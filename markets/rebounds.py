"""Rebounds: a player's share of his team's rebounds and the misses there are to rebound."""

from contracts import Feature
from markets.base import Market

MARKET = Market(
    name="rebounds", label="Rebounds", target=("reb",),
    line_keys=("player_rebounds",),
    distribution="negative_binomial",
    features=(
        Feature("rebound_share_last_10", "rebounds", "last 10 games",
                "The player's rebounds over his team's rebounds, summed over the window.",
                compute=("player_ratio", "reb", "team_reb", 10)),
        Feature("oreb_avg_last_10", "rebounds", "last 10 games", "Mean offensive rebounds.",
                compute=("player_mean", "oreb", 10)),
        Feature("dreb_avg_last_10", "rebounds", "last 10 games", "Mean defensive rebounds.",
                compute=("player_mean", "dreb", 10)),
        Feature("team_missed_shots_last_10", "rebounds", "team's last 10 games",
                "Field goals the team missed per game (offensive rebound chances).",
                compute=("team_mean", "missed", 10)),
        Feature("opponent_missed_shots_last_10", "rebounds", "opponent's last 10 games",
                "Field goals the opponent missed per game (defensive rebound chances).",
                compute=("opponent_mean", "missed", 10)),
    ),
)
