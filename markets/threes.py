"""Threes made: attempt rate, accuracy, and how many threes the opponent gives up."""

from contracts import Feature
from markets.base import Market

MARKET = Market(
    name="threes", label="Threes made", target=("fg3m",),
    line_keys=("player_threes",),
    distribution="negative_binomial",
    features=(
        Feature("fg3a_rate_last_10", "threes", "last 10 games",
                "Three-point attempts over field-goal attempts, summed over the window.",
                compute=("player_ratio", "fg3a", "fga", 10)),
        Feature("fg3_pct_last_10", "threes", "last 10 games",
                "Threes made over threes attempted, summed over the window.",
                compute=("player_ratio", "fg3m", "fg3a", 10)),
        Feature("opponent_fg3m_allowed_last_10", "threes", "opponent's last 10 games",
                "Threes the opponent allowed per game.",
                compute=("opponent_mean", "allowed_fg3m", 10)),
    ),
)
