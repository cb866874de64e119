"""The analyst's pages, served by the worker: tonight's board, a night's results, performance.

``/board?date=&market=`` is the slate of a date for one market: per player the line (consensus and
books), every production system's prediction, the edge, P(over), the call and its confidence, the
last 10 games against tonight's line, the minutes trend, and who is out per team; sorted and
filtered by query parameters, and ``/board.csv`` with the same parameters is exactly the rows and
columns the page shows. ``/results?date=`` grades a night per system; ``/performance?market=``
charts the monitoring metrics, hit rate by confidence with Wilson intervals, the reliability of
P(over), the promotion history, data freshness, held days and alerts.

Everything is drawn on the server (Jinja2 templates, SVG charts from ``serving/charts.py``), every
asset is a file in ``serving/static/``, and the pages are read-only: no token to read, no write, no
script. Templates autoescape, so a stored player name holding markup shows as text; a strict
Content-Security-Policy backs that up. Each page reads a bounded slice of the warehouse: one date
(the board, the results) or at most ``MAX_DAYS`` days (performance), and shows at most ``MAX_ROWS``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from starlette.types import ASGIApp, Receive, Scope, Send

from contracts import (
    ALERTS_SCHEMA,
    BOX_SCORES_SCHEMA,
    CONFIDENCE_BUCKETS,
    DATA_CHECKS_SCHEMA,
    DATA_SYSTEM,
    FEATURE_STORE,
    GRADED,
    KEY_COLUMNS,
    LOSS,
    MONITORING_SCHEMA,
    PLAYER_GAME_COLUMNS,
    PLAYERS_OUT_SCHEMA,
    PREDICTION_GRADES_SCHEMA,
    PREDICTIONS_SCHEMA,
    PROP_LINES_SCHEMA,
    PUSH,
    SYSTEMS,
    WIN,
    Column,
    TableSchema,
)
from features.definitions import outcomes
from markets import DEFAULT_MARKET, MARKETS, Market
from registry.probability import wilson_interval
from serving import charts
from serving.models import LEAD_ORDER
from warehouse import Warehouse, WarehouseError
from warehouse.base import SchemaMismatch

HERE = Path(__file__).parent
TEMPLATES = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True,
                        lstrip_blocks=True)
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")

MAX_ROWS = 2000  # rows a page lists (a night has ~300 slate players, ~1,500 graded calls per market)
MAX_DAYS = 180  # the longest window the performance page reads
DEFAULT_DAYS = 60
FORM_GAMES = 10
FORM_WINDOW_DAYS = 240  # box scores read for the last 10 games: back over an off-season or a long injury
NAMES_WINDOW_DAYS = 45  # box scores read for the names of the players a night's results list
LOOKAHEAD_DAYS = 14  # how far ahead the board looks for the next slate
LOOKBACK_DAYS = (14, 90, 400, None)  # then back, in widening windows (None: all), for the latest one
BACKTEST_SOURCE = "backtest:"  # predictions a backtest wrote: shown only where nothing live exists
BOARD_SECONDS = 30.0  # a board read is reused this long: sorting, filtering and the CSV re-read nothing
BOARD_CACHE = 16  # boards (date, market) kept, least recently used dropped first
ALERT_DAYS = 7  # alerts of the week ending on the performance window's last day are "open"
CALLS = ("OVER", "UNDER", "PASS")

# Columns that issue 13's markets add to the contracts. A store (or a checkout) from before markets lacks
# them: a read asks for them, and without them reads the rest and takes every row as a points row.
MARKET_COLUMNS = {c.name: c for c in (Column("market", "STRING"), Column("p_push", "FLOAT64"),
                                      Column("p_under", "FLOAT64"), Column("confidence", "FLOAT64"))}


class PageError(ValueError):
    """A query parameter a page cannot use; the message names it and its value."""


# --- reading ------------------------------------------------------------------------------------

def read_columns(warehouse: Warehouse, schema: TableSchema, names: Iterable[str],
                 date_range: tuple[dt.date, dt.date], equals: dict[str, object] | None = None) -> pd.DataFrame:
    """Only ``names`` of a table in a date range: a page never reads the columns it does not show.
    A name of ``MARKET_COLUMNS`` that the stored table lacks comes back as points (``market``) or null."""
    declared = {c.name: c for c in schema.columns}
    names = list(names)
    optional = [n for n in names if n in MARKET_COLUMNS]

    def narrow(wanted: list[str]) -> TableSchema:
        columns = tuple(declared.get(n) or MARKET_COLUMNS[n] for n in wanted)
        return TableSchema(schema.name, columns, tuple(k for k in schema.key if k in wanted), schema.date_column)

    try:
        frame = warehouse.read(narrow(names), date_range=date_range, equals=equals)
    except SchemaMismatch:
        frame = warehouse.read(narrow([n for n in names if n not in optional]), date_range=date_range,
                               equals=equals)
    for name in optional:
        if name not in frame.columns:
            frame[name] = DEFAULT_MARKET if name == "market" else np.nan
    if "market" in frame.columns:
        frame["market"] = frame["market"].fillna(DEFAULT_MARKET)
    return frame


FEATURE_KEYS = TableSchema(FEATURE_STORE, PLAYER_GAME_COLUMNS, KEY_COLUMNS)  # who plays whom on a date


def nearest_date(warehouse: Warehouse, schema: TableSchema, market: str, today: dt.date) -> dt.date | None:
    """The first date from ``today`` on with rows of ``market`` (the next slate), else the latest
    before it, looked for in widening windows so an ordinary evening reads two weeks of one column."""
    def dates(start: dt.date, end: dt.date) -> pd.Series:
        rows = read_columns(warehouse, schema, ["game_date", "market"], (start, end))
        return rows.loc[rows["market"] == market, "game_date"]

    ahead = dates(today, today + dt.timedelta(days=LOOKAHEAD_DAYS))
    if len(ahead):
        return ahead.min()
    for days in LOOKBACK_DAYS:
        behind = dates(today - dt.timedelta(days=days) if days else dt.date(1900, 1, 1), today - dt.timedelta(days=1))
        if len(behind):
            return behind.max()
    return None


def latest_rows(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per key, the newest row, live rows before a backtest's."""
    live = ~frame["source"].astype(str).str.startswith(BACKTEST_SOURCE)
    order = frame.assign(_live=live).sort_values(["_live", "created_at"])
    return order.drop_duplicates(keys, keep="last").drop(columns="_live")


