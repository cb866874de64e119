"""Box-score and points-line files → rows of ``box_scores`` and ``prop_lines``.

Each input file is checked against a declared schema before anything is written: a bad file stops
the load with a message naming the file, the row, the column and the value.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from contracts import BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA
from warehouse.names import TEAM_TRICODES, normalize_player_name


class InputError(ValueError):
    """A file that does not match its declared schema."""


# --- declared input schemas ---------------------------------------------------------------------
BOX_SCORE_INTEGERS = ("PLAYER_ID", "MIN", "PTS", "FGM", "FGA", "FG3M", "FG3A", "FTM", "FTA", "OREB",
                      "DREB", "REB", "AST", "STL", "BLK", "TOV", "PF")
BOX_SCORE_COLUMNS = ("PLAYER_ID", "PLAYER_NAME", "TEAM_ABBREVIATION", "GAME_ID", "GAME_DATE", "MATCHUP",
                     "WL", "MIN", "PTS", "FGM", "FGA", "FG3M", "FG3A", "FTM", "FTA", "OREB", "DREB",
                     "REB", "AST", "STL", "BLK", "TOV", "PF", "PLUS_MINUS", "SEASON_LABEL")
LINE_COLUMNS = ("player", "market", "bookmaker", "side", "line", "price", "home_team", "away_team",
                "commence_time")

_MATCHUP = re.compile(r"^([A-Z]{2,3}) (vs\.|@) ([A-Z]{2,3})$")
_SEASON = re.compile(r"^\d{4}-\d{2}$")
_BOX_RENAMES = {"PLAYER_ID": "player_id", "PLAYER_NAME": "player_name", "GAME_ID": "game_id",
                "TEAM_ABBREVIATION": "team", "SEASON_LABEL": "season", "MIN": "minutes", "PTS": "points",
                "PLUS_MINUS": "plus_minus"}


_SNAPSHOT_DATE = re.compile(r"(\d{2})_(\d{2})_(\d{4})")


def _snapshot_order(path: Path) -> tuple[str, str]:
    """Line files are daily snapshots named MM_DD_YYYY: order them by that date (the name sorts
    January before October), and by name where a file carries no date."""
    found = _SNAPSHOT_DATE.search(path.name)
    return (f"{found[3]}-{found[1]}-{found[2]}" if found else "", path.name)


def expand_sources(source: str | Path) -> list[Path]:
    """A file, a folder (its *.csv and *.csv.gz) or a glob, sorted; an error when nothing matches."""
    path = Path(source)
    if path.is_dir():
        files = sorted([*path.glob("*.csv"), *path.glob("*.csv.gz")])
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(str(source)))
    if not files:
        raise InputError(f"{source}: no CSV or CSV.gz file found")
    return files


def _fail(path: Path, frame: pd.DataFrame, mask: pd.Series, column: str, expected: str) -> None:
    if mask.any():
        idx = int(np.flatnonzero(mask.to_numpy())[0])
        value = frame[column].iloc[idx]
        raise InputError(f"{path} row {idx + 2}: {column} is {value!r}, expected {expected} "
                         f"({int(mask.sum())} bad row(s) in this column)")


def _require(path: Path, frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")


def _integers(path: Path, frame: pd.DataFrame, column: str, required: bool = True) -> pd.Series:
    raw = frame[column]
    numbers = pd.to_numeric(raw, errors="coerce")
    bad = numbers.isna() & (raw.notna() | required) | (numbers.notna() & (numbers % 1 != 0))
    _fail(path, frame, bad, column, "an integer")
    return numbers.astype("Int64")


def read_box_scores(source: str | Path) -> pd.DataFrame:
    """Validated box scores from every file in ``source``, in the ``box_scores`` table's columns."""
    parts = []
    for path in expand_sources(source):
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        _require(path, raw, BOX_SCORE_COLUMNS)
        out = pd.DataFrame(index=raw.index)
        for col in BOX_SCORE_INTEGERS:
            out[_BOX_RENAMES.get(col, col.lower())] = _integers(path, raw, col)
        out["plus_minus"] = _integers(path, raw, "PLUS_MINUS", required=False)
        dates = pd.to_datetime(raw["GAME_DATE"], format="%Y-%m-%d", errors="coerce")
        _fail(path, raw, dates.isna(), "GAME_DATE", "a date YYYY-MM-DD")
        matchup = raw["MATCHUP"].str.extract(_MATCHUP)
        _fail(path, raw, matchup[0].isna(), "MATCHUP", "'TEAM vs. OPP' or 'TEAM @ OPP'")
        # a few rows print the matchup from the other side ("MIA @ WAS" on a WAS player's row)
        flipped = matchup[2] == raw["TEAM_ABBREVIATION"]
        _fail(path, raw, (matchup[0] != raw["TEAM_ABBREVIATION"]) & ~flipped, "TEAM_ABBREVIATION",
              "one of the teams in MATCHUP")
        _fail(path, raw, ~raw["SEASON_LABEL"].fillna("").str.match(_SEASON), "SEASON_LABEL",
              "a season such as 2024-25")
        _fail(path, raw, raw["GAME_ID"].isna(), "GAME_ID", "a game id")
        _fail(path, raw, raw["PLAYER_NAME"].isna(), "PLAYER_NAME", "a name")
        out["player_name"] = raw["PLAYER_NAME"]
        out["game_id"] = raw["GAME_ID"].str.zfill(10)
        out["game_date"] = dates.dt.date
        out["season"] = raw["SEASON_LABEL"]
        out["team"] = raw["TEAM_ABBREVIATION"]
        out["opponent"] = matchup[2].where(~flipped, matchup[0])
        out["is_home"] = (matchup[1] == "vs.") ^ flipped  # "MIA @ WAS" on a WAS row: WAS at home
        out["win"] = raw["WL"].map({"W": True, "L": False}).astype("boolean")
        out["_file"] = str(path)
        out["_row"] = raw.index + 2
        parts.append(out)
    frame = pd.concat(parts, ignore_index=True)
    dup = frame.duplicated(["player_id", "game_id"], keep=False)
    if dup.any():
        first = frame[dup].iloc[:2]
        where = " and ".join(f"{file} row {row}" for file, row in zip(first["_file"], first["_row"], strict=True))
        raise InputError(f"duplicate player-game: player_id {first.player_id.iloc[0]} game_id "
                         f"{first.game_id.iloc[0]} appears in {where} ({int(dup.sum())} rows in all)")
    return frame[BOX_SCORES_SCHEMA.column_names].sort_values(
        ["game_date", "game_id", "player_id"], ignore_index=True)


