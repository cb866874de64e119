"""The features of ``ml_feature_store_v2``: the one place where each is named and defined.

Each market (``markets/``) reads the shared features (role, schedule, team, lineup), its form features
(the same rules applied to its outcome: points' 33 features are the shared 23 and its 10) and its own.

Every feature of a game on date D is computed from games before D, plus facts known before tip-off
(home or away, rest, who is playing for each team that day, the posted lines). "Last N" windows count
the player's (or the team's) previous N games across seasons; "season" windows restart each season.
A feature whose input is missing (a debut, no line posted) is null, and the row's
``missing_inputs`` counts such nulls; nothing is filled with a constant.
"""

from __future__ import annotations

import pandas as pd

from contracts import FEATURE_STORE, KEY_COLUMNS, PLAYER_GAME_COLUMNS, Column, Feature, TableSchema
from markets import MARKETS, Market

# The layout of a market's features: the shared ones, and its form features (``{m}`` is the market's
# name, ``{label}`` its outcome in words), in the order the points features always had; each market's own
# features follow. A form feature is the same rule applied to the market's outcome.
LAYOUT: tuple[Feature, ...] = (
    # player form in the market
    Feature("{m}_avg_last_5", "player", "last 5 games", "Mean {label}."),
    Feature("{m}_avg_last_10", "player", "last 10 games", "Mean {label}."),
    Feature("{m}_avg_season", "player", "season to date", "Mean {label} in this season's prior games."),
    Feature("{m}_std_last_10", "player", "last 10 games", "Standard deviation of {label} (2+ games)."),
    Feature("{m}_last_game", "player", "last game", "{Label} in the previous game."),
    Feature("{m}_ewm_10", "player", "all prior games", "Exponentially weighted mean of {label}, span 10."),
    Feature("{m}_avg_vs_opponent", "player", "last 5 games against this opponent",
            "Mean {label} against today's opponent."),
    # player role and volume
    Feature("minutes_avg_last_5", "player", "last 5 games", "Mean minutes."),
    Feature("minutes_avg_last_10", "player", "last 10 games", "Mean minutes."),
    Feature("{m}_per_minute_last_10", "player", "last 10 games",
            "{Label} divided by minutes, summed over the window."),
    Feature("fga_avg_last_10", "player", "last 10 games", "Mean field-goal attempts."),
    Feature("fg3a_avg_last_10", "player", "last 10 games", "Mean three-point attempts."),
    Feature("fta_avg_last_10", "player", "last 10 games", "Mean free-throw attempts."),
    Feature("true_shooting_pct_last_10", "player", "last 10 games",
            "Points / (2 * (FGA + 0.44 FTA)), summed over the window."),
    Feature("usage_rate_last_10", "player", "last 10 games",
            "Share of the team's plays used, (FGA + 0.44 FTA + TOV) of the player over the team's, "
            "per game, averaged."),
    Feature("plus_minus_avg_last_10", "player", "last 10 games", "Mean plus-minus."),
    Feature("games_played_season", "player", "season to date", "Games played this season before today (0 on a debut)."),
    # rest and load
    Feature("days_rest", "schedule", "previous game", "Days since the player's previous game, capped at 10."),
    Feature("is_back_to_back", "schedule", "previous game", "1 when the previous game was yesterday."),
    Feature("games_last_7_days", "schedule", "7 days before D", "Games played in the 7 days before today."),
    Feature("minutes_last_7_days", "schedule", "7 days before D", "Minutes played in the 7 days before today."),
    Feature("fatigue_score", "schedule", "7 days before D",
            "0 (fresh) to 100 (worn): 40 * back-to-back + 30 * min(games_last_7_days, 4) / 4 "
            "+ 30 * min(minutes_last_7_days, 160) / 160."),
    Feature("is_home", "schedule", "today", "1 at home, 0 away."),
    # team and opponent
    Feature("team_pace_last_10", "team", "team's last 10 games",
            "Possessions per game, possessions = FGA + 0.44 FTA - OREB + TOV averaged over both teams."),
    Feature("opponent_pace_last_10", "opponent", "opponent's last 10 games", "As team_pace_last_10, for the opponent."),
    Feature("pace_score", "game", "both teams' last 10 games",
            "Expected possessions of this game relative to the league: (team + opponent pace) / 2 "
            "minus the league's mean pace over the previous 30 game dates."),
    Feature("team_offensive_rating_last_10", "team", "team's last 10 games", "Points scored per 100 possessions."),
    Feature("opponent_team_defensive_rating", "opponent", "opponent's last 10 games",
            "Points allowed per 100 possessions."),
    Feature("usage_spike_score", "lineup", "team's last 10 games this season, today's lineup",
            "Summed usage share of regular teammates (5+ of the team's last 10 games this season) who are "
            "not playing today."),
    Feature("teammates_out_minutes", "lineup", "team's last 10 games this season, today's lineup",
            "Summed mean minutes of those missing regular teammates."),
    Feature("shot_zone_mismatch_score", "opponent", "player's last 10, opponent's last 10 games",
            "No shot-zone data exists here, so the mix of three-pointers and free throws stands in for zones: "
            "player's 3PA share of FGA times (opponent's allowed 3PA share - league share, previous 30 game "
            "dates) plus player's "
            "FTA/FGA times (opponent's allowed FTA/FGA - league rate), times 100."),
    # market
    Feature("vegas_{m}_line", "market", "posted before tip-off", "Median {label} line over books; null when none."),
    Feature("line_minus_{m}_avg_last_10", "market", "posted before tip-off", "vegas_{m}_line - {m}_avg_last_10."),
)