def lead_system(systems: Iterable[str]) -> str | None:
    present = set(systems)
    return next((s for s in LEAD_ORDER if s in present), None)


def ordered_systems(systems: Iterable[str]) -> list[str]:
    """Systems in the order the worker leads with (best first), unknown names after them."""
    present = set(systems)
    return [s for s in LEAD_ORDER if s in present] + sorted(present - set(LEAD_ORDER))


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _num(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _line(value: float | None) -> str:
    """A line as posted (17.5), or a consensus of books as it falls (17.75)."""
    return "" if value is None else f"{value:g}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.0f}%"


# --- the board ----------------------------------------------------------------------------------

@dataclass
class BoardRow:
    player_id: int
    player: str
    team: str
    opponent: str
    game_id: str
    line: float | None
    books: list[tuple[str, float]]
    predictions: dict[str, float]
    edge: float | None
    p_over: float | None
    call: str
    confidence: float | None
    form: list[float]
    form_dates: list[str]
    minutes: list[float]

    def minutes_trend(self) -> tuple[float | None, float | None]:
        last5 = self.minutes[-5:]
        return (float(np.mean(last5)) if last5 else None, float(np.mean(self.minutes)) if self.minutes else None)


@dataclass
class Game:
    game_id: str
    team: str
    opponent: str
    out: dict[str, list[tuple[str, str]]]  # team -> (player, reason)


@dataclass
class Board:
    day: dt.date
    market: Market
    systems: list[str]
    lead: str | None
    rows: list[BoardRow]
    games: list[Game]
    teams: list[str]


def _form(box: pd.DataFrame, market: Market,
          players: set[int]) -> dict[int, tuple[list[float], list[str], list[float]]]:
    """Per player, his last ``FORM_GAMES`` outcomes of the market, their dates and his minutes, oldest first."""
    box = box[box["player_id"].isin(players)].sort_values(["player_id", "game_date"])
    last = box.groupby("player_id", sort=False).tail(FORM_GAMES)
    outcome = outcomes(last)[market.name].to_numpy()
    dates = pd.to_datetime(last["game_date"]).dt.strftime("%b %d").tolist()
    minutes = last["minutes"].astype(float).fillna(0.0).to_numpy()
    out: dict[int, tuple[list[float], list[str], list[float]]] = {}
    for i, player_id in enumerate(last["player_id"].astype(int).tolist()):
        values, days, played = out.setdefault(player_id, ([], [], []))
        if not math.isnan(outcome[i]):
            values.append(float(outcome[i]))
            days.append(dates[i])
        played.append(float(minutes[i]))
    return out


def _sat_out(team: str, sides: tuple[str, str], game_id: str) -> tuple[str, str, str]:
    """Team, opponent and game of a predicted player without a row on the date."""
    opponent = sides[1] if team == sides[0] else sides[0] if team == sides[1] else ""
    return team, opponent, game_id


BOX_FORM_COLUMNS = ("player_id", "player_name", "game_id", "game_date", "team", "minutes", "points", "reb", "ast",
                    "fg3m")


def read_board(warehouse: Warehouse, day: dt.date, market: Market) -> Board:
    """Everything the board shows for one date and market, from six bounded reads."""
    predictions = read_columns(warehouse, PREDICTIONS_SCHEMA, [
        "game_date", "game_id", "player_id", "market", "system", "model_version", "predicted_points", "line",
        "recommendation", "p_over", "p_under", "confidence", "source", "created_at"], (day, day))
    predictions = predictions[predictions["market"] == market.name]
    predictions = latest_rows(predictions, ["player_id", "system"]) if len(predictions) else predictions
    systems = ordered_systems(predictions["system"].unique())
    lead = lead_system(systems)
    slate = read_columns(warehouse, FEATURE_KEYS, ["player_id", "player_name", "game_id", "team", "opponent"],
                         (day, day)).drop_duplicates("player_id")
    lines = read_columns(warehouse, PROP_LINES_SCHEMA, ["game_date", "player_id", "market", "bookmaker", "line"],
                         (day, day))
    lines = lines[lines["market"] == market.name]
    out = read_columns(warehouse, PLAYERS_OUT_SCHEMA, ["game_date", "player_id", "team", "reason"], (day, day))
    box = read_columns(warehouse, BOX_SCORES_SCHEMA, BOX_FORM_COLUMNS,
                       (day - dt.timedelta(days=FORM_WINDOW_DAYS), day - dt.timedelta(days=1)))
    form = _form(box, market, set(predictions["player_id"].astype(int)))
    names = dict(zip(box["player_id"].astype(int), box["player_name"], strict=True))
    names.update(zip(slate["player_id"].astype(int), slate["player_name"], strict=True))
    teams_of = {int(r.player_id): (r.team, r.opponent, r.game_id) for r in slate.itertuples()}
    # a player who sat out a played game has no row that day (the box score replaced the slate):
    # his latest team, and the other side of the game he was predicted for
    last_team = dict(zip(box["player_id"].astype(int), box["team"], strict=True))
    sides = {r.game_id: (r.team, r.opponent) for r in slate.itertuples()}
    books: dict[int, list[tuple[str, float]]] = {}
    for r in lines.sort_values("bookmaker").itertuples():
        books.setdefault(int(r.player_id), []).append((str(r.bookmaker), float(r.line)))

    by_player: dict[int, dict[str, dict[str, Any]]] = {}
    for record in predictions.to_dict("records"):
        by_player.setdefault(int(record["player_id"]), {})[record["system"]] = record
    rows = []
    for player_id, by_system in by_player.items():
        led = by_system.get(lead) or next(iter(by_system.values()))
        book_lines = books.get(player_id, [])
        line = _finite(led["line"])
        if line is None and book_lines:
            line = float(np.median([v for _, v in book_lines]))
        predicted, p_over, call = _finite(led["predicted_points"]), _finite(led["p_over"]), str(led["recommendation"])
        confidence = _finite(led["confidence"])
        if confidence is None and p_over is not None and call in ("OVER", "UNDER"):  # before markets: P(side)
            p_under = _finite(led["p_under"])
            confidence = p_over if call == "OVER" else (p_under if p_under is not None else 1 - p_over)
        game_id = str(led["game_id"])
        team, opponent, game_id = teams_of.get(player_id) or _sat_out(last_team.get(player_id, ""),
                                                                      sides.get(game_id, ("", "")), game_id)
        values, dates, minutes = form.get(player_id, ([], [], []))
        rows.append(BoardRow(player_id, str(names.get(player_id, f"player {player_id}")), team, opponent, game_id,
                             line, book_lines, {s: float(r["predicted_points"]) for s, r in by_system.items()},
                             None if predicted is None or line is None else round(predicted - line, 2), p_over,
                             call, confidence, values, dates, minutes))

    games: dict[str, Game] = {}
    for r in slate.sort_values(["game_id", "team"]).itertuples():
        games.setdefault(r.game_id, Game(r.game_id, r.team, r.opponent, {r.team: [], r.opponent: []}))
    slate_team = {t: g for g in games.values() for t in (g.team, g.opponent)}
    for r in out.itertuples():
        game = slate_team.get(r.team)
        if game is not None:
            game.out.setdefault(r.team, []).append((str(names.get(int(r.player_id), f"player {r.player_id}")),
                                                    "" if pd.isna(r.reason) else str(r.reason)))
    teams = sorted({r.team for r in rows if r.team})
    return Board(day, market, systems, lead, rows, list(games.values()), teams)


class BoardCache:
    """Boards read in the last ``BOARD_SECONDS``: an analyst sorts and filters one board many times,
    and the CSV follows the page; a new read after that picks up predictions written since."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self._boards: OrderedDict[tuple[dt.date, str], tuple[float, Board]] = OrderedDict()
        self._lock = threading.Lock()

    def board(self, day: dt.date, market: str) -> Board:
        key = (day, market)
        with self._lock:
            cached = self._boards.get(key)
        if cached is not None and time.monotonic() - cached[0] < BOARD_SECONDS:
            return cached[1]
        board = read_board(self.warehouse, day, MARKETS[market])
        with self._lock:
            self._boards[key] = (time.monotonic(), board)
            self._boards.move_to_end(key)
            while len(self._boards) > BOARD_CACHE:
                self._boards.popitem(last=False)
        return board


@dataclass
class BoardQuery:
    """The board's filters and sort, parsed from the query string (the CSV takes the same)."""

    day: dt.date | None = None
    market: str = DEFAULT_MARKET
    team: str = ""
    call: str = ""
    min_edge: float | None = None
    min_prob: float | None = None
    sort: str = "confidence"
    order: str = "desc"

    def params(self, **changes: Any) -> str:
        """This query as a URL query string, with some values changed (the sort links, the CSV link)."""
        values = {"date": self.day, "market": self.market, "team": self.team, "call": self.call,
                  "min_edge": self.min_edge, "min_prob": self.min_prob, "sort": self.sort, "order": self.order}
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})


