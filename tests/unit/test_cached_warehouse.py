"""A warehouse holding the box scores in memory answers every read exactly as the backend does."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from contracts import BOX_SCORES_SCHEMA, PLAYERS_OUT_SCHEMA
from warehouse import Warehouse
from warehouse.base import Rebuild
from warehouse.cached import CachedTables


def reads(store: Warehouse) -> list[pd.DataFrame]:
    return [store.read(BOX_SCORES_SCHEMA),
            store.read(BOX_SCORES_SCHEMA, (dt.date(2024, 10, 23), dt.date(2024, 10, 24))),
            store.read(BOX_SCORES_SCHEMA, equals={"team": "BOS"}),
            store.read(BOX_SCORES_SCHEMA, dates=[dt.date(2024, 10, 25), dt.date(2024, 10, 22)]),
            store.read(BOX_SCORES_SCHEMA, (dt.date(2024, 10, 22), dt.date(2024, 10, 30)), {"win": True})]


def test_reads_after_writes_upserts_and_rebuilds_equal_the_backends(warehouse: Warehouse,
                                                                    box_2024_25: pd.DataFrame) -> None:
    box = box_2024_25[box_2024_25.game_date <= dt.date(2024, 10, 25)]
    first, later = box[box.game_date <= dt.date(2024, 10, 23)], box[box.game_date > dt.date(2024, 10, 23)]
    cached = CachedTables(warehouse, BOX_SCORES_SCHEMA)
    assert cached.count(BOX_SCORES_SCHEMA) == 0 and cached.read(BOX_SCORES_SCHEMA).empty
    cached.write(BOX_SCORES_SCHEMA, later)  # a later day first: the held rows keep the backend's order
    cached.write(BOX_SCORES_SCHEMA, first)
    corrected = first.head(3).assign(points=[50, 51, 52])  # rows written again replace theirs by key
    cached.write(BOX_SCORES_SCHEMA, corrected)
    for mine, backend in zip(reads(cached), reads(warehouse), strict=True):
        assert len(mine)
        pd.testing.assert_frame_equal(mine, backend)
    assert cached.count(BOX_SCORES_SCHEMA) == len(box)
    cached.write(BOX_SCORES_SCHEMA, first.head(1), rebuild=Rebuild("game_id", "points"))
    # a rebuild removes what the backend decides: the rows are read again
    for mine, backend in zip(reads(cached), reads(warehouse), strict=True):
        pd.testing.assert_frame_equal(mine, backend)
    # a table it does not hold is the backend's
    assert cached.read(PLAYERS_OUT_SCHEMA).empty and cached.count(PLAYERS_OUT_SCHEMA) == 0
