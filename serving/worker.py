"""The prediction worker: serves every system's production version over HTTP.

``GET /`` lists the loaded systems, ``GET /health`` says whether anything can be served,
``POST /predict`` answers (player_id, game_date) pairs from the feature store or explicit feature
rows, and ``POST /reload`` (bearer token) picks up a promotion or rollback at once; the worker also
polls the registry every ``poll_seconds``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

import settings
from contracts import ENSEMBLE_V1, SYSTEMS
from features.backfill import read_store
from features.definitions import FEATURE_NAMES
from registry.predictions import recommendation
from serving.auth import bearer_guard
from serving.models import LEAD_ORDER, ProductionModels
from warehouse import Warehouse, connect

MAX_ITEMS = 5000
CACHE_SECONDS = 60.0


class PlayerGame(BaseModel):
    model_config = ConfigDict(extra="forbid")
    player_id: int = Field(gt=0, description="NBA person id")
    game_date: dt.date
    line: float | None = Field(default=None, ge=0, le=150, description="points line; default: the stored one")


FeatureRow = create_model(
    "FeatureRow", __config__=ConfigDict(extra="forbid"),
    player_id=(int | None, Field(default=None, gt=0)), game_date=(dt.date | None, None),
    game_id=(str | None, None), line=(float | None, Field(default=None, ge=0, le=150)),
    **{name: (float | None, Field(...)) for name in FEATURE_NAMES},  # every feature required, null allowed
)


class FeatureTable(BaseModel):
    """Many feature rows at once, column names given once (like MLflow's ``dataframe_split``):
    the compact form for batches, validated as one block of numbers."""

    model_config = ConfigDict(extra="forbid")
    columns: list[str]
    data: list[list[float | None]] = Field(max_length=MAX_ITEMS)
    line: list[float | None] | None = Field(default=None, description="one points line (or null) per row")

    @model_validator(mode="after")
    def _shape(self) -> FeatureTable:
        missing = [c for c in FEATURE_NAMES if c not in self.columns]
        unknown = [c for c in self.columns if c not in FEATURE_NAMES]
        if missing or unknown:
            raise ValueError(f"columns must be the {len(FEATURE_NAMES)} features: "
                             + (f"missing {missing[:3]}" if missing else f"unknown {unknown[:3]}"))
        for i, row in enumerate(self.data):
            if len(row) != len(self.columns):
                raise ValueError(f"data[{i}] has {len(row)} values for {len(self.columns)} columns")
        if self.line is not None and len(self.line) != len(self.data):
            raise ValueError(f"line has {len(self.line)} values for {len(self.data)} rows")
        return self


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    games: list[PlayerGame] = Field(default_factory=list, max_length=MAX_ITEMS)
    rows: list[FeatureRow] = Field(default_factory=list, max_length=MAX_ITEMS)  # type: ignore[valid-type]
    table: FeatureTable | None = None
    systems: list[Literal[SYSTEMS]] | None = Field(default=None, description="default: every loaded system")

    @model_validator(mode="after")
    def _something_to_predict(self) -> PredictRequest:
        if not self.games and not self.rows and not (self.table and self.table.data):
            raise ValueError("give at least one item in games, rows or table")
        return self


@dataclass
class DateRows:
    """A game date's feature rows as a matrix, with each player's row position."""

    x: np.ndarray
    positions: dict[int, int]
    game_ids: list[str]


class FeatureCache:
    """Feature rows of a game date, read once and kept ``CACHE_SECONDS``: a slate is asked for
    many times in an evening, and one read per date keeps a single prediction in milliseconds."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self._dates: dict[dt.date, tuple[float, DateRows]] = {}

    def rows(self, day: dt.date, refresh: bool = False) -> DateRows:
        cached = self._dates.get(day)
        if cached is None or refresh or time.monotonic() - cached[0] > CACHE_SECONDS:
            frame = read_store(self.warehouse, day, day)
            rows = DateRows(frame[list(FEATURE_NAMES)].to_numpy(dtype=float),
                            {int(p): i for i, p in enumerate(frame["player_id"])}, frame["game_id"].tolist())
            cached = (time.monotonic(), rows)
            self._dates[day] = cached
        return cached[1]

    def clear(self) -> None:
        self._dates.clear()


@dataclass
class Batch:
    """Rows to predict: the feature matrix (columns in ``FEATURE_NAMES`` order), the line of each
    row, and the keys the answer echoes. Plain arrays and lists: a request never builds a DataFrame."""

    x: np.ndarray
    line: np.ndarray
    player_id: list[int | None]
    game_date: list[str | None]
    game_id: list[str | None]

    @staticmethod
    def join(parts: list[Batch]) -> Batch:
        return Batch(np.vstack([p.x for p in parts]), np.concatenate([p.line for p in parts]),
                     *([v for p in parts for v in getattr(p, key)] for key in ("player_id", "game_date", "game_id")))


LINE_COLUMN = FEATURE_NAMES.index("vegas_points_line")
LINE_GAP_COLUMN = FEATURE_NAMES.index("line_minus_avg_last_10")
AVG10_COLUMN = FEATURE_NAMES.index("points_avg_last_10")


def _with_line(x: np.ndarray, line: np.ndarray) -> np.ndarray:
    """The line a request gives is the line the models see: it replaces the stored one in the
    features that derive from it."""
    x = x.copy()
    given = ~np.isnan(line)
    x[given, LINE_COLUMN] = line[given]
    x[given, LINE_GAP_COLUMN] = line[given] - x[given, AVG10_COLUMN]
    return x


def _lookup(cache: FeatureCache, games: list[PlayerGame]) -> tuple[Batch | None, list[dict[str, Any]]]:
    found, keys, lines, missing = [], [], [], []
    refreshed: set[dt.date] = set()
    for item in games:
        day = cache.rows(item.game_date)
        position = day.positions.get(item.player_id)
        if position is None and item.game_date not in refreshed:
            # rows may have been written since the cached read (a slate): read the date once more
            refreshed.add(item.game_date)
            day = cache.rows(item.game_date, refresh=True)
            position = day.positions.get(item.player_id)
        if position is None:
            missing.append({"player_id": item.player_id, "game_date": str(item.game_date),
                            "reason": f"no feature row for player_id {item.player_id} on {item.game_date}"})
            continue
        row = day.x[position]
        found.append(row)
        lines.append(item.line if item.line is not None else row[LINE_COLUMN])
        keys.append((item.player_id, str(item.game_date), day.game_ids[position]))
    if not found:
        return None, missing
    player_id, game_date, game_id = (list(k) for k in zip(*keys, strict=True))
    lines_array = np.array(lines, dtype=float)
    return Batch(_with_line(np.vstack(found), lines_array), lines_array, player_id, game_date, game_id), missing


def _explicit(rows: list[BaseModel]) -> Batch:
    """Explicit feature rows; a row's ``line`` stands in for its stored ``vegas_points_line``."""
    x = np.array([[getattr(r, name) for name in FEATURE_NAMES] for r in rows], dtype=float)
    line = np.array([r.line for r in rows], dtype=float)
    line = np.where(np.isnan(line), x[:, LINE_COLUMN], line)
    return Batch(_with_line(x, line), line, [r.player_id for r in rows],
                 [None if r.game_date is None else str(r.game_date) for r in rows], [r.game_id for r in rows])


def _table(table: FeatureTable) -> Batch:
    order = [table.columns.index(name) for name in FEATURE_NAMES]
    x = np.array(table.data, dtype=float)[:, order]
    line = np.array(table.line if table.line is not None else [None] * len(x), dtype=float)
    line = np.where(np.isnan(line), x[:, LINE_COLUMN], line)
    return Batch(_with_line(x, line), line, [None] * len(x), [None] * len(x), [None] * len(x))


def predict_columns(models: ProductionModels, batch: Batch, systems: list[str] | None) -> dict[str, dict[str, Any]]:
    """Per system: its version and, as lists over the rows, predicted points, the over/under call
    and the probability of the over (null where the row has no line)."""
    loaded = models.loaded
    chosen = [s for s in (systems or list(SYSTEMS)) if s in loaded]
    chosen.sort(key=lambda s: s == ENSEMBLE_V1)  # members first, so the ensemble can reuse them
    line, has_line = batch.line, ~np.isnan(batch.line)
    known: dict[tuple[str, str], np.ndarray] = {}
    out: dict[str, dict[str, Any]] = {}
    for name in chosen:
        system = loaded[name]
        predicted = np.asarray(system.bundle.predict_matrix(batch.x, list(FEATURE_NAMES), known), dtype=float)
        known[(name, system.version)] = predicted
        p_over = np.where(has_line, np.round(system.bundle.p_over(predicted, line), 4), np.nan)
        out[name] = {"version": system.version, "predicted_points": np.round(predicted, 3).tolist(),
                     "recommendation": recommendation(predicted, line).tolist(),
                     "p_over": [None if v != v else v for v in p_over.tolist()]}
    return out


def predict_batch(models: ProductionModels, batch: Batch, systems: list[str] | None) -> list[dict]:
    """One answer per row: every requested system's prediction, led by the best loaded system."""
    columns = predict_columns(models, batch, systems)
    lead = next((s for s in LEAD_ORDER if s in columns), None)
    lines = [None if v != v else v for v in batch.line.tolist()]
    out = []
    for i, row_line in enumerate(lines):
        systems_i = {name: {"version": c["version"], "predicted_points": c["predicted_points"][i],
                            "recommendation": c["recommendation"][i], "p_over": c["p_over"][i]}
                     for name, c in columns.items()}
        item: dict[str, Any] = {"player_id": batch.player_id[i], "game_date": batch.game_date[i],
                                "game_id": batch.game_id[i], "line": row_line, "systems": systems_i}
        if lead is not None:
            led = systems_i[lead]
            item.update(system=lead, predicted_points=led["predicted_points"],
                        recommendation=led["recommendation"], p_over=led["p_over"])
        out.append(item)
    return out


def create_app(models: ProductionModels | None = None, warehouse: Warehouse | None = None,
               token: str | None = None, poll_seconds: float = 30.0) -> FastAPI:
    models = models or ProductionModels()
    cache = FeatureCache(warehouse or connect())
    token = token if token is not None else settings.worker_token()
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(poll_seconds):
            if models.refresh():
                cache.clear()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        models.refresh()
        poller = threading.Thread(target=poll, name="registry-poll", daemon=True)
        if poll_seconds > 0:
            poller.start()
        yield
        stop.set()

    app = FastAPI(title="NBA points prediction worker", lifespan=lifespan,
                  description="Serves the production version of every prediction system in the MLflow registry.")
    app.state.models, app.state.cache = models, cache

    authorised = bearer_guard(token, "worker")

    @app.get("/")
    def index() -> dict[str, Any]:
        return {"systems": {name: s.describe() for name, s in models.loaded.items()}, "errors": dict(models.errors)}

    @app.get("/health")
    def health() -> JSONResponse:
        if models.loaded:
            return JSONResponse({"status": "ok", "systems": sorted(models.loaded)})
        reason = "no system has a production version loaded"
        if models.errors:
            reason += ": " + "; ".join(f"{k} {v}" for k, v in models.errors.items())
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)

    @app.post("/predict")
    def predict(request: PredictRequest) -> Response:
        if not models.loaded:
            raise HTTPException(503, "no system has a production version loaded")
        if request.table is not None and not request.games and not request.rows:
            # a table in, columns out: one list per system, in the table's row order
            body: dict[str, Any] = {"columns": predict_columns(models, _table(request.table), request.systems)}
        else:
            parts, missing = [], []
            if request.games:
                found, missing = _lookup(cache, request.games)
                parts += [found] if found is not None else []
            if request.rows:
                parts.append(_explicit(request.rows))
            if request.table is not None and request.table.data:
                parts.append(_table(request.table))
            body = {"predictions": predict_batch(models, Batch.join(parts), request.systems) if parts else [],
                    "missing": missing}
        # plain json: the answer is already JSON types, FastAPI's generic encoder would walk it again
        return Response(json.dumps(body), media_type="application/json")

    @app.post("/reload", dependencies=[Depends(authorised)])
    def reload() -> dict[str, Any]:
        changes = models.refresh()
        cache.clear()
        return {"changes": changes, "systems": {n: s.version for n, s in models.loaded.items()},
                "errors": dict(models.errors)}

    return app
