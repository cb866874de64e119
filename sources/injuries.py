"""Who is ruled out of a date's games: an optional injury report, one CSV file per date.

The slate uses it instead of guessing availability from each team's last box score. A file is named
``YYYY-MM-DD.csv`` and has a ``player_id`` or a ``player_name`` column (either per row; the id wins
where both are given), optionally ``team`` (tricode) and ``reason``. Names are matched like lines'
names, among the players of that season's box scores (of ``team`` when given). No file for a date
means nobody was reported out.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from contracts import PLAYERS_OUT_SCHEMA
from features.slate import season_of
from sources.base import OutListSource, SourceError
from warehouse.base import _empty, _typed
from warehouse.ingest import _fail, _integers
from warehouse.names import TEAM_TRICODES, normalize_player_name

TEAMS = frozenset(TEAM_TRICODES.values())


class OutListFolder(OutListSource):
    name = "out_list"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def players_out(self, game_date: dt.date, history: pd.DataFrame | None = None) -> pd.DataFrame:
        path = self.folder / f"{game_date:%Y-%m-%d}.csv"
        if not path.is_file():
            return _empty(PLAYERS_OUT_SCHEMA)
        try:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise SourceError(f"{path}: not a readable CSV file ({type(exc).__name__})") from None
        if "player_id" not in raw and "player_name" not in raw:
            raise SourceError(f"{path}: missing column player_id or player_name")
        for column in ("player_id", "player_name", "team", "reason"):
            if column not in raw:
                raw[column] = None
        _fail(path, raw, raw["team"].notna() & ~raw["team"].isin(TEAMS), "team", "an NBA team tricode such as BOS")
        _fail(path, raw, raw["player_id"].isna() & raw["player_name"].isna(), "player_id",
              "a player id, or a player_name")
        ids = _integers(path, raw, "player_id", required=False)
        by_name = ids.isna()
        if by_name.any() and history is None:
            row = int(by_name.idxmax())
            raise SourceError(f"{path} row {row + 2}: player_name is {raw['player_name'][row]!r}, expected a "
                              "player_id (names are matched only when given the box scores known so far)")
        if by_name.any():
            ids[by_name] = _match_names(path, raw[by_name], history, season_of(game_date))
        out = pd.DataFrame({"game_date": game_date, "player_id": ids, "team": raw["team"], "reason": raw["reason"]})
        return _typed(PLAYERS_OUT_SCHEMA, out.drop_duplicates("player_id", ignore_index=True))


def _match_names(path: Path, rows: pd.DataFrame, history: pd.DataFrame, season: str) -> list[int]:
    """Player ids of the printed names; a name that matches nobody, or several, is an error naming the row."""
    season_rows = history[history["season"] == season]
    players = season_rows.sort_values("game_date").drop_duplicates("player_id", keep="last")
    players = players.assign(norm=players["player_name"].map(normalize_player_name))
    ids = []
    for row, name, team in zip(rows.index, rows["player_name"], rows["team"], strict=True):
        found = players[(players["norm"] == normalize_player_name(name))
                        & (players["team"].eq(team) if isinstance(team, str) else True)]
        if len(found) != 1:
            expected = (f"one player of the {season} box scores{f' on {team}' if isinstance(team, str) else ''}"
                        f" (it matches {len(found)})")
            raise SourceError(f"{path} row {row + 2}: player_name is {name!r}, expected {expected}")
        ids.append(int(found["player_id"].iloc[0]))
    return ids