def outcomes(box_scores: pd.DataFrame) -> pd.DataFrame:
    """Each market's outcome of each row of ``box_scores``: the sum of its target columns (a column per
    market, named after it; null where a stat is)."""
    return pd.DataFrame({m.name: box_scores[list(m.target)].astype(float).sum(axis=1, min_count=len(m.target))
                         for m in MARKETS.values()}, index=box_scores.index)


def _of(template: Feature, market: Market) -> Feature:
    label = market.label.lower()
    fill = {"m": market.name, "label": label, "Label": label[:1].upper() + label[1:]}
    return Feature(template.name.format(**fill), market.name, template.window, template.definition.format(**fill))


SHARED: tuple[Feature, ...] = tuple(f for f in LAYOUT if "{m}" not in f.name)


def market_features(market: Market) -> tuple[Feature, ...]:
    """A market's model inputs: the layout filled in for it, then its own features."""
    return (*(f if "{m}" not in f.name else _of(f, market) for f in LAYOUT), *market.features)


def feature_names(market: Market) -> list[str]:
    """The market's model inputs by name, in its bundles' order (worked out once per market: serving,
    training and the gate ask for them on every request, split and check)."""
    return list(_NAMES[market.name])


_NAMES = {m.name: tuple(f.name for f in market_features(m)) for m in MARKETS.values()}

# Every column of the store, each once: the shared features, then per market its form and its own.
FEATURES: tuple[Feature, ...] = (*SHARED, *(f for m in MARKETS.values()
                                            for f in market_features(m) if f not in SHARED))


FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES), "two features share a name"
assert len(feature_names(MARKETS["points"])) == 33

# Whole-number features are still stored as FLOAT64: null is a legitimate value for all of them.
FEATURE_STORE_SCHEMA = TableSchema(
    FEATURE_STORE,
    (
        *PLAYER_GAME_COLUMNS,
        *(Column(name, "FLOAT64") for name in FEATURE_NAMES),
        *(Column(m.name, "FLOAT64") for m in MARKETS.values()),  # the outcome of each market
        Column("feature_version", "STRING", False),
        Column("missing_inputs", "INT64", False),
    ),
    KEY_COLUMNS,
)


def markdown_table() -> str:
    """The feature list as it appears in docs/features.md (a test keeps the two in step): each feature
    with the markets whose models read it."""
    used_by = {f.name: [m.name for m in MARKETS.values() if f.name in feature_names(m)] for f in FEATURES}
    rows = ["| # | feature | group | markets | window | definition |", "|---|---|---|---|---|---|"]
    markets = {name: "all" if len(used) == len(MARKETS) else ", ".join(used) for name, used in used_by.items()}
    rows += [f"| {i} | `{f.name}` | {f.group} | {markets[f.name]} | {f.window} | {f.definition} |"
             for i, f in enumerate(FEATURES, 1)]
    return "\n".join(rows) + "\n"
