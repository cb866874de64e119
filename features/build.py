"""Box scores (and optionally lines and an upcoming slate) → the features of every player-game, every market.

Everything is vectorised over arrays sorted by (entity, date): a window over "the previous N games"
is a difference of prefix sums, so the whole ten-season history builds in about a second. Each row
sees only rows before it in its own entity's order, which is what keeps the store point-in-time.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from contracts import FEATURE_VERSION
from features.definitions import FEATURE_NAMES, FEATURE_STORE_SCHEMA, outcomes
from markets import MARKETS

_STATS = ("minutes", "points", "fgm", "fga", "fg3m", "fg3a", "fta", "oreb", "dreb", "reb", "ast", "tov",
          "plus_minus")
_TEAM_STATS = ("points", "fgm", "fga", "fg3m", "fg3a", "fta", "oreb", "reb", "ast", "tov")
LEAGUE_DAYS = 30  # league-wide reference rates (pace, shot mix) use the previous 30 game dates


# --- window arithmetic --------------------------------------------------------------------------
def _group_starts(keys: pd.DataFrame) -> np.ndarray:
    """For each row of a frame sorted by ``keys``, the position of its group's first row."""
    new_group = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        new_group[1:] = (keys.iloc[1:].to_numpy() != keys.iloc[:-1].to_numpy()).any(axis=1)
    return np.maximum.accumulate(np.where(new_group, np.arange(len(keys)), 0))


def _prior(values: np.ndarray, starts: np.ndarray, window: int | None,
           first: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the non-null values in each row's previous ``window`` rows of its group
    (all previous rows when ``window`` is None, or from row ``first`` on when given); the row
    itself is never included.

    The prefix sums restart at every group, so a row's value depends on its own group's earlier
    rows only, to the last bit: rebuilding without the future gives exactly the same number.
    """
    values = np.asarray(values, dtype=float)
    present = ~np.isnan(values)
    i = np.arange(len(values))
    if first is None and window is not None:
        # a short window: add the previous rows one lag at a time (cheaper than a grouped sum)
        lo = np.maximum(starts, i - window)
        total, count = np.zeros(len(values)), np.zeros(len(values))
        clean = np.concatenate([np.zeros(window), np.where(present, values, 0.0)])
        seen = np.concatenate([np.zeros(window), present.astype(float)])
        for lag in range(1, window + 1):
            inside = i - lag >= lo
            total += np.where(inside, clean[window - lag:window - lag + len(values)], 0.0)
            count += np.where(inside, seen[window - lag:window - lag + len(values)], 0.0)
        return total, count
    parts = pd.DataFrame({"total": np.where(present, values, 0.0), "count": present.astype(float)})
    running = parts.groupby(starts, sort=False).cumsum()
    before = running.groupby(starts, sort=False).shift(1, fill_value=0.0).to_numpy()  # earlier rows only
    lo = starts if first is None else first
    window_sums = before[i] - before[lo]
    return window_sums[:, 0], window_sums[:, 1]


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _prior_mean(frame: pd.DataFrame, column: str, starts: np.ndarray, window: int | None) -> np.ndarray:
    return _mean(*_prior(frame[column].to_numpy(float), starts, window))


def _prior_ratio(frame: pd.DataFrame, num: str, den: str, starts: np.ndarray, window: int) -> np.ndarray:
    """sum(num) / sum(den) over the window, counting only games where both are known."""
    both = frame[num].notna() & frame[den].notna()
    n, _ = _prior(frame[num].where(both).to_numpy(float), starts, window)
    d, _ = _prior(frame[den].where(both).to_numpy(float), starts, window)
    return _ratio(n, d)


def _prior_ewm(values: np.ndarray, starts: np.ndarray, span: int) -> np.ndarray:
    """Exponentially weighted mean of each row's previous values in its group (pandas'
    ``ewm(span, adjust=True, ignore_na=True)`` of the shifted series), as a ratio of prefix sums:
    weighting the m-th value of a group by decay**-m makes every window a difference of two sums."""
    decay = 1 - 2 / (span + 1)
    present = ~np.isnan(values)
    seen = np.concatenate([[0], np.cumsum(present)])
    m = (seen[:-1] - seen[starts]).astype(float)  # index of each value among its group's values
    weight = np.where(present, decay ** -m, 0.0)
    total, _ = _prior(np.where(present, values * weight, np.nan), starts, None)
    norm, _ = _prior(np.where(present, weight, np.nan), starts, None)
    return _ratio(total, norm)


# --- team and league context --------------------------------------------------------------------
def team_games(games: pd.DataFrame) -> pd.DataFrame:
    """One row per team-game with the team's and its opponent's totals; unplayed games are null."""
    played = games.groupby(["game_id", "team"], sort=False)
    team = played[["game_date", "season", "opponent"]].first()
    team = team.join(played[list(_TEAM_STATS)].sum(min_count=1))
    team = team.reset_index()
    team["poss"] = team["fga"] + 0.44 * team["fta"] - team["oreb"] + team["tov"]
    team["missed"] = team["fga"] - team["fgm"]
    opp = team[["game_id", "team", "poss", *_TEAM_STATS]].rename(
        columns=lambda c: c if c == "game_id" else f"opp_{c}")
    team = team.merge(opp, left_on=["game_id", "opponent"], right_on=["game_id", "opp_team"], how="left")
    for stat in _TEAM_STATS:  # the team's totals as its players see them, and what it allowed its opponent
        team[f"team_{stat}"] = team[stat]
        team[f"allowed_{stat}"] = team[f"opp_{stat}"]
    team["pace"] = (team["poss"] + team["opp_poss"]) / 2
    team = team.sort_values(["team", "game_date", "game_id"], ignore_index=True)
    starts = _group_starts(team[["team"]])
    team["team_pace_last_10"] = _prior_mean(team, "pace", starts, 10)
    team["team_offensive_rating_last_10"] = 100 * _prior_ratio(team, "points", "poss", starts, 10)
    team["defensive_rating_last_10"] = 100 * _prior_ratio(team, "opp_points", "opp_poss", starts, 10)
    team["allowed_fg3a_share_last_10"] = _prior_ratio(team, "opp_fg3a", "opp_fga", starts, 10)
    team["allowed_ft_rate_last_10"] = _prior_ratio(team, "opp_fta", "opp_fga", starts, 10)
    for feature in _market_features("team_mean", "opponent_mean"):
        _, column, window = feature.compute
        team[feature.name] = _prior_mean(team, column, starts, window)
    return team


def _market_features(*kinds: str) -> list:
    """The markets' own features computed by one of the ``compute`` kinds."""
    return [f for m in MARKETS.values() for f in m.features if f.compute[0] in kinds]


