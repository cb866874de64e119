"""The coordinator: predicts a whole game date through the worker and stores the predictions.

It takes the date's feature rows (already in the store, or built from a slate of games not yet
played), sends them to the worker over HTTP in batches, retries a failed batch, and writes
``player_prop_predictions`` by key: a rerun replaces the same rows, and a partial failure keeps
what finished and reports what did not.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd
from tqdm import tqdm

from contracts import FEATURE_STORE, PREDICTIONS_SCHEMA
from features.definitions import FEATURE_STORE_SCHEMA
from features.slate import build_slate
from features.store import read_store
from markets import MARKET_NAMES
from registry.predictions import PRICE_COLUMNS, prediction_rows
from warehouse import Warehouse

BATCH_SIZE = 200
log = logging.getLogger(__name__)
RETRIES = 3
BACKOFF_SECONDS = 0.5


class CoordinatorError(RuntimeError):
    """Nothing to predict, or no worker to predict with; the message says which."""


@dataclass
class DateRun:
    game_date: dt.date
    rows: int = 0
    written: int = 0
    failed_batches: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unserved: list[str] = field(default_factory=list)  # markets asked for that the worker serves no system of

    @property
    def ok(self) -> bool:
        return not self.failed_batches

    def render(self) -> str:
        text = f"{self.game_date}: {self.rows} player-games, {self.written} predictions written"
        if self.unserved:
            text += f"; no production model for {', '.join(self.unserved)}"
        if self.missing:
            text += f"; {len(self.missing)} without features"
        if self.failed_batches:
            text += f"; {len(self.failed_batches)} batch(es) failed: " + "; ".join(self.failed_batches)
        return text


def slate_features(warehouse: Warehouse, game_date: dt.date, slate: pd.DataFrame | None) -> pd.DataFrame:
    """The date's feature rows: built from ``slate`` (and stored, target null) when one is given."""
    if slate is not None:
        rows = build_slate(warehouse, slate)
        rows = rows[rows["game_date"] == game_date]
        if rows.empty:
            raise CoordinatorError(f"the slate has no games on {game_date}")
        warehouse.write(FEATURE_STORE_SCHEMA, rows)
        return rows
    rows = read_store(warehouse, game_date, game_date)
    if rows.empty:
        raise CoordinatorError(f"{FEATURE_STORE} has no rows for {game_date}: backfill that date or give a slate")
    return rows


def _post_with_retries(client: httpx.Client, url: str, payload: dict, retries: int, backoff: float) -> dict:
    last: Exception | None = None
    for attempt in range(retries):
        try:
            response = client.post(url, json=payload)
            if response.status_code < 500:
                response.raise_for_status()
                return response.json()
            last = httpx.HTTPStatusError(f"worker answered {response.status_code}: {response.text[:200]}",
                                         request=response.request, response=response)
        except httpx.TransportError as exc:
            last = exc
        if attempt + 1 < retries:
            log.debug("worker call %s failed (%s): retry %d of %d", url, last, attempt + 1, retries - 1)
            time.sleep(backoff * 2**attempt)  # give a restarting worker time to come back
    raise last  # type: ignore[misc]


def _numbers(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _rows_from_answer(answer: dict, source: str, created_at: pd.Timestamp | None) -> pd.DataFrame:
    """The worker's answer as ``player_prop_predictions`` rows, one per player-game and system: the
    call and its probabilities as the worker priced them."""
    items = answer["predictions"]
    if not items:
        return pd.DataFrame(columns=PREDICTIONS_SCHEMA.column_names)
    keys = pd.DataFrame({"game_date": [dt.date.fromisoformat(i["game_date"]) for i in items],
                         "game_id": [i["game_id"] for i in items], "player_id": [i["player_id"] for i in items]})
    line = _numbers([i["line"] for i in items])
    frames = []
    for system in items[0]["systems"]:
        answers = [i["systems"][system] for i in items]
        prices = {"line": line, "recommendation": np.array([a["recommendation"] for a in answers], dtype=object),
                  **{key: _numbers([a[key] for a in answers]) for key in PRICE_COLUMNS[2:]}}
        frames.append(prediction_rows(keys, answer["market"], system, answers[0]["version"],
                                      _numbers([a["predicted_points"] for a in answers]), prices, source,
                                      created_at))
    return pd.concat(frames, ignore_index=True)


def _served_markets(client: httpx.Client, markets: tuple[str, ...]) -> list[str]:
    """The markets of ``markets`` the worker serves at least one system of (its ``GET /``)."""
    response = client.get("/")
    response.raise_for_status()
    served = response.json().get("markets", {})
    return [m for m in markets if served.get(m)]


def predict_date(game_date: dt.date, worker_url: str, warehouse: Warehouse, slate: pd.DataFrame | None = None,
                 batch_size: int = BATCH_SIZE, source: str = "coordinator", retries: int = RETRIES,
                 backoff: float = BACKOFF_SECONDS, created_at: pd.Timestamp | None = None,
                 progress: bool = False, markets: tuple[str, ...] = MARKET_NAMES) -> DateRun:
    """Every player-game of the date, for each of ``markets`` the worker serves. ``progress`` draws a bar
    over the date's player-games (the command line's; a server's jobs run quiet)."""
    rows = slate_features(warehouse, game_date, slate)
    run = DateRun(game_date, rows=len(rows))
    log.info("predict %s: %d player-games through %s in batches of %d", game_date, len(rows), worker_url, batch_size)
    with (httpx.Client(base_url=worker_url, timeout=60.0) as client,
          tqdm(total=len(rows) * len(markets), desc=f"predict {game_date}", unit="player-game",
               disable=not progress) as bar):
        try:
            served = _served_markets(client, markets)
        except (httpx.HTTPError, ValueError) as exc:
            run.failed_batches.append(f"the worker at {worker_url} could not be asked what it serves: {exc}")
            return run
        run.unserved = [m for m in markets if m not in served]
        batches = [(m, first) for m in served for first in range(0, len(rows), batch_size)]
        bar.update(len(rows) * len(run.unserved))
        for market, first in batches:
            batch = rows.iloc[first:first + batch_size]
            payload = {"market": market,
                       "games": [{"player_id": int(p), "game_date": str(game_date)} for p in batch["player_id"]]}
            label = f"{market} rows {first}-{first + len(batch) - 1}"
            try:
                answer = _post_with_retries(client, "/predict", payload, retries, backoff)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("predict %s: %s failed after %d tries: %s", game_date, label, retries, exc)
                run.failed_batches.append(f"{label}: {exc}")
                continue
            finally:
                bar.update(len(batch))
            if market == served[0]:  # a player without a feature row lacks it for every market
                run.missing += [m["reason"] for m in answer["missing"]]
            frame = _rows_from_answer(answer, source, created_at)
            if len(frame):
                warehouse.write(PREDICTIONS_SCHEMA, frame)  # each finished batch is kept
                run.written += len(frame)
    return run