SORTS: dict[str, Callable[[BoardRow], Any]] = {
    "player": lambda r: r.player.lower(), "team": lambda r: (r.team, r.player.lower()),
    "line": lambda r: r.line, "edge": lambda r: r.edge, "p_over": lambda r: r.p_over,
    "confidence": lambda r: r.confidence, "minutes": lambda r: r.minutes_trend()[0],
    "prediction": lambda r: next(iter(r.predictions.values()), None),
}
TEAM = re.compile(r"^[A-Za-z]{2,4}$")


def parse_date(field_name: str, value: str | None) -> dt.date | None:
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PageError(f"{field_name} is {value[:20]!r}, expected a date YYYY-MM-DD") from None


def _number(field_name: str, value: str | None, low: float, high: float) -> float | None:
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not low <= number <= high:
        raise PageError(f"{field_name} is {value[:20]!r}, expected a number from {low:g} to {high:g}")
    return number


def parse_market(value: str | None) -> str:
    market = value or DEFAULT_MARKET
    if market not in MARKETS:
        raise PageError(f"market is {market[:20]!r}, expected one of {', '.join(MARKETS)}")
    return market


def parse_board_query(q: dict[str, str]) -> BoardQuery:
    team = (q.get("team") or "").upper()
    if team and not TEAM.match(team):
        raise PageError(f"team is {team[:20]!r}, expected a team abbreviation such as BOS")
    call = (q.get("call") or "").upper()
    if call and call not in CALLS:
        raise PageError(f"call is {call[:20]!r}, expected one of {', '.join(CALLS)}")
    sort = q.get("sort") or "confidence"
    if sort not in SORTS:
        raise PageError(f"sort is {sort[:20]!r}, expected one of {', '.join(SORTS)}")
    order = q.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise PageError(f"order is {order[:20]!r}, expected asc or desc")
    return BoardQuery(parse_date("date", q.get("date")), parse_market(q.get("market")), team, call,
                      _number("min_edge", q.get("min_edge"), 0, 100), _number("min_prob", q.get("min_prob"), 0, 1),
                      sort, order)


