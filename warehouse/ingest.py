"""Box-score and points-line files → rows of ``box_scores`` and ``prop_lines``.

Each input file is checked against a declared schema before anything is written: a bad file stops
the load with a message naming the file, the row, the column and the value. A file that cannot be
read as CSV text at all (not UTF-8, empty, a header and no rows, a row with more or fewer cells than
the header) is refused the same way, naming the file and the line, before any of its rows is used.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from contracts import BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA
from markets import by_line_key
from warehouse.names import TEAM_TRICODES, normalize_player_name


class InputError(ValueError):
    """A file that does not match its declared schema."""


class InputTooLarge(InputError):
    """Files that together hold more than one request may read, a gzip file counted by what it
    inflates to: answered 413, since no change to the files' contents makes them acceptable."""


INFLATE_CHUNK = 2**20  # a gzip file is counted this much at a time: the most of it held in memory


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


def expand_sources(source: str | Path | list[Path]) -> list[Path]:
    """A file, a folder (its *.csv and *.csv.gz), a glob or a list of files, sorted; an error when
    nothing matches."""
    path = Path(source) if not isinstance(source, list) else None
    if path is None:
        files = sorted(Path(p) for p in source)
    elif path.is_dir():
        files = sorted([*path.glob("*.csv"), *path.glob("*.csv.gz")])
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(str(source)))
    if not files:
        raise InputError(f"{source}: no CSV or CSV.gz file found")
    return files


def confined_sources(field: str, source: str, root: Path, max_bytes: int) -> list[Path]:
    """The files ``source`` names (a file, a folder or a glob, relative to ``root`` or absolute
    inside it), for inputs named over HTTP: each must resolve (links followed) to a regular file
    under ``root``, all of them together at most ``max_bytes``. Every path outside ``root`` gets the
    same error whether it exists or not, and nothing is opened here: a FIFO or a device is refused
    by its ``stat``, before a read could block on it or never end."""
    outside = InputError(f"{field}: {source[:120]!r} is not a file under the data root")
    pattern = os.path.normpath(os.path.join(root, source))
    if not Path(pattern).is_relative_to(root):
        raise outside
    files: dict[Path, int] = {}
    for candidate in sorted(glob.glob(pattern)) if any(c in source for c in "*?[") else [pattern]:
        real = Path(os.path.realpath(candidate))
        if not real.is_relative_to(root):
            raise outside
        if real.is_dir():
            entries = [Path(os.path.realpath(e)) for e in sorted([*real.glob("*.csv"), *real.glob("*.csv.gz")])]
        elif real.exists():
            entries = [real]
        else:
            continue
        for entry in entries:
            if not entry.is_relative_to(root):
                raise outside
            info = entry.stat()
            if not stat.S_ISREG(info.st_mode):
                raise InputError(f"{field}: {entry.relative_to(root)} under the data root is not a regular file")
            files[entry] = info.st_size
    if not files:
        raise InputError(f"{field}: no CSV or CSV.gz file found at {source[:120]!r} under the data root")
    total = sum(size for entry, size in files.items() if not entry.name.endswith(".gz"))
    for entry in sorted(e for e in files if e.name.endswith(".gz")):
        if total > max_bytes:
            break
        total += inflated_size(entry, max_bytes - total)
    if total > max_bytes:
        raise InputTooLarge(f"{field}: {len(files)} file(s) hold over {max_bytes / 2**20:.0f} MiB (a gzip file "
                            "counted decompressed), the limit of one request")
    return sorted(files)


def inflated_size(path: Path, limit: int) -> int:
    """The bytes a gzip file inflates to, counted ``INFLATE_CHUNK`` at a time and no further than
    just past ``limit``: its compressed size says nothing (a 1 MiB file may inflate to gigabytes), and
    counting never holds more than a chunk. A file that is not gzip counts what it gave before failing;
    its read names the problem."""
    count = 0
    try:
        with gzip.open(path, "rb") as stream:
            while count <= limit and (chunk := stream.read(min(INFLATE_CHUNK, limit + 1 - count))):
                count += len(chunk)
    except (OSError, EOFError):
        pass
    return count


