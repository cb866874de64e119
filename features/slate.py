"""Feature rows for games not yet played: the slate a coordinator predicts each evening.

A slate names the games (date, team, opponent, home or away) and optionally who plays for each
team; by default a team's players are those who appeared in its last game (``ROSTER_GAMES``) and
have not appeared for another team since: a player out injured then stays out, as he would in a box
score, so lineup features mean the same at serving time as in training. A game listed from one
side only gets its other side added, since opponent features need both teams' rows.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from contracts import BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA
from features.build import build_features
from warehouse import Warehouse
from warehouse.ingest import InputError

ROSTER_GAMES = 1
SLATE_COLUMNS = ("game_date", "team", "opponent", "is_home")


def recent_roster(history: pd.DataFrame, team: str, before: dt.date) -> pd.DataFrame:
    """Players of ``team``'s last ``ROSTER_GAMES`` games before ``before`` still with the team."""
    past = history[history["game_date"] < before]
    games = past[past["team"] == team].drop_duplicates("game_id").sort_values("game_date").tail(ROSTER_GAMES)
    players = past[past["game_id"].isin(games["game_id"]) & (past["team"] == team)]
    latest_team = past.sort_values("game_date").groupby("player_id")["team"].last()
    still_here = latest_team[latest_team == team].index
    return players[players["player_id"].isin(still_here)].drop_duplicates("player_id")[
        ["player_id", "player_name"]]


def season_of(day: dt.date) -> str:
    """The NBA season a date belongs to (seasons start in October): 2025-11-01 -> 2025-26."""
    first = day.year if day.month >= 8 else day.year - 1
    return f"{first}-{(first + 1) % 100:02d}"


def _both_sides(slate: pd.DataFrame) -> pd.DataFrame:
    """Add the mirror row (opponent's view) of every game listed from one side only."""
    slate = slate.assign(game_date=pd.to_datetime(slate["game_date"]).dt.date, is_home=slate["is_home"].astype(bool))
    listed = set(zip(slate["game_date"], slate["team"], strict=True))
    mirrors = slate[[(d, o) not in listed for d, o in zip(slate["game_date"], slate["opponent"], strict=True)]]
    mirrors = mirrors.assign(team=mirrors["opponent"], opponent=mirrors["team"], is_home=~mirrors["is_home"])
    if "players" in mirrors:
        mirrors = mirrors.assign(players=None)
    return pd.concat([slate, mirrors], ignore_index=True)


def slate_rows(history: pd.DataFrame, slate: pd.DataFrame) -> pd.DataFrame:
    """One box-score-shaped row (no stats) per player of each slate game."""
    missing = [c for c in SLATE_COLUMNS if c not in slate.columns]
    if missing:
        raise InputError(f"slate lacks column(s) {', '.join(missing)}")
    slate = _both_sides(slate)
    known = set(history["team"])
    rows = []
    for game in slate.itertuples(index=False):
        date = pd.Timestamp(game.game_date).date()
        for col in ("team", "opponent"):
            if getattr(game, col) not in known:
                raise InputError(f"slate {col} is {getattr(game, col)!r}, not a team in the box scores")
        home, away = (game.team, game.opponent) if game.is_home else (game.opponent, game.team)
        game_id = getattr(game, "game_id", None) or f"{date:%Y%m%d}{away}{home}"
        players = getattr(game, "players", None)
        if players is None or (not isinstance(players, list) and pd.isna(players)):
            roster = recent_roster(history, game.team, date)
        else:
            names = history.drop_duplicates("player_id", keep="last").set_index("player_id")["player_name"]
            unknown = [p for p in players if p not in names.index]
            if unknown:
                raise InputError(f"slate players of {game.team} include unknown player_id {unknown[0]}")
            roster = pd.DataFrame({"player_id": players, "player_name": names.loc[players].to_numpy()})
        season = season_of(date)
        rows.append(roster.assign(game_id=game_id, game_date=date, season=season, team=game.team,
                                  opponent=game.opponent, is_home=bool(game.is_home), win=pd.NA))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=BOX_SCORES_SCHEMA.column_names)


def build_slate(warehouse: Warehouse, slate: pd.DataFrame) -> pd.DataFrame:
    """Feature rows (target null) for the slate, computed from everything stored before it."""
    history = warehouse.read(BOX_SCORES_SCHEMA)
    first = pd.to_datetime(slate["game_date"]).dt.date.min()
    history = history[history["game_date"] < first]
    rows = slate_rows(history, slate)
    features = build_features(history, warehouse.read(PROP_LINES_SCHEMA), rows)
    return features[features["game_id"].isin(set(rows["game_id"]))].reset_index(drop=True)