@dataclass
class LinesResult:
    lines: pd.DataFrame
    unmatched: list[str]  # "name (date)" of lines whose player could not be found in the box scores


def read_lines(source: str | Path, box_scores: pd.DataFrame) -> LinesResult:
    """Points lines matched to ``player_id`` through the players each team fielded that season."""
    parts = []
    for posted, path in enumerate(sorted(expand_sources(source), key=_snapshot_order)):
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        _require(path, raw, LINE_COLUMNS)
        raw = raw[raw["market"] == "player_points"].reset_index(drop=True)
        line = pd.to_numeric(raw["line"], errors="coerce")
        _fail(path, raw, line.isna() | (line < 0), "line", "a non-negative number")
        price = pd.to_numeric(raw["price"], errors="coerce")
        _fail(path, raw, price.isna(), "price", "an American price such as -137")
        start = pd.to_datetime(raw["commence_time"], utc=True, errors="coerce")
        _fail(path, raw, start.isna(), "commence_time", "a UTC timestamp")
        for col in ("home_team", "away_team"):
            _fail(path, raw, ~raw[col].isin(TEAM_TRICODES), col, "an NBA team name")
        _fail(path, raw, ~raw["side"].isin(["Over", "Under"]), "side", "Over or Under")
        parts.append(pd.DataFrame({
            "player_name": raw["player"], "bookmaker": raw["bookmaker"], "side": raw["side"],
            "line": line, "price": price.astype("Int64"), "commence_time": start, "posted": posted,
            # an evening US game starts after midnight UTC: the US (Eastern) calendar day is the date
            "game_date": start.dt.tz_convert("America/New_York").dt.date,
            "home": raw["home_team"].map(TEAM_TRICODES), "away": raw["away_team"].map(TEAM_TRICODES),
        }))
    raw = pd.concat(parts, ignore_index=True)
    keys = ["game_date", "player_name", "bookmaker", "home", "away", "line", "commence_time", "posted"]
    wide = raw.pivot_table(index=keys, columns="side", values="price", aggfunc="first").reset_index()
    wide = wide.rename(columns={"Over": "over_price", "Under": "under_price"})
    for col in ("over_price", "under_price"):
        wide[col] = wide[col].astype("Int64") if col in wide else pd.array([pd.NA] * len(wide), "Int64")

    # A line is often posted for a player who then sits out, so match against everyone who played
    # for either team that season, not only the box scores of that date.
    starts = box_scores.groupby("season")["game_date"].min().sort_values()
    wide["season"] = pd.cut(pd.to_datetime(wide["game_date"]),
                            bins=[*pd.to_datetime(starts.to_numpy()), pd.Timestamp.max],
                            labels=starts.index, right=False).astype(object)
    roster = box_scores[["season", "player_id", "player_name", "team"]].drop_duplicates(
        ["season", "player_id", "team"])
    roster["norm"] = roster["player_name"].map(normalize_player_name)
    wide["norm"] = wide["player_name"].map(normalize_player_name)
    matched = wide.merge(roster.drop(columns="player_name"), on=["season", "norm"], how="left")
    on_either = matched["team"].eq(matched["home"]) | matched["team"].eq(matched["away"])
    matched = matched[on_either | matched["player_id"].isna()]
    matched["opponent"] = matched["away"].where(matched["team"] == matched["home"], matched["home"])
    unmatched_rows = wide[~wide.set_index(keys).index.isin(matched.dropna(subset=["player_id"])
                                                         .set_index(keys).index)]
    unmatched = sorted({f"{r.player_name} ({r.game_date})" for r in unmatched_rows.itertuples()})
    matched = matched.dropna(subset=["player_id"])
    # one line per player, date and book: the latest snapshot wins when a book moved it
    matched = matched.sort_values(["posted", "commence_time"], kind="stable").drop_duplicates(
        ["game_date", "player_id", "bookmaker"], keep="last")
    matched["player_id"] = matched["player_id"].astype("Int64")
    lines = matched[PROP_LINES_SCHEMA.column_names].sort_values(
        ["game_date", "player_id", "bookmaker"], ignore_index=True)
    return LinesResult(lines, unmatched)