def read_csv_cells(path: Path) -> pd.DataFrame:
    """A CSV or CSV.gz file's cells as text (an empty cell is null), the header giving the columns.
    pandas alone would raise a parser's traceback for bytes that are not UTF-8 or too many cells, and
    silently pad a row with too few: here each of those is one sentence naming the line."""
    try:
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise InputError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as spreadsheets write, is not a cell
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{path} line {line}: byte {data[exc.start]:#04x} is not UTF-8 text; save the file "
                         "as UTF-8") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if not header:
            raise InputError(f"{path}: the file is empty, expected a header line and rows")
        if len(set(header)) < len(header):
            twice = next(name for name in header if header.count(name) > 1)
            raise InputError(f"{path} line 1: column {twice!r} appears more than once in the header")
        rows, blank = 0, None
        for cells in reader:
            if not cells:  # blank lines are fine at the end of a file only
                blank = blank or reader.line_num
                continue
            if blank is not None or len(cells) != len(header):
                line, count = (blank, 0) if blank is not None else (reader.line_num, len(cells))
                raise InputError(f"{path} line {line}: {count} cell(s), expected {len(header)} as in the header")
            rows += 1
    except csv.Error as exc:
        raise InputError(f"{path} line {reader.line_num}: not CSV ({exc})") from None
    if not rows:
        raise InputError(f"{path}: a header line and no rows")
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])


def _fail(path: Path | str, frame: pd.DataFrame, mask: pd.Series, column: str, expected: str,
          first_row: int = 2) -> None:
    """``first_row``: the number of the frame's first row where it came from (2 in a CSV file, after
    the header; 1 in an API's list of rows)."""
    if mask.any():
        idx = int(np.flatnonzero(mask.to_numpy())[0])
        value = frame[column].iloc[idx]
        raise InputError(f"{path} row {idx + first_row}: {column} is {value!r}, expected {expected} "
                         f"({int(mask.sum())} bad row(s) in this column)")