def league_reference(team: pd.DataFrame) -> pd.DataFrame:
    """Per game date: league pace, 3PA share and FT rate over the previous ``LEAGUE_DAYS`` game
    dates (game dates, not calendar days, so a season opener still sees the end of last season)."""
    daily = team.groupby("game_date")[["pace", "fg3a", "fta", "fga"]].sum(min_count=1)
    daily["n"] = team.groupby("game_date")["pace"].count()
    window = daily.sort_index().fillna(0.0).rolling(LEAGUE_DAYS, min_periods=1).sum().shift(1)
    return pd.DataFrame({
        "game_date": window.index.to_numpy(),
        "league_pace": _ratio(window["pace"].to_numpy(), window["n"].to_numpy()),
        "league_fg3a_share": _ratio(window["fg3a"].to_numpy(), window["fga"].to_numpy()),
        "league_ft_rate": _ratio(window["fta"].to_numpy(), window["fga"].to_numpy()),
    })


def lineup_absences(games: pd.DataFrame) -> pd.DataFrame:
    """Per team-game: usage share and minutes of the regular teammates who are not playing.

    A regular played in at least 5 of the team's previous 10 games this season; "playing" means
    listed for the team in this game (a box-score row, or the slate's players for an upcoming game).
    """
    order = games[["team", "season", "game_date", "game_id"]].drop_duplicates(["team", "game_id"])
    order = order.sort_values(["team", "game_date", "game_id"], ignore_index=True)
    k = order.groupby(["team", "season"], sort=False).cumcount().to_numpy()
    first_slot = np.arange(len(order)) - k  # identifies the team-season
    slot_of = pd.Series(np.arange(len(order)), index=pd.MultiIndex.from_frame(order[["team", "game_id"]]))
    slot = slot_of.reindex(pd.MultiIndex.from_frame(games[["team", "game_id"]])).to_numpy()

    # a dense grid per (team-season, player): one column per game of that team-season
    pairs, pair = np.unique(first_slot[slot] * 10_000_000 + games["player_id"].to_numpy(np.int64),
                            return_inverse=True)
    pair_first = pairs // 10_000_000
    games_in_season = np.bincount(first_slot)[pair_first]
    width = int(k.max()) + 1
    played, usage, usage_known, minutes = (np.zeros((len(pairs), width + 1)) for _ in range(4))
    column = k[slot] + 1
    share = games["usage_share"].to_numpy(float)
    played[pair, column] = 1.0
    usage[pair, column] = np.nan_to_num(share)
    usage_known[pair, column] = ~np.isnan(share)
    minutes[pair, column] = np.nan_to_num(games["minutes"].to_numpy(float))
    # prefix sums along each row: column j holds the sum over the team's games before game j
    played, usage, usage_known, minutes = (np.cumsum(a, axis=1) for a in (played, usage, usage_known, minutes))

    game = np.arange(width)
    lo = np.maximum(game - 10, 0)
    n = played[:, game] - played[:, lo]
    playing = (played[:, game + 1] - played[:, game]) > 0
    absent = (n >= 5) & ~playing & (game[None, :] < games_in_season[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        usage_mean = (usage[:, game] - usage[:, lo]) / (usage_known[:, game] - usage_known[:, lo])
        minutes_mean = (minutes[:, game] - minutes[:, lo]) / n
    cell_slot = (pair_first[:, None] + game[None, :])[absent]
    return pd.DataFrame({
        "team": order["team"], "game_id": order["game_id"],
        "usage_spike_score": np.bincount(cell_slot, np.nan_to_num(usage_mean[absent]), minlength=len(order)),
        "teammates_out_minutes": np.bincount(cell_slot, minutes_mean[absent], minlength=len(order)),
    })


# --- the builder ----
def _day_numbers(dates: pd.Series) -> np.ndarray:
    return pd.to_datetime(dates).to_numpy().astype("datetime64[D]").astype(np.int64)


def _sorted_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes that sort like the text (hash first, then sort only the distinct values)."""
    codes, uniques = pd.factorize(values)
    uniques = np.asarray(uniques, dtype=object)
    order = np.argsort(uniques)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], uniques[order]


def _encode(games: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Text keys as sorted integer codes and dates as day numbers: every sort, join and group
    below runs on integers, which is most of the builder's speed."""
    labels = {}
    for col in ("game_id", "season", "player_name"):
        games[col], labels[col] = _sorted_codes(games[col])
    both, teams = _sorted_codes(pd.concat([games["team"], games["opponent"]], ignore_index=True))
    games["team"], games["opponent"] = both[:len(games)], both[len(games):]
    labels["team"] = labels["opponent"] = teams
    games["game_date"] = _day_numbers(games["game_date"])
    return games, labels


def _decode(frame: pd.DataFrame, labels: dict[str, np.ndarray]) -> pd.DataFrame:
    frame = frame.copy()
    for col, values in labels.items():
        frame[col] = pd.Index(values).take(frame[col].to_numpy())
    days, inverse = np.unique(frame["game_date"].to_numpy(), return_inverse=True)
    frame["game_date"] = days.astype("datetime64[D]").astype(object)[inverse]
    return frame


def _form_features(f: pd.DataFrame, name: str, player: np.ndarray, season: np.ndarray) -> dict[str, np.ndarray]:
    """The market's form features (``features.definitions.LAYOUT``) from its outcome column ``name``."""
    values = f[name].to_numpy(float)
    total, count = _prior(values, player, 10)
    squares, _ = _prior(values ** 2, player, 10)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (squares - total**2 / np.maximum(count, 1)) / np.maximum(count - 1, 1)
    return {
        f"{name}_avg_last_5": _prior_mean(f, name, player, 5),
        f"{name}_avg_last_10": _prior_mean(f, name, player, 10),
        f"{name}_avg_season": _prior_mean(f, name, season, None),
        f"{name}_std_last_10": np.where(count >= 2, np.sqrt(np.maximum(var, 0.0)), np.nan),
        f"{name}_last_game": _prior_mean(f, name, player, 1),
        f"{name}_ewm_10": _prior_ewm(values, player, span=10),
        f"{name}_per_minute_last_10": _prior_ratio(f, name, "minutes", player, 10),
    }


def _with_lines(f: pd.DataFrame, lines: pd.DataFrame | None) -> pd.DataFrame:
    """Each market's median line over books (posted before tip-off) and its gap to the recent form."""
    if lines is not None and len(lines):
        median = (lines.groupby(["game_date", "player_id", "market"])["line"].median().unstack("market")
                  .reindex(columns=list(MARKETS)).rename(columns=lambda m: MARKETS[m].line_feature))
        median = median.reset_index().assign(game_date=lambda d: _day_numbers(d["game_date"]),
                                             player_id=lambda d: d["player_id"].astype(np.int64))
        median.columns.name = None
        f = f.merge(median, on=["game_date", "player_id"], how="left")
    missing = {m.line_feature: np.nan for m in MARKETS.values() if m.line_feature not in f}
    f = f.assign(**missing) if missing else f
    gaps = {f"line_minus_{m.name}_avg_last_10": f[m.line_feature] - f[f"{m.name}_avg_last_10"]
            for m in MARKETS.values()}
    return pd.concat([f, pd.DataFrame(gaps, index=f.index)], axis=1)


def build_features(box_scores: pd.DataFrame, lines: pd.DataFrame | None = None,
                   slate: pd.DataFrame | None = None, since: dt.date | None = None) -> pd.DataFrame:
    """Rows of ``ml_feature_store_v2`` for every player-game in ``box_scores`` and ``slate``.

    ``slate`` holds games not yet played (the ``box_scores`` key columns, no stats, optionally
    ``expected``); their rows get the same features and a null target. ``since`` returns only the
    rows of game dates on or after it: they are still computed from the whole history (the same
    values a full build gives), but past the team and league context only the players with a row
    kept are computed, and the rows of earlier dates, which a daily refresh or a slate throws away,
    are never assembled, joined to lines or decoded.
    """
    games = box_scores.copy()
    if slate is not None and len(slate):
        games = pd.concat([games, slate.assign(**dict.fromkeys(_STATS, np.nan))], ignore_index=True)
    for col in _STATS:
        games[col] = games[col].astype(float)
    games, labels = _encode(games)
    games = games.sort_values(["player_id", "game_date", "game_id"], ignore_index=True)  # left joins keep it
    games["plays"] = games["fga"] + 0.44 * games["fta"] + games["tov"]
    games["usage_share"] = games["plays"] / games.groupby(["game_id", "team"])["plays"].transform("sum")

    team = team_games(games)
    league = league_reference(team)
    # a slate may list players it predicts without expecting them to play (``expected`` False: not in
    # the team's last game); the lineup features count only those expected, as a box score would
    lineups = lineup_absences(games[games["expected"].fillna(True).astype(bool)] if "expected" in games else games)
    if since is not None:
        # the team, league and lineup context above needs every player's rows; from here on a row sees
        # only its own player's earlier rows, so the players without a row kept are left out
        kept = games.loc[games["game_date"] >= _day_numbers(pd.Series([since]))[0], "player_id"].unique()
        games = games[games["player_id"].isin(kept)].reset_index(drop=True)
    own = [f.name for f in _market_features("team_mean")]
    games = games.merge(team[["game_id", "team", "team_pace_last_10", "team_offensive_rating_last_10", *own,
                              *(f"team_{stat}" for stat in _TEAM_STATS)]],
                        on=["game_id", "team"], how="left")
    theirs = [f.name for f in _market_features("opponent_mean")]
    opp = team[["game_id", "team", "team_pace_last_10", "defensive_rating_last_10",
                "allowed_fg3a_share_last_10", "allowed_ft_rate_last_10", *theirs]].rename(columns={
        "team": "opponent", "team_pace_last_10": "opponent_pace_last_10",
        "defensive_rating_last_10": "opponent_team_defensive_rating"})
    games = games.merge(opp, on=["game_id", "opponent"], how="left")
    games = games.merge(league, on="game_date", how="left")
    games = games.merge(lineups, on=["team", "game_id"], how="left")

    f = games
    player = _group_starts(f[["player_id"]])
    season = _group_starts(f[["player_id", "season"]])
    f = pd.concat([f.drop(columns=[m for m in MARKETS if m in f]), outcomes(f)], axis=1)  # points: the same
    # the markets' features are many columns: built apart and joined at once (one insert each fragments)
    per_market = {k: v for m in MARKETS.values() for k, v in _form_features(f, m.name, player, season).items()}
    f["minutes_avg_last_5"] = _prior_mean(f, "minutes", player, 5)
    f["minutes_avg_last_10"] = _prior_mean(f, "minutes", player, 10)
    f["fga_avg_last_10"] = _prior_mean(f, "fga", player, 10)
    f["fg3a_avg_last_10"] = _prior_mean(f, "fg3a", player, 10)
    f["fta_avg_last_10"] = _prior_mean(f, "fta", player, 10)
    f["shooting_attempts"] = 2 * (f["fga"] + 0.44 * f["fta"])
    f["true_shooting_pct_last_10"] = _prior_ratio(f, "points", "shooting_attempts", player, 10)
    f["usage_rate_last_10"] = _prior_mean(f, "usage_share", player, 10)
    f["plus_minus_avg_last_10"] = _prior_mean(f, "plus_minus", player, 10)
    f["games_played_season"] = _prior(f["points"].to_numpy(float), season, None)[1]

    day = f["game_date"].to_numpy(np.int64)
    previous_day = np.where(np.arange(len(f)) > player, np.roll(day, 1), -1)
    rest = np.where(previous_day >= 0, day - previous_day, np.nan)
    f["days_rest"] = np.minimum(rest, 10)
    f["is_back_to_back"] = (rest == 1).astype(float)
    # games in the 7 days before D: rows of the same player whose day lies in [D-7, D-1]
    code = f["player_id"].to_numpy(np.int64) * 1_000_000 + day
    first_in_week = np.searchsorted(code, code - 7, side="left")
    i = np.arange(len(f))
    f["games_last_7_days"] = (i - first_in_week).astype(float)
    f["minutes_last_7_days"] = _prior(f["minutes"].to_numpy(float), player, None, first_in_week)[0]
    f["fatigue_score"] = (40 * f["is_back_to_back"] + 30 * np.minimum(f["games_last_7_days"], 4) / 4
                          + 30 * np.minimum(f["minutes_last_7_days"], 160) / 160)
    f["is_home"] = f["is_home"].astype(float)

    f["pace_score"] = (f["team_pace_last_10"] + f["opponent_pace_last_10"]) / 2 - f["league_pace"]
    fg3a_share = _prior_ratio(f, "fg3a", "fga", player, 10)
    ft_rate = _prior_ratio(f, "fta", "fga", player, 10)
    f["shot_zone_mismatch_score"] = 100 * (
        fg3a_share * (f["allowed_fg3a_share_last_10"] - f["league_fg3a_share"])
        + ft_rate * (f["allowed_ft_rate_last_10"] - f["league_ft_rate"]))

    order = np.lexsort((f["game_id"], f["game_date"], f["opponent"], f["player_id"]))
    meetings = f[["player_id", "opponent", *MARKETS]].iloc[order]
    meeting_starts = _group_starts(meetings[["player_id", "opponent"]])
    for m in MARKETS.values():
        vs_opponent = np.empty(len(f))
        vs_opponent[order] = _prior_mean(meetings, m.name, meeting_starts, 5)
        per_market[f"{m.name}_avg_vs_opponent"] = vs_opponent
    for feature in _market_features("player_mean"):
        _, column, window = feature.compute
        per_market[feature.name] = _prior_mean(f, column, player, window)
    for feature in _market_features("player_ratio"):
        _, num, den, window = feature.compute
        per_market[feature.name] = _prior_ratio(f, num, den, player, window)

    if since is not None:
        keep = day >= _day_numbers(pd.Series([since]))[0]
        f, per_market = f[keep], {name: values[keep] for name, values in per_market.items()}
    f = _with_lines(pd.concat([f, pd.DataFrame(per_market, index=f.index)], axis=1), lines)
    f = f.assign(feature_version=FEATURE_VERSION,
                 missing_inputs=f[list(FEATURE_NAMES)].isna().sum(axis=1).astype(np.int64))
    out = _decode(f[FEATURE_STORE_SCHEMA.column_names], labels)
    out = out.sort_values(["game_date", "game_id", "player_id"], ignore_index=True)
    out["player_id"] = out["player_id"].astype("Int64")
    return out