def shown_rows(board: Board, query: BoardQuery) -> list[BoardRow]:
    """The board's rows that pass the filters, sorted; rows without the sorted value last either way."""
    rows = [r for r in board.rows
            if (not query.team or r.team == query.team) and (not query.call or r.call == query.call)
            and (query.min_edge is None or (r.edge is not None and abs(r.edge) >= query.min_edge))
            and (query.min_prob is None or (r.confidence is not None and r.confidence >= query.min_prob))]
    key = SORTS[query.sort]
    present = [r for r in rows if key(r) is not None]
    present.sort(key=key, reverse=query.order == "desc")
    return (present + [r for r in rows if key(r) is None])[:MAX_ROWS]


@dataclass
class Cell:
    """One cell as the page shows it and the CSV writes it: ``text``, or a chart whose ``text`` is
    its accessible label (the numbers it draws)."""

    text: str
    chart: Any = None
    css: str = ""


def board_columns(board: Board) -> list[tuple[str, str]]:
    """(header, sort key or "") of every column, in order: one per production system among them."""
    return [("Player", "player"), ("Team", "team"), ("Opp", ""), ("Line", "line"), ("Books", ""),
            *((system, "prediction" if system == board.lead else "") for system in board.systems),
            ("Edge", "edge"), ("P(over)", "p_over"), ("Call", ""), ("Conf.", "confidence"),
            (f"Last {FORM_GAMES}", ""), ("Minutes L5 / L10", "minutes")]