def _require(path: Path, frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")


def _integers(path: Path | str, frame: pd.DataFrame, column: str, required: bool = True,
              first_row: int = 2) -> pd.Series:
    raw = frame[column]
    numbers = pd.to_numeric(raw, errors="coerce")
    bad = numbers.isna() & (raw.notna() | required) | (numbers.notna() & (numbers % 1 != 0))
    _fail(path, frame, bad, column, "an integer", first_row)
    return numbers.astype("Int64")


def read_box_scores(source: str | Path) -> pd.DataFrame:
    """Validated box scores from every file in ``source``, in the ``box_scores`` table's columns."""
    parts = [_parse_box_scores(read_csv_cells(path), path)
             for path in expand_sources(source)]
    return _without_duplicates(pd.concat(parts, ignore_index=True))


def box_scores_from_frame(raw: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Rows in the shipped box-score columns that did not come from a file (an API's rows) through
    the same checks and conversions as a file, so every source yields the same table; a bad row is
    named by ``origin`` and its position (the first row is 1)."""
    text = raw.astype(object).where(raw.notna(), None).map(lambda value: None if value is None else str(value))
    return _without_duplicates(_parse_box_scores(text, origin, first_row=1))


def _parse_box_scores(raw: pd.DataFrame, path: Path | str, first_row: int = 2) -> pd.DataFrame:
    """One file's (or response's) text cells as table rows, plus where each row came from."""
    _require(path, raw, BOX_SCORE_COLUMNS)
    out = pd.DataFrame(index=raw.index)
    for col in BOX_SCORE_INTEGERS:
        out[_BOX_RENAMES.get(col, col.lower())] = _integers(path, raw, col, first_row=first_row)
    out["plus_minus"] = _integers(path, raw, "PLUS_MINUS", required=False, first_row=first_row)
    dates = pd.to_datetime(raw["GAME_DATE"], format="%Y-%m-%d", errors="coerce")
    _fail(path, raw, dates.isna(), "GAME_DATE", "a date YYYY-MM-DD", first_row)
    matchup = raw["MATCHUP"].str.extract(_MATCHUP)
    _fail(path, raw, matchup[0].isna(), "MATCHUP", "'TEAM vs. OPP' or 'TEAM @ OPP'", first_row)
    # a few rows print the matchup from the other side ("MIA @ WAS" on a WAS player's row)
    flipped = matchup[2] == raw["TEAM_ABBREVIATION"]
    _fail(path, raw, (matchup[0] != raw["TEAM_ABBREVIATION"]) & ~flipped, "TEAM_ABBREVIATION",
          "one of the teams in MATCHUP", first_row)
    _fail(path, raw, ~raw["SEASON_LABEL"].fillna("").str.match(_SEASON), "SEASON_LABEL",
          "a season such as 2024-25", first_row)
    _fail(path, raw, raw["GAME_ID"].isna(), "GAME_ID", "a game id", first_row)
    _fail(path, raw, raw["PLAYER_NAME"].isna(), "PLAYER_NAME", "a name", first_row)
    out["player_name"] = raw["PLAYER_NAME"]
    out["game_id"] = raw["GAME_ID"].str.zfill(10)
    out["game_date"] = dates.dt.date
    out["season"] = raw["SEASON_LABEL"]
    out["team"] = raw["TEAM_ABBREVIATION"]
    out["opponent"] = matchup[2].where(~flipped, matchup[0])
    out["is_home"] = (matchup[1] == "vs.") ^ flipped  # "MIA @ WAS" on a WAS row: WAS at home
    out["win"] = raw["WL"].map({"W": True, "L": False}).astype("boolean")
    out["_file"] = str(path)
    out["_row"] = raw.index + first_row
    return out


def _without_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """The table's columns in key order, after refusing a player-game given twice (naming both places)."""
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
    unknown_markets: dict[str, int] = field(default_factory=dict)  # market key -> rows of no declared market


def read_lines(source: str | Path | list[Path], box_scores: pd.DataFrame) -> LinesResult:
    """Points lines matched to ``player_id`` through the players each team fielded that season."""
    parts = [_line_rows(read_csv_cells(path), path, posted)
             for posted, path in enumerate(sorted(expand_sources(source), key=_snapshot_order))]
    result = _match_lines(pd.concat(parts, ignore_index=True), box_scores)
    result.unknown_markets = _unknown(parts)
    return result


def _market_of(raw: pd.DataFrame) -> pd.Series:
    """Each row's declared market (``markets.by_line_key``), None where the key is not declared."""
    keys = raw["market"].unique()
    names = {key: (m.name if (m := by_line_key(key)) else None) for key in keys}
    return raw["market"].map(names)


def lines_from_frame(raw: pd.DataFrame, origin: str, box_scores: pd.DataFrame) -> LinesResult:
    """Rows in the daily-fantasy columns that did not come from a file (a sportsbook API's outcomes)
    through the same checks and name matching as a file; a bad row is named by its position (first = 1)."""
    rows = _line_rows(raw, origin, posted=0, first_row=1)
    result = _match_lines(rows, box_scores)
    result.unknown_markets = _unknown([rows])
    return result


def _unknown(parts: list[pd.DataFrame]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for key, n in part.attrs.get("unknown", {}).items():
            total[key] = total.get(key, 0) + n
    return total


def _line_rows(raw: pd.DataFrame, path: Path | str, posted: int, first_row: int = 2) -> pd.DataFrame:
    """One snapshot's lines of every declared market, checked, one row per side; ``posted`` orders the
    snapshots. Rows of an undeclared market are counted under ``unknown`` (``attrs``), not checked."""
    _require(path, raw, LINE_COLUMNS)
    market = _market_of(raw)
    unknown = raw.loc[market.isna(), "market"].value_counts().to_dict()
    raw, market = raw[market.notna()].reset_index(drop=True), market[market.notna()].reset_index(drop=True)
    line = pd.to_numeric(raw["line"], errors="coerce")
    _fail(path, raw, line.isna() | (line < 0), "line", "a non-negative number", first_row)
    price = pd.to_numeric(raw["price"], errors="coerce")
    _fail(path, raw, price.isna(), "price", "an American price such as -137", first_row)
    start = pd.to_datetime(raw["commence_time"], utc=True, errors="coerce")
    _fail(path, raw, start.isna(), "commence_time", "a UTC timestamp", first_row)
    for col in ("home_team", "away_team"):
        _fail(path, raw, ~raw[col].isin(TEAM_TRICODES), col, "an NBA team name", first_row)
    _fail(path, raw, ~raw["side"].isin(["Over", "Under"]), "side", "Over or Under", first_row)
    rows = pd.DataFrame({
        "player_name": raw["player"], "market": market, "bookmaker": raw["bookmaker"], "side": raw["side"],
        "line": line, "price": price.astype("Int64"), "commence_time": start, "posted": posted,
        # an evening US game starts after midnight UTC: the US (Eastern) calendar day is the date
        "game_date": start.dt.tz_convert("America/New_York").dt.date,
        "home": raw["home_team"].map(TEAM_TRICODES), "away": raw["away_team"].map(TEAM_TRICODES),
    })
    rows.attrs["unknown"] = {str(k): int(v) for k, v in unknown.items()}
    return rows


def _match_lines(raw: pd.DataFrame, box_scores: pd.DataFrame) -> LinesResult:
    """Over and under of each posted line side by side, matched to the player it names."""
    keys = ["game_date", "player_name", "market", "bookmaker", "home", "away", "line", "commence_time", "posted"]
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
        ["game_date", "player_id", "market", "bookmaker"], keep="last")
    matched["player_id"] = matched["player_id"].astype("Int64")
    lines = matched[PROP_LINES_SCHEMA.column_names].sort_values(
        ["game_date", "player_id", "market", "bookmaker"], ignore_index=True)
    return LinesResult(lines, unmatched)
