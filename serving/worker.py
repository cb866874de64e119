"""The prediction worker: serves every system's production version over HTTP.

``GET /`` lists the loaded systems, ``GET /health`` says whether anything can be served,
``POST /predict`` answers (player_id, game_date) pairs from the feature store or explicit feature
rows, and ``POST /reload`` (bearer token) picks up a promotion or rollback at once; the worker also
polls the registry every ``poll_seconds``.

Every request has a bounded cost whatever else is in flight: the body is refused past
``MAX_BODY_BYTES`` before it is parsed, a request holds at most ``MAX_ITEMS`` rows and ``MAX_DATES``
game dates, read from the store in one query, the feature cache holds at most ``CACHE_DATES``
dates, at most ``MAX_STORE_READS`` reads run at once with ``MAX_STORE_QUEUE`` waiting (then 503 with
``Retry-After``), and a read of a busy warehouse gives up in seconds (503). After SIGTERM the
requests in flight get ``SHUTDOWN_SECONDS``. A bad request
is a 422 naming the field, never echoing more than a short value of it. A system that fails to
predict is skipped and reported, so the others still answer.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import multiprocessing.synchronize
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pydantic_core
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, model_validator
from starlette.concurrency import run_in_threadpool

import settings
from contracts import SYSTEMS
from features.definitions import FEATURE_NAMES, feature_names
from features.store import REBUILD, read_store
from markets import DEFAULT_MARKET, MARKET_NAMES, MARKETS, Market
from registry.predictions import priced
from registry.systems import abstained
from serving.auth import bearer_guard
from serving.docs import offline_docs
from serving.models import LEAD_ORDER, ProductionModels
from serving.openapi import AUTH, HEALTH_RESPONSES, PREDICT_RESPONSES
from serving.pages import install_pages
from warehouse import Warehouse, WarehouseError, connect

MAX_BODY_BYTES = 8 * 2**20  # 5,000 explicit rows of 33 named features fit; a larger body is refused unread
MAX_ITEMS = 5000  # rows of games, rows and table together
MAX_DATES = 31  # distinct game dates a request may look up
CACHE_DATES = 64  # game dates whose feature rows are kept, least recently used dropped first
MAX_STORE_READS = 2  # feature-store reads at once (each reads all of its request's uncached dates)
MAX_STORE_QUEUE = 32  # requests waiting for a read; past it a 503 (32 clients at once are all served)
RETRY_AFTER_SECONDS = 1
SHUTDOWN_SECONDS = 2  # after SIGTERM, requests in flight get this long to finish, then are cancelled
CACHE_SECONDS = 60.0
MAX_REPORTED_ERRORS = 10
MAX_PLAYER_ID = 2**31 - 1  # NBA person ids are 32-bit; a larger one is no player, and past 64 bits no array holds it
FEATURE_BOUND = 1e6  # no feature comes near it (minutes, points, rates, ratings); far larger overflows float32
SHOWN_VALUE_CHARS = 40
# computed once: the validators and the table path run on every request
MARKET_FEATURES = {name: feature_names(m) for name, m in MARKETS.items()}
FEATURE_POSITION = {name: i for i, name in enumerate(FEATURE_NAMES)}

# NaN and Infinity are valid in Python's JSON but are not numbers a model or a client can use
FINITE = ConfigDict(extra="forbid", allow_inf_nan=False)


# a number (true/false is not one), within what any feature can be: 1e308 would overflow the models
FeatureValue = Annotated[float, Field(strict=True, ge=-FEATURE_BOUND, le=FEATURE_BOUND)]
LineValue = Annotated[float, Field(strict=True, ge=0, le=150)]  # a line of any market, in its outcome's unit
def _date_text(value: object) -> object:
    """A game date is YYYY-MM-DD text: a number would otherwise be read as a Unix timestamp."""
    if not isinstance(value, str | dt.date):
        raise ValueError("a date is YYYY-MM-DD text")
    return value


GameDate = Annotated[dt.date, BeforeValidator(_date_text)]
PlayerId = Annotated[int, Field(strict=True, gt=0, le=MAX_PLAYER_ID, description="NBA person id")]


class PlayerGame(BaseModel):
    model_config = FINITE
    player_id: PlayerId
    game_date: GameDate
    line: LineValue | None = Field(default=None,
                               description="the market's line; default: the stored one")


FeatureRow = create_model(
    "FeatureRow", __config__=FINITE,
    player_id=(PlayerId | None, None), game_date=(GameDate | None, None),
    game_id=(str | None, None), line=(LineValue | None, None),
    # every feature of the request's market is required (null allowed): checked by PredictRequest
    **{name: (FeatureValue | None, Field(default=None)) for name in FEATURE_NAMES},
)


class FeatureTable(BaseModel):
    """Many feature rows at once, column names given once (like MLflow's ``dataframe_split``):
    the compact form for batches, validated as one block of numbers."""

    model_config = FINITE
    columns: list[str] = Field(max_length=2 * len(FEATURE_NAMES))  # room to name an unknown one, still bounded
    data: list[list[FeatureValue | None]] = Field(max_length=MAX_ITEMS)
    line: list[LineValue | None] | None = Field(default=None, description="one line of the market (or null) per row")

    @model_validator(mode="after")
    def _shape(self) -> FeatureTable:
        unknown = [c for c in self.columns if c not in FEATURE_POSITION]
        if unknown:
            raise ValueError(f"columns hold unknown column {unknown[0]!r}: send the market's features, null where "
                             "a value is unknown")
        twice = next((c for c, n in Counter(self.columns).items() if n > 1), None)
        if twice is not None:
            raise ValueError(f"columns name {twice!r} twice: name each column once")
        if set(map(len, self.data)) - {len(self.columns)}:  # one pass in C; the loop only to name the row
            i, row = next((i, row) for i, row in enumerate(self.data) if len(row) != len(self.columns))
            raise ValueError(f"data[{i}] has {len(row)} values for {len(self.columns)} columns")
        if self.line is not None and len(self.line) != len(self.data):
            raise ValueError(f"line has {len(self.line)} values for {len(self.data)} rows")
        return self


class PredictRequest(BaseModel):
    model_config = FINITE
    games: list[PlayerGame] = Field(default_factory=list, max_length=MAX_ITEMS)
    rows: list[FeatureRow] = Field(default_factory=list, max_length=MAX_ITEMS)  # type: ignore[valid-type]
    table: FeatureTable | None = None
    market: Literal[MARKET_NAMES] = Field(default=DEFAULT_MARKET, description="the prop market to predict")
    systems: list[Literal[SYSTEMS]] | None = Field(default=None, description="default: every loaded system")

    @model_validator(mode="after")
    def _something_to_predict(self) -> PredictRequest:
        if not self.games and not self.rows and not (self.table and self.table.data):
            raise ValueError("give at least one item in games, rows or table")
        needed = MARKET_FEATURES[self.market]
        for i, row in enumerate(self.rows):
            given = row.model_fields_set
            missing = [name for name in needed if name not in given]
            if missing:
                raise ValueError(f"rows[{i}] lacks feature {', '.join(missing[:3])}"
                                 f"{' and others' if len(missing) > 3 else ''} of the {self.market} market: "
                                 f"send its {len(needed)} features, null where a value is unknown")
        if self.table is not None:
            columns = set(self.table.columns)
            missing = [name for name in needed if name not in columns]
            if missing:
                raise ValueError(f"table.columns lack feature {', '.join(missing[:3])}"
                                 f"{' and others' if len(missing) > 3 else ''} of the {self.market} market: "
                                 f"send its {len(needed)} features, null where a value is unknown")
        items = len(self.games) + len(self.rows) + (len(self.table.data) if self.table else 0)
        if items > MAX_ITEMS:
            raise ValueError(f"games, rows and table hold {items} items together; at most {MAX_ITEMS} per request")
        dates = len({g.game_date for g in self.games})
        if dates > MAX_DATES:
            raise ValueError(f"games name {dates} distinct game dates; at most {MAX_DATES} per request")
        return self


@dataclass
class DateRows:
    """A game date's feature rows as a matrix, with each player's row position."""

    x: np.ndarray
    positions: dict[int, int]
    game_ids: list[str]
    read_at: float


class StoreSaturated(RuntimeError):
    """As many warehouse reads run and wait as the worker takes: answered 503 with ``Retry-After``."""


class StoreGate:
    """At most ``reads`` warehouse reads at once and at most ``queue`` requests waiting for one; a
    request past both is refused at once rather than queued without end, so whatever else is in
    flight a request's cost stays bounded and the thread pool keeps threads for ``/health``.
    ``close`` (the worker stopping) sends the waiting ones away, so none starts a read after SIGTERM."""

    def __init__(self, reads: int, queue: int) -> None:
        self.reads, self.queue = reads, queue
        self._turns = threading.Condition()
        self._reading = self._waiting = 0
        self._closed = False

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._turns:
            if self._reading >= self.reads and self._waiting >= self.queue:
                raise StoreSaturated(f"{self._reading} feature-store reads run and {self._waiting} wait, the most "
                                     f"this worker takes; retry in {RETRY_AFTER_SECONDS} s")
            self._waiting += 1
            try:
                self._turns.wait_for(lambda: self._closed or self._reading < self.reads)
            finally:
                self._waiting -= 1
            if self._closed:
                raise StoreSaturated(f"the worker is stopping; retry in {RETRY_AFTER_SECONDS} s")
            self._reading += 1
        try:
            yield
        finally:
            with self._turns:
                self._reading -= 1
                self._turns.notify()

    def close(self) -> None:
        with self._turns:
            self._closed = True
            self._turns.notify_all()


class FeatureCache:
    """Feature rows of a game date, read once and kept ``CACHE_SECONDS``: a slate is asked for
    many times in an evening, and one read per request keeps a single prediction in milliseconds.
    At most ``CACHE_DATES`` dates are kept, so requests naming ever new dates cannot grow it.

    ``failure`` is the last read's error until a read succeeds: ``/health`` reports it."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self.gate = StoreGate(MAX_STORE_READS, MAX_STORE_QUEUE)
        self._dates: OrderedDict[dt.date, DateRows] = OrderedDict()
        self._lock = threading.Lock()
        self.failure: str | None = None

    def missing_store(self) -> str | None:
        """Why the store cannot be read at all, asked afresh each time (a stat): a deleted warehouse
        file is an outage, which no cached row may hide, and it ends when the file is back."""
        if self.warehouse.exists():
            return None
        return f"the warehouse {self.warehouse.url} does not exist (deleted, or never built): build it with `{REBUILD}`"

    def rows_of(self, wanted: dict[dt.date, set[int]]) -> dict[dt.date, DateRows]:
        """The rows of each wanted date, with one warehouse read (a turn of the gate) for every
        date not cached, cached too long ago, or lacking a wanted player (rows may have been
        written since the cached read: a slate). The request keeps what it read, and its dates
        become the most recently used, so the other requests' dates are the ones dropped: no
        request reads a date twice, however many dates the others bring."""
        missing = self.missing_store()
        if missing:
            raise WarehouseError(missing)
        now = time.monotonic()
        with self._lock:
            found = {day: self._dates[day] for day in wanted if day in self._dates}
        found = {day: rows for day, rows in found.items()
                 if now - rows.read_at <= CACHE_SECONDS and wanted[day] <= rows.positions.keys()}
        to_read = sorted(set(wanted) - set(found))
        fresh_reads = set(to_read)
        if to_read:
            with self.gate.turn():
                try:
                    frame = read_store(self.warehouse, dates=to_read)
                except WarehouseError as exc:
                    self.failure = str(exc)
                    raise
                self.failure = None
                by_date = dict(iter(frame.groupby("game_date", sort=False)))
                read_at = time.monotonic()
                for day in to_read:
                    rows = by_date.get(day, frame.iloc[:0])
                    found[day] = DateRows(rows[list(FEATURE_NAMES)].to_numpy(dtype=float),
                                          {int(p): i for i, p in enumerate(rows["player_id"])},
                                          rows["game_id"].tolist(), read_at)
        with self._lock:
            for day in wanted:
                if day in fresh_reads or day not in self._dates:  # another request may have dropped it since
                    self._dates[day] = found[day]
                self._dates.move_to_end(day)
            while len(self._dates) > CACHE_DATES:
                self._dates.popitem(last=False)
        return found

    @property
    def size(self) -> int:
        """Game dates held now."""
        return len(self._dates)

    def clear(self) -> None:
        with self._lock:
            self._dates.clear()


@dataclass
class Batch:
    """Rows to predict: the feature matrix, the names of its columns, the line of each row, and the
    keys the answer echoes. Plain arrays and lists: a request never builds a DataFrame. A table keeps
    its own columns (a model picks its features by name), so its numbers are copied once."""

    x: np.ndarray
    line: np.ndarray
    player_id: list[int | None]
    game_date: list[str | None]
    game_id: list[str | None]
    columns: tuple[str, ...] = FEATURE_NAMES

    def in_store_order(self) -> Batch:
        """The same rows with the columns in ``FEATURE_NAMES`` order (null where it has none)."""
        if self.columns == FEATURE_NAMES:
            return self
        x = np.full((len(self.x), len(FEATURE_NAMES)), np.nan)
        x[:, [FEATURE_POSITION[c] for c in self.columns]] = self.x
        return Batch(x, self.line, self.player_id, self.game_date, self.game_id)

    @staticmethod
    def join(parts: list[Batch]) -> Batch:
        if len({p.columns for p in parts}) > 1:
            parts = [p.in_store_order() for p in parts]
        return Batch(np.vstack([p.x for p in parts]), np.concatenate([p.line for p in parts]),
                     *([v for p in parts for v in getattr(p, key)] for key in ("player_id", "game_date", "game_id")),
                     columns=parts[0].columns)


@dataclass(frozen=True)
class LineColumns:
    """Where a market's line and the features derived from it sit among a batch's columns."""

    line: int
    gap: int
    avg10: int

    @staticmethod
    @functools.cache
    def of(market: str, columns: tuple[str, ...] = FEATURE_NAMES) -> LineColumns:
        m = MARKETS[market]
        return LineColumns(columns.index(m.line_feature), columns.index(f"line_minus_{m.name}_avg_last_10"),
                           columns.index(f"{m.name}_avg_last_10"))


def _with_line(x: np.ndarray, given: np.ndarray, at: LineColumns) -> tuple[np.ndarray, np.ndarray]:
    """The line a request gives is the line the models see: it replaces the stored one in the
    features that derive from it (in ``x``, which each caller has just built). Returns the features
    and each row's line: the given one, else the stored one (NaN where neither is)."""
    rows = ~np.isnan(given)
    if rows.any():
        x[rows, at.line] = given[rows]
        x[rows, at.gap] = given[rows] - x[rows, at.avg10]
    return x, x[:, at.line].copy()


def _lookup(cache: FeatureCache, games: list[PlayerGame], market: str) -> tuple[Batch | None, list[dict[str, Any]]]:
    at = LineColumns.of(market)
    wanted: dict[dt.date, set[int]] = {}
    for item in games:
        wanted.setdefault(item.game_date, set()).add(item.player_id)
    dates = cache.rows_of(wanted)
    found, keys, lines, missing = [], [], [], []
    for item in games:
        day = dates[item.game_date]
        position = day.positions.get(item.player_id)
        if position is None:
            missing.append({"player_id": item.player_id, "game_date": str(item.game_date),
                            "reason": f"no feature row for player_id {item.player_id} on {item.game_date}"})
            continue
        row = day.x[position]
        found.append(row)
        lines.append(math.nan if item.line is None else item.line)
        keys.append((item.player_id, str(item.game_date), day.game_ids[position]))
    if not found:
        return None, missing
    player_id, game_date, game_id = (list(k) for k in zip(*keys, strict=True))
    x, line = _with_line(np.vstack(found), np.array(lines, dtype=float), at)
    return Batch(x, line, player_id, game_date, game_id), missing


def _explicit(rows: list[BaseModel], market: str) -> Batch:
    """Explicit feature rows; a row's ``line`` stands in for its stored line of the market."""
    at = LineColumns.of(market)
    x = np.array([[getattr(r, name) for name in FEATURE_NAMES] for r in rows], dtype=float)
    return Batch(*_with_line(x, np.array([r.line for r in rows], dtype=float), at), [r.player_id for r in rows],
                 [None if r.game_date is None else str(r.game_date) for r in rows], [r.game_id for r in rows])


def table_batch(table: FeatureTable, market: str) -> Batch:
    """A table's rows, in its own columns (``benchmarks/serving.py`` times it as a stage of a batch)."""
    columns = tuple(table.columns)
    at = LineColumns.of(market, columns)
    x = np.array(table.data, dtype=float).reshape(len(table.data), len(columns))
    given = np.array(table.line if table.line is not None else [None] * len(x), dtype=float)
    return Batch(*_with_line(x, given, at), [None] * len(x), [None] * len(x), [None] * len(x), columns)


def predict_columns(models: ProductionModels, batch: Batch, market: Market,
                    systems: list[str] | None) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Per system of the market: its version and, as lists over the rows, the predicted outcome, the
    over/under call, its confidence and the probabilities of over, push and under (NaN where the row
    has no line, which ``answer_json`` writes as null). A system that abstains on a row (``ABSTAINS``:
    no line) answers NaN and PASS there.
    A system that raises or predicts a non-finite number otherwise is left out and named in the second
    dict, so one broken model never takes the others' answers down; so is one asked for that
    failed to load."""
    loaded = models.loaded
    asked = systems or list(SYSTEMS)
    chosen = [s for s in asked if market.registered_name(s) in loaded]
    chosen.sort(key=SYSTEMS.index)  # members first, so a combination can reuse them
    line = batch.line
    known: dict[tuple[str, str], np.ndarray] = {}
    out: dict[str, dict[str, Any]] = {}
    errors = {name: models.errors[market.registered_name(name)] for name in asked
              if market.registered_name(name) not in loaded and market.registered_name(name) in models.errors}
    for name in chosen:
        system = loaded[market.registered_name(name)]
        try:
            predicted = np.asarray(system.bundle.predict_matrix(batch.x, list(batch.columns), known), dtype=float)
            answered = np.isfinite(predicted) | abstained(system.bundle.system, predicted)
            if predicted.shape != (len(batch.x),) or not answered.all():
                raise ValueError("it predicted a non-finite number or the wrong count")
        except Exception as exc:
            errors[name] = f"v{system.version} failed to predict: {exc.__class__.__name__}: {str(exc)[:200]}"
            continue
        known[(name, system.version)] = predicted
        prices = priced(system.bundle.probabilities(predicted, line), line)
        out[name] = {"version": system.version,
                     "predicted_points": np.round(predicted, 3).tolist(),
                     "recommendation": prices["recommendation"].tolist(),
                     **{key: prices[key].tolist() for key in PROBABILITY_KEYS}}
    return out, errors


PROBABILITY_KEYS = ("p_over", "p_push", "p_under", "confidence")
ANSWER_KEYS = ("version", "predicted_points", "recommendation", *PROBABILITY_KEYS)


def predict_batch(columns: dict[str, dict[str, Any]], batch: Batch) -> list[dict]:
    """One answer per row: every answering system's prediction, led by the best of them that predicted
    the row (one that abstained there does not lead it)."""
    out = []
    for i, row_line in enumerate(batch.line.tolist()):
        systems_i = {name: {key: c[key] if key == "version" else c[key][i] for key in ANSWER_KEYS}
                     for name, c in columns.items()}
        item: dict[str, Any] = {"player_id": batch.player_id[i], "game_date": batch.game_date[i],
                                "game_id": batch.game_id[i], "line": row_line, "systems": systems_i}
        lead = next((s for s in LEAD_ORDER if s in columns and not math.isnan(systems_i[s]["predicted_points"])), None)
        if lead is not None:
            led = systems_i[lead]
            item.update(system=lead, **{key: led[key] for key in ANSWER_KEYS if key != "version"})
        out.append(item)
    return out


def answer_json(body: Any) -> bytes:
    """An answer of JSON types (NaN for "no number") as JSON. Encoded in Rust: a 500-row answer in
    0.05 ms (json.dumps took 0.18), not walked again by FastAPI's generic encoder. A NaN becomes
    null, the answer's "no number", never a NaN that no JSON parser reads, so the lists of
    ``predict_columns`` go out as NumPy made them, without a pass over each one to swap NaN for None."""
    return pydantic_core.to_json(body, inf_nan_mode="null")


def _shown(value: Any) -> Any:
    """A rejected value as an error may show it: short scalars as they are, NaN and Infinity as
    text (JSON has no such numbers), anything long or nested not at all."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float) and len(str(value)) <= SHOWN_VALUE_CHARS:
        return value
    if isinstance(value, str) and len(value) <= SHOWN_VALUE_CHARS:
        return value
    return _HIDDEN


_HIDDEN = object()


def validation_errors(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """A 422 body naming each bad field (its location and one sentence) and, when it is short, the
    value: never the request itself, which may be megabytes."""
    detail = []
    for error in errors[:MAX_REPORTED_ERRORS]:
        loc = list(error["loc"])
        field = ".".join(str(part) for part in loc[1:]) or "body"
        # a validator's own sentence, without the "Value error, " pydantic puts before it
        msg = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
        item = {"loc": loc, "type": error["type"], "msg": f"{field}: {msg}"}
        shown = _shown(error.get("input")) if error["type"] != "missing" else _HIDDEN
        if shown is not _HIDDEN:
            item.update(input=shown, msg=f"{field}: {msg} (got {json.dumps(shown)})")
        detail.append(item)
    return {"detail": detail, "error_count": len(errors)}


def parsed_in_one_pass(reads_store: Callable[[PredictRequest], bool]) -> type[APIRoute]:
    """A route class for ``POST /predict`` whose valid JSON bodies are parsed and validated in one
    pass (``model_validate_json``, in Rust) and answered on the event loop, without the thread pool.

    Why: under 32 concurrent clients FastAPI's own path (``json.loads``, then validating the Python
    objects, then a hop to a pool thread and back) cost more of the one GIL than the prediction
    itself. Anything that does not validate, or is not sent as ``application/json``, goes down
    FastAPI's path unchanged, so a refused request is answered exactly as before (the same 422
    naming the field, 413 before the body is read past its limit). A request that ``reads_store``
    (a feature-store read may wait seconds for a lock) still runs in the pool, so the loop never
    waits on DuckDB."""

    class ParsedInOnePass(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            standard = super().get_route_handler()
            endpoint = self.endpoint

            async def handle(request: Request) -> Response:
                if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "application/json":
                    return await standard(request)
                try:
                    parsed = PredictRequest.model_validate_json(await request.body())
                except ValidationError:
                    return await standard(request)  # the body is cached: FastAPI validates it again, names the error
                if reads_store(parsed):
                    return await run_in_threadpool(endpoint, parsed)
                return endpoint(parsed)

            return handle

    return ParsedInOnePass


@dataclass(frozen=True)
class Siblings:
    """The other processes serving the same port (``serve --workers N``). A reload asked of one is
    passed on to all, so every process serves a promotion at once, not at its next registry poll."""

    wake: threading.Event | multiprocessing.synchronize.Event  # set when another process was asked to reload
    tell: Callable[[], None]  # passes this process's reload on to the others


def create_app(models: ProductionModels | None = None, warehouse: Warehouse | None = None,
               token: str | None = None, poll_seconds: float = 30.0, siblings: Siblings | None = None) -> FastAPI:
    models = models or ProductionModels()
    cache = FeatureCache(warehouse or connect())
    token = token if token is not None else settings.worker_token()
    stop = threading.Event()
    wake = siblings.wake if siblings is not None else threading.Event()
    failing: dict[str, str] = {}  # systems whose last prediction failed, and why

    def reload_here() -> dict[str, str]:
        changes = models.refresh()
        cache.clear()
        failing.clear()
        return changes

    def poll() -> None:
        while not stop.is_set():
            asked = wake.wait(poll_seconds if poll_seconds > 0 else None)
            wake.clear()
            if stop.is_set():
                return
            if asked:
                reload_here()
            elif models.refresh():
                cache.clear()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        models.refresh()
        poller = threading.Thread(target=poll, name="registry-poll", daemon=True)
        if poll_seconds > 0 or siblings is not None:
            poller.start()
        yield
        stop.set()
        wake.set()
        cache.gate.close()

    app = FastAPI(title="NBA points prediction worker", lifespan=lifespan, max_body_size=MAX_BODY_BYTES,
                  description="Serves the production version of every prediction system in the MLflow registry.")
    app.state.models, app.state.cache = models, cache

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_errors(list(exc.errors())), status_code=422)

    authorised = bearer_guard(token, "worker")

    def problems() -> dict[str, str]:
        """What does not serve as it should: systems that failed to load or to predict, the
        registry, the warehouse. Shown on the open ``GET /`` and ``/health``: no password, no path."""
        found = {**models.errors}
        for name, error in list(failing.items()):
            found[name] = f"{found[name]}; {error}" if name in found else error
        missing_store = cache.missing_store()
        if missing_store or cache.failure:
            found["warehouse"] = missing_store or cache.failure
        return {name: settings.public_text(error) for name, error in found.items()}

    @app.get("/")
    def index() -> dict[str, Any]:
        """What is served: per market its systems (``markets``), and every registered model by name."""
        loaded = models.loaded
        per_market = {m: {s.system: s.describe() for s in loaded.values() if s.market == m} for m in MARKETS}
        return {"markets": per_market, "systems": {name: s.describe() for name, s in loaded.items()},
                "errors": problems(), "cached_dates": cache.size}

    @app.get("/health", responses=HEALTH_RESPONSES)
    def health() -> JSONResponse:
        serving = sorted(set(models.loaded) - set(failing))
        found = problems()
        if not serving:
            reason = "no system has a production version loaded" if not models.loaded else "no system can predict"
            if found:
                reason += ": " + "; ".join(f"{k} {v}" for k, v in found.items())
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        if found:
            return JSONResponse({"status": "degraded", "systems": serving, "errors": found})
        return JSONResponse({"status": "ok", "systems": serving})

    def answer(batch: Batch, market: Market,
               systems: list[str] | None) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        columns, errors = predict_columns(models, batch, market, systems)
        for name in columns:
            failing.pop(market.registered_name(name), None)
        failing.update({market.registered_name(name): error for name, error in errors.items()
                        if market.registered_name(name) in models.loaded})
        if errors and not columns:
            raise HTTPException(503, settings.public_text("no requested system could predict: " + "; ".join(
                f"{k} {v}" for k, v in errors.items())))
        return columns, {name: settings.public_text(error) for name, error in errors.items()}

    def predict(request: PredictRequest) -> Response:
        if not models.loaded:
            raise HTTPException(503, "no system has a production version loaded")
        market = MARKETS[request.market]
        if request.table is not None and not request.games and not request.rows:
            # a table in, columns out: one list per system, in the table's row order
            columns, errors = answer(table_batch(request.table, request.market), market, request.systems)
            body: dict[str, Any] = {"columns": columns, "errors": errors}
        else:
            parts, missing = [], []
            if request.games:
                try:
                    found, missing = _lookup(cache, request.games, request.market)
                except WarehouseError as exc:
                    raise HTTPException(503, settings.public_text(
                        f"the feature store cannot be read now: {exc}")) from None
                except StoreSaturated as exc:
                    raise HTTPException(503, str(exc), headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
                parts += [found] if found is not None else []
            if request.rows:
                parts.append(_explicit(request.rows, request.market))
            if request.table is not None and request.table.data:
                parts.append(table_batch(request.table, request.market))
            predictions, errors = [], {}
            if parts:
                batch = Batch.join(parts)
                columns, errors = answer(batch, market, request.systems)
                predictions = predict_batch(columns, batch)
            body = {"market": market.name, "predictions": predictions, "missing": missing, "errors": errors}
        return Response(answer_json(body), media_type="application/json")

    app.router.add_api_route("/predict", predict, methods=["POST"], responses=PREDICT_RESPONSES,
                             route_class_override=parsed_in_one_pass(lambda request: bool(request.games)))

    @app.post("/reload", dependencies=[Depends(authorised)], responses=AUTH)
    def reload() -> dict[str, Any]:
        changes = reload_here()
        if siblings is not None:
            siblings.tell()
        return {"changes": changes, "systems": {n: s.version for n, s in models.loaded.items()},
                "errors": dict(models.errors)}

    install_pages(app, cache.warehouse)
    offline_docs(app, unavailable=("/health", "/predict"))
    return app