def board_cells(board: Board, row: BoardRow) -> list[Cell]:
    over = sum(v > row.line for v in row.form) if row.line is not None else None
    form_text = " ".join(f"{v:g}" for v in row.form)
    if over is not None and row.form:
        form_text += f" ({over} of {len(row.form)} over {row.line:g})"
    last5, last10 = row.minutes_trend()
    minutes_text = f"{_num(last5)} / {_num(last10)}" if last10 is not None else ""
    return [
        Cell(row.player, css="player"), Cell(row.team), Cell(row.opponent), Cell(_line(row.line)),
        Cell(" · ".join(f"{book} {value:g}" for book, value in row.books), css="books"),
        *(Cell(_num(row.predictions.get(system)), css="num") for system in board.systems),
        Cell(_num(row.edge, signed=True), css="num " + ("pos" if (row.edge or 0) > 0 else "neg" if row.edge else "")),
        Cell(_pct(row.p_over), css="num"), Cell(row.call, css=f"call {row.call.lower()}"),
        Cell(_pct(row.confidence), css="num"),
        Cell(form_text, charts.form_chart(row.form, row.form_dates, row.line, form_text) if row.form else None,
             "chart"),
        Cell(minutes_text, charts.minutes_spark(row.minutes, minutes_text) if row.minutes else None, "chart"),
    ]


