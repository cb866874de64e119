"""Feature rows for games not yet played: the slate a coordinator predicts each evening.

A slate names the games (date, team, opponent, home or away) and optionally who plays for each
team; by default a team's players are those who appeared in its last game (``ROSTER_GAMES``) and
have not appeared for another team since: a player out injured then stays out, as he would in a box
score, so lineup features mean the same at serving time as in training. The daily job's slates,
built from the schedule, take the players of the team's last ``SCHEDULE_ROSTER_GAMES`` games less
those an injury report rules out: the last game alone misses 14% of the player-games later played
(measured over 2024-10-22 .. 2025-01-13), five games miss 4% at the cost of more void predictions.
The lineup features still take as playing only the last game's players (or, with a report, everyone
it does not rule out), so a player back from injury is predicted without his teammates' features
assuming he plays.
A game listed from one side only gets its other side added, since opponent features need both
teams' rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from contracts import BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA
from features.build import build_features
from warehouse import Warehouse
from warehouse.ingest import InputError

ROSTER_GAMES = 1
SCHEDULE_ROSTER_GAMES = 5
SLATE_COLUMNS = ("game_date", "team", "opponent", "is_home")


def read_slate_csv(path: str | Path) -> pd.DataFrame:
    """A slate CSV (``game_date,team,opponent,is_home[,players]``, players as ``id;id;...``, empty for
    the team's recent roster) as a slate frame; a file that cannot be read names itself and the cause."""
    try:
        slate = pd.read_csv(path, dtype={"players": str})
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"slate {str(path)!r} cannot be read: {exc}") from None
    if "players" in slate:
        slate["players"] = [_player_ids(path, row, value) for row, value in enumerate(slate["players"], start=2)]
    return slate


def _player_ids(path: str | Path, row: int, value: object) -> list[int] | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return [int(p) for p in value.split(";")]
    except ValueError:
        raise InputError(f"slate {str(path)!r} row {row}: players is {value[:60]!r}, expected player ids "
                         "separated by ';'") from None


def slate_frame(game_date: dt.date, games: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """Games of one date, each a mapping of ``team, opponent, is_home[, players]``, as a slate frame."""
    return pd.DataFrame([{**game, "game_date": game_date} for game in games])


def recent_rosters(history: pd.DataFrame, before: dt.date, games: int = ROSTER_GAMES) -> dict[str, pd.DataFrame]:
    """Per team, the players (``player_id``, ``player_name``) of its last ``games`` games before
    ``before`` who are still with the team, in history order. Every team at once: a slate of fifteen
    games filters and sorts the history once, not thirty times."""
    past = history[history["game_date"] < before]
    team_games = past[["team", "game_id", "game_date"]].drop_duplicates(["team", "game_id"])
    last = team_games.sort_values("game_date", kind="stable").groupby("team").tail(games)
    keys = ["team", "game_id"]
    players = past[pd.MultiIndex.from_frame(past[keys]).isin(pd.MultiIndex.from_frame(last[keys]))]
    latest_team = past.loc[past.groupby("player_id")["game_date"].idxmax(), ["player_id", "team"]]
    latest_team = latest_team.set_index("player_id")
    still_here = players["team"].to_numpy() == latest_team["team"].reindex(players["player_id"]).to_numpy()
    players = players[still_here].drop_duplicates(["team", "player_id"])
    return {str(team): group[["player_id", "player_name"]] for team, group in players.groupby("team", sort=False)}


def slate_from_schedule(schedule: pd.DataFrame) -> pd.DataFrame:
    """Scheduled games (``SCHEDULE_SCHEMA`` rows) as a slate: both sides of each, with the real game id,
    so a played row replaces its slate row by key when the box score arrives."""
    home = pd.DataFrame({"game_date": schedule["game_date"], "game_id": schedule["game_id"],
                         "team": schedule["home_team"], "opponent": schedule["away_team"], "is_home": True})
    away = home.assign(team=home["opponent"], opponent=home["team"], is_home=False)
    return pd.concat([home, away], ignore_index=True)


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


def slate_rows(history: pd.DataFrame, slate: pd.DataFrame, players_out: pd.DataFrame | None = None,
               roster_games: int = ROSTER_GAMES) -> pd.DataFrame:
    """One box-score-shaped row (no stats) per player of each slate game; a game without its players
    listed gets the team's last ``roster_games`` games' players less those in ``players_out`` (an
    injury report, ``PLAYERS_OUT_SCHEMA`` rows)."""
    missing = [c for c in SLATE_COLUMNS if c not in slate.columns]
    if missing:
        raise InputError(f"slate lacks column(s) {', '.join(missing)}")
    slate = _both_sides(slate)
    known = set(history["team"])
    ruled_out = {} if players_out is None else {
        pd.Timestamp(day).date(): frozenset(int(p) for p in group["player_id"])
        for day, group in players_out.groupby("game_date")}
    rosters: dict[tuple[dt.date, int], dict[str, pd.DataFrame]] = {}

    def roster_of(team: str, date: dt.date, games: int) -> pd.DataFrame:
        if (date, games) not in rosters:
            rosters[date, games] = recent_rosters(history, date, games)
        return rosters[date, games].get(team, history.iloc[:0][["player_id", "player_name"]])

    names = history.drop_duplicates("player_id", keep="last").set_index("player_id")["player_name"] \
        if "players" in slate else None
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
            roster = roster_of(game.team, date, roster_games)
            roster = roster[~roster["player_id"].isin(ruled_out.get(date, frozenset()))]
            # all of them are predicted; the lineup features take as playing only those of the last
            # game (with an injury report, everyone it does not rule out)
            playing = roster if players_out is not None else roster_of(game.team, date, ROSTER_GAMES)
            roster = roster.assign(expected=roster["player_id"].isin(playing["player_id"]))
        else:
            unknown = [p for p in players if p not in names.index]
            if unknown:
                raise InputError(f"slate players of {game.team} include unknown player_id {unknown[0]}")
            roster = pd.DataFrame({"player_id": players, "player_name": names.loc[players].to_numpy()})
        season = season_of(date)
        rows.append(roster.assign(game_id=game_id, game_date=date, season=season, team=game.team,
                                  opponent=game.opponent, is_home=bool(game.is_home), win=pd.NA))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=BOX_SCORES_SCHEMA.column_names)


def build_slate(warehouse: Warehouse, slate: pd.DataFrame, players_out: pd.DataFrame | None = None,
                roster_games: int = ROSTER_GAMES) -> pd.DataFrame:
    """Feature rows (target null) for the slate, computed from everything stored before it."""
    history = warehouse.read(BOX_SCORES_SCHEMA)
    first = pd.to_datetime(slate["game_date"]).dt.date.min()
    history = history[history["game_date"] < first]
    rows = slate_rows(history, slate, players_out, roster_games)
    features = build_features(history, warehouse.read(PROP_LINES_SCHEMA), rows, since=first)
    return features[features["game_id"].isin(set(rows["game_id"]))].reset_index(drop=True)