def board_csv(board: Board, rows: list[BoardRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([header for header, _ in board_columns(board)])
    for row in rows:
        writer.writerow([cell.text for cell in board_cells(board, row)])
    return buffer.getvalue()


# --- results ------------------------------------------------------------------------------------

@dataclass
class SystemResult:
    system: str
    graded: int
    void: int
    wins: int
    losses: int
    pushes: int
    mae: float | None

    @property
    def hit_rate(self) -> float | None:
        return self.wins / (self.wins + self.losses) if self.wins + self.losses else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.wins, self.wins + self.losses)


GRADE_COLUMNS = ("game_date", "game_id", "player_id", "market", "system", "model_version", "outcome",
                 "predicted_points", "actual_points", "abs_error", "line", "recommendation", "ou_result", "p_over")


def system_results(grades: pd.DataFrame) -> list[SystemResult]:
    out = []
    for system in ordered_systems(grades["system"].unique()):
        g = grades[grades["system"] == system]
        graded = g[g["outcome"] == GRADED]
        errors = graded["abs_error"].astype(float).dropna()
        result = graded["ou_result"]
        out.append(SystemResult(system, len(graded), int((g["outcome"] != GRADED).sum()), int((result == WIN).sum()),
                                int((result == LOSS).sum()), int((result == PUSH).sum()),
                                float(errors.mean()) if len(errors) else None))
    return out


def player_names(warehouse: Warehouse, day: dt.date) -> dict[int, tuple[str, str]]:
    """Name and team of the players of a date and of the weeks before (a player who sat has no row that day)."""
    box = read_columns(warehouse, BOX_SCORES_SCHEMA, ["player_id", "player_name", "game_id", "game_date", "team"],
                       (day - dt.timedelta(days=NAMES_WINDOW_DAYS), day))
    slate = read_columns(warehouse, FEATURE_KEYS, ["player_id", "player_name", "game_id", "game_date", "team"],
                         (day, day))
    both = pd.concat([box, slate]).sort_values("game_date")
    return {int(r.player_id): (str(r.player_name), str(r.team)) for r in both.itertuples()}


def result_rows(grades: pd.DataFrame, names: dict[int, tuple[str, str]], systems: list[str],
                lead: str | None) -> list[dict[str, Any]]:
    """One row per player graded on the date: the line and the actual value, then per system its
    prediction, call, P(over) and result; by team, then player."""
    rows = []
    for player_id, group in grades.groupby("player_id"):
        by_system = {r.system: r for r in group.itertuples()}
        led = by_system.get(lead) or next(iter(by_system.values()))
        name, team = names.get(int(player_id), (f"player {player_id}", ""))
        rows.append({"player": name, "team": team, "line": _line(_finite(led.line)),
                     "actual": "" if _finite(led.actual_points) is None else f"{led.actual_points:g}",
                     "systems": {s: {"predicted": _num(_finite(r.predicted_points)), "call": str(r.recommendation),
                                     "p_over": _pct(_finite(r.p_over)), "result": _outcome_label(r),
                                     "version": str(r.model_version)} for s, r in by_system.items()}})
    return sorted(rows, key=lambda r: (r["team"], r["player"].lower()))


def _outcome_label(row: Any) -> str:
    if row.outcome != GRADED:
        return "void"
    return str(row.ou_result) if isinstance(row.ou_result, str) else "no call"


# --- performance --------------------------------------------------------------------------------

RELIABILITY_BINS = 10


def confidence_table(grades: pd.DataFrame) -> tuple[list[str], dict[str, list[tuple[float, float, float] | None]],
                                                     list[dict[str, Any]]]:
    """Hit rate of decided calls per system and ``CONFIDENCE_BUCKETS`` bucket of |P(over) - 0.5|, with
    Wilson intervals: the buckets the monitoring metrics use, counted from the grades themselves."""
    calls = grades[(grades["outcome"] == GRADED) & grades["ou_result"].isin((WIN, LOSS)) & grades["p_over"].notna()]
    confidence = (calls["p_over"].astype(float) - 0.5).abs().round(6)
    labels = [f"{low:.2f}–{high:.2f}" for _, low, high in CONFIDENCE_BUCKETS]
    series: dict[str, list[tuple[float, float, float] | None]] = {}
    table = []
    for system in ordered_systems(calls["system"].unique()):
        mine = calls["system"] == system
        values: list[tuple[float, float, float] | None] = []
        for (_, low, high), label in zip(CONFIDENCE_BUCKETS, labels, strict=True):
            upper = confidence <= high if high >= 0.5 else confidence < high
            bucket = calls[mine & (confidence >= low) & upper]
            wins, n = int((bucket["ou_result"] == WIN).sum()), len(bucket)
            lo, hi = wilson_interval(wins, n)
            values.append((100 * wins / n, 100 * lo, 100 * hi) if n else None)
            table.append({"system": system, "bucket": label, "calls": n, "wins": wins,
                          "hit_rate": _pct(wins / n) if n else "", "interval": f"{100 * lo:.0f}–{100 * hi:.0f}%"
                          if n else ""})
        series[system] = values
    return labels, series, table


def reliability(grades: pd.DataFrame) -> dict[str, list[tuple[float, float, str]]]:
    """Per system, P(over) in ``RELIABILITY_BINS`` equal bins against how often the over came in
    (pushes left out: they have no over/under truth)."""
    judged = grades[(grades["outcome"] == GRADED) & grades["p_over"].notna() & grades["line"].notna()
                    & (grades["actual_points"] != grades["line"])]
    out = {}
    for system in ordered_systems(judged["system"].unique()):
        g = judged[judged["system"] == system]
        p = g["p_over"].astype(float).to_numpy()
        over = (g["actual_points"].astype(float) > g["line"].astype(float)).to_numpy(float)
        bins = np.minimum((p * RELIABILITY_BINS).astype(int), RELIABILITY_BINS - 1)
        points = []
        for b in np.unique(bins):
            inside = bins == b
            points.append((float(p[inside].mean()), float(over[inside].mean()),
                           f"{system}: P(over) {p[inside].mean():.2f}, over {over[inside].mean():.2f} "
                           f"({int(inside.sum())} calls)"))
        out[system] = points
    return out


def metric_series(metrics: pd.DataFrame, metric: str, period: str, start: dt.date) -> dict[str, list]:
    """One line per system and model version of a monitoring metric, x = days since ``start``."""
    rows = metrics[(metrics["metric"] == metric) & (metrics["period"] == period) & metrics["value"].notna()]
    series: dict[str, list] = {}
    for system in ordered_systems(rows["system"].unique()):
        for version, g in rows[rows["system"] == system].groupby("model_version"):
            series[f"{system} v{version}"] = [((r.game_date - start).days, float(r.value),
                                               f"{system} v{version} {r.game_date}: {r.value:.3f}")
                                              for r in g.itertuples()]
    return series


# --- the router -----------------------------------------------------------------------------------

def registry_history(name: str) -> list:
    """A registered model's promotions, refusals and rollbacks (imported on first use: the registry
    client is only needed by the performance page)."""
    from registry.promotion import history

    return history(name)


@dataclass
class Page:
    """What every page template gets besides its own values."""

    title: str
    active: str
    markets: dict[str, Market] = field(default_factory=lambda: MARKETS)


def _html(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    body = TEMPLATES.get_template(template).render(**values)
    return HTMLResponse(body, status_code=status, headers={"Content-Security-Policy": CSP,
                                                           "X-Content-Type-Options": "nosniff",
                                                           "Cache-Control": "no-cache"})


def _problem(status: int, message: str) -> HTMLResponse:
    return _html("problem.html", status, page=Page("Cannot show this page", ""), message=message)


def pages_router(warehouse: Warehouse) -> APIRouter:
    """The pages' routes, reading ``warehouse`` (and the registry, for the promotion history)."""
    today = dt.date.today
    router = APIRouter(include_in_schema=False)
    boards = BoardCache(warehouse)

    def promotions(market: Market) -> tuple[list, str]:
        events, problems = [], []
        for system in SYSTEMS:
            try:
                events += registry_history(market.registered_name(system))
            except ValueError:  # PromotionError: not registered (for this market)
                continue
            except Exception as exc:  # the registry is another service: the page still shows the rest
                problems.append(f"{system}: {exc.__class__.__name__}: {str(exc)[:120]}")
                break
        return sorted(events, key=lambda e: e.when, reverse=True), "; ".join(problems)

    def handle(build: Callable[[dict[str, str]], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return build(dict(request.query_params))
            except PageError as exc:
                return _problem(422, str(exc))
            except WarehouseError as exc:
                return _problem(503, f"the warehouse cannot be read now: {str(exc)[:300]}")
        return endpoint

    def board_for(q: dict[str, str], path: str) -> tuple[Board | None, BoardQuery, Response | None]:
        query = parse_board_query(q)
        if query.day is None:
            found = nearest_date(warehouse, PREDICTIONS_SCHEMA, query.market, today())
            if found is None:
                return None, query, _problem(404, f"no {query.market} predictions are stored: run daily or "
                                                  "predict first")
            return None, query, RedirectResponse(f"{path}?{query.params(date=found)}", status_code=303)
        return boards.board(query.day, query.market), query, None

    def board_page(q: dict[str, str]) -> Response:
        board, query, early = board_for(q, "/board")
        if early is not None:
            return early
        rows = shown_rows(board, query)
        return _html("board.html", page=Page(f"Board {board.day} · {board.market.label}", "board"), board=board,
                     query=query, columns=board_columns(board), rows=[board_cells(board, r) for r in rows],
                     shown=len(rows), total=len(board.rows), calls=CALLS, max_rows=MAX_ROWS,
                     previous=board.day - dt.timedelta(days=1), next=board.day + dt.timedelta(days=1))

    def board_download(q: dict[str, str]) -> Response:
        board, query, early = board_for(q, "/board.csv")
        if early is not None:
            return early
        name = f"board-{board.day}-{board.market.name}.csv"
        return Response(board_csv(board, shown_rows(board, query)), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    def results_page(q: dict[str, str]) -> Response:
        market = MARKETS[parse_market(q.get("market"))]
        day = parse_date("date", q.get("date"))
        if day is None:
            found = nearest_date(warehouse, PREDICTION_GRADES_SCHEMA, market.name, today())
            if found is None:
                return _problem(404, f"no graded {market.name} predictions are stored: daily grades them once "
                                     "results arrive")
            return RedirectResponse(f"/results?date={found}&market={market.name}", status_code=303)
        grades = read_columns(warehouse, PREDICTION_GRADES_SCHEMA, GRADE_COLUMNS, (day, day))
        grades = grades[grades["market"] == market.name]
        names = player_names(warehouse, day)
        summary = system_results(grades)
        lead = lead_system(grades["system"].unique())
        hit_chart = charts.interval_plot(
            "Hit rate per system with 95% Wilson interval", [s.system for s in summary],
            {"hit rate": [(100 * s.hit_rate, 100 * s.interval[0], 100 * s.interval[1]) if s.hit_rate is not None
                          else None for s in summary]}, "hit rate", refs=[(52.4, "52.4% break-even at -110")])
        graded = grades[(grades["outcome"] == GRADED) & (grades["system"] == lead)]
        scatter = charts.scatter_plot(
            f"{lead or 'no system'}: predicted against actual {market.label.lower()}",
            {lead or "": [(float(r.predicted_points), float(r.actual_points),
                           f"{names.get(int(r.player_id), ('?', ''))[0]}: predicted {r.predicted_points:.1f}, "
                           f"actual {r.actual_points:g}") for r in graded.itertuples()]},
            "predicted", "actual")
        systems = ordered_systems(grades["system"].unique())
        rows = result_rows(grades, names, systems, lead)
        return _html("results.html", page=Page(f"Results {day} · {market.label}", "results"), day=day,
                     market=market, summary=summary, systems=systems, rows=rows[:MAX_ROWS], total=len(rows),
                     max_rows=MAX_ROWS,
                     hit_chart=hit_chart, scatter=scatter, pct=_pct, num=_num,
                     previous=day - dt.timedelta(days=1), next=day + dt.timedelta(days=1))

    def performance_page(q: dict[str, str]) -> Response:
        market = MARKETS[parse_market(q.get("market"))]
        days = int(_number("days", q.get("days"), 1, MAX_DAYS) or DEFAULT_DAYS)
        end = parse_date("end", q.get("end")) or nearest_date(warehouse, MONITORING_SCHEMA, market.name, today())
        if end is None:
            return _problem(404, f"no {market.name} monitoring metrics are stored: daily records them after "
                                 "grading")
        start = end - dt.timedelta(days=days - 1)
        metrics = read_columns(warehouse, MONITORING_SCHEMA, ["game_date", "market", "system", "model_version",
                                                               "period", "metric", "value"], (start, end))
        data = metrics[metrics["system"] == DATA_SYSTEM]
        metrics = metrics[(metrics["market"] == market.name) & (metrics["system"] != DATA_SYSTEM)]
        grades = read_columns(warehouse, PREDICTION_GRADES_SCHEMA, ["game_date", "market", "system", "outcome",
                                                                     "actual_points", "line", "ou_result", "p_over"],
                              (start, end))
        grades = grades[grades["market"] == market.name]
        day_labels = {float((d - start).days): d.strftime("%b %d") for d in sorted(metrics["game_date"].unique())}
        mae = charts.line_plot("7-day MAE per system and model version", metric_series(metrics, "mae", "7d", start),
                               "MAE", day_labels)
        hits = charts.line_plot("30-day hit rate per system and model version",
                                metric_series(metrics, "hit_rate", "30d", start), "hit rate %", day_labels,
                                refs=[(52.4, "52.4% break-even")])
        labels, bucket_series, bucket_table = confidence_table(grades)
        buckets = charts.interval_plot("Hit rate by confidence |P(over) − 0.5|, 95% Wilson interval", labels,
                                       bucket_series, "hit rate", refs=[(52.4, "52.4% break-even")])
        calibration = charts.scatter_plot("Reliability of P(over)", reliability(grades), "P(over)",
                                          "share of overs", width=360, height=320, bounds=(0.0, 1.0), connect=True)
        latest_data = data[data["game_date"] == data["game_date"].max()] if len(data) else data
        freshness = {r.metric: r.value for r in latest_data.itertuples() if _finite(r.value) is not None
                     and r.metric in ("freshness_days", "psi_max", "missing_input_share", "n_feature_rows")}
        checks = read_columns(warehouse, DATA_CHECKS_SCHEMA, ["game_date", "status", "problems"], (start, end))
        held = checks[checks["status"] == "held"].sort_values("game_date", ascending=False)
        alerts = read_columns(warehouse, ALERTS_SCHEMA, ["game_date", "rule", "market", "system", "value",
                                                          "threshold", "message"],
                              (end - dt.timedelta(days=ALERT_DAYS - 1), end))
        alerts = alerts[alerts["market"] == market.name].sort_values("game_date", ascending=False)
        events, registry_problem = promotions(market)
        return _html("performance.html", page=Page(f"Performance · {market.label}", "performance"), market=market,
                     start=start, end=end, days=days, max_days=MAX_DAYS, mae=mae, hits=hits, buckets=buckets,
                     bucket_table=bucket_table, calibration=calibration, freshness=freshness,
                     data_day=latest_data["game_date"].max() if len(latest_data) else None,
                     held=held.head(MAX_ROWS).to_dict("records"), alerts=alerts.head(MAX_ROWS).to_dict("records"),
                     alert_days=ALERT_DAYS, events=events[:MAX_ROWS], registry_problem=registry_problem)

    router.add_api_route("/board", handle(board_page), methods=["GET"], response_class=HTMLResponse)
    router.add_api_route("/board.csv", handle(board_download), methods=["GET"])
    router.add_api_route("/results", handle(results_page), methods=["GET"], response_class=HTMLResponse)
    router.add_api_route("/performance", handle(performance_page), methods=["GET"], response_class=HTMLResponse)
    return router


class BrowserHome:
    """``GET /`` for a browser (an ``Accept`` that puts HTML before JSON): a page linking to the
    board, results, performance and the API docs. Every other client gets the worker's JSON as before,
    so the API's answer at ``/`` does not change."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/":
            accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
            html, json_ = accept.find("text/html"), accept.find("application/json")
            if html >= 0 and (json_ < 0 or html < json_):
                await _html("home.html", page=Page("NBA props platform", "home"))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_pages(app: FastAPI, warehouse: Warehouse) -> None:
    """The pages, their static files and the browser's home page on ``app`` (the worker: one call)."""
    app.include_router(pages_router(warehouse))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(BrowserHome)
