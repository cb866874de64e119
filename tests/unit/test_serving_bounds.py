"""Bounds that keep the serving path answering (issue 9): a reader in the process that is writing
the warehouse does not wait for the write, and a Pub/Sub date that always fails is given up on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from contracts import PROP_LINES_SCHEMA
from serving.events import MAX_DELIVERY_ATTEMPTS, DateReady, PubSubBus
from tests.unit.test_events import FakeMessage, FakePublisher, FakeSubscriber
from warehouse import connect

DAY = dt.date(2025, 1, 10)


@pytest.mark.timeout(60)  # the old reader waited 120 s for this process's own write to end
def test_a_read_during_this_process_s_own_write_sees_the_last_commit_at_once(tmp_path: Path) -> None:
    store = connect(f"duckdb:///{tmp_path / 'w.duckdb'}")
    line = pd.DataFrame({"game_date": [DAY], "player_id": [1], "player_name": ["A"], "market": ["points"],
                         "bookmaker": ["b"], "line": [20.5], "over_price": [-110], "under_price": [-110],
                         "team": ["BOS"], "opponent": ["NYK"], "commence_time": [pd.Timestamp("2025-01-11T00:00Z")]})
    store.write(PROP_LINES_SCHEMA, line)
    writer = duckdb.connect(str(store.path))  # a write in progress, as a backfill thread holds it
    writer.execute("BEGIN TRANSACTION")
    writer.execute("DELETE FROM prop_lines")
    try:
        rows = store.read(PROP_LINES_SCHEMA)  # how fast: benchmarks/bounds.py
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert rows["line"].tolist() == [20.5]


class Redelivered(FakeMessage):
    """A message as Pub/Sub delivers it, with its own count of deliveries where the subscription
    has a dead-letter policy (None where it has not)."""

    def __init__(self, data: bytes, delivery_attempt: int | None = None) -> None:
        super().__init__(data)
        self.delivery_attempt = delivery_attempt


def always_fails(event: DateReady) -> None:
    raise RuntimeError("worker unreachable")


def subscribed(handler) -> tuple[PubSubBus, object]:
    subscriber = FakeSubscriber()
    bus = PubSubBus("P", "T", "S", publisher=FakePublisher(), subscriber=subscriber)
    bus.subscribe(handler)
    return bus, subscriber.subscriptions[-1][1]


def test_a_date_that_always_fails_is_given_up_after_the_last_attempt() -> None:
    bus, callback = subscribed(always_fails)
    deliveries = [Redelivered(DateReady(DAY).to_bytes()) for _ in range(MAX_DELIVERY_ATTEMPTS + 1)]
    for message in deliveries[:MAX_DELIVERY_ATTEMPTS]:
        callback(message)
    assert [m.nacked for m in deliveries[:MAX_DELIVERY_ATTEMPTS]] == [1] * (MAX_DELIVERY_ATTEMPTS - 1) + [0]
    assert deliveries[MAX_DELIVERY_ATTEMPTS - 1].acked == 1
    assert bus.failures[-1].startswith("2025-01-10: always_fails failed: RuntimeError: worker unreachable")
    assert bus.failures[-1].endswith(f"(attempt {MAX_DELIVERY_ATTEMPTS} of {MAX_DELIVERY_ATTEMPTS}; given up, acked)")
    callback(deliveries[-1])  # the same date published again later starts a new count
    assert deliveries[-1].nacked == 1


def test_pub_sub_s_own_delivery_count_is_honoured() -> None:
    _, callback = subscribed(always_fails)
    message = Redelivered(DateReady(DAY).to_bytes(), delivery_attempt=MAX_DELIVERY_ATTEMPTS)
    callback(message)
    assert (message.acked, message.nacked) == (1, 0)


def test_a_date_that_succeeds_after_failing_is_acked_and_forgotten() -> None:
    calls: list[dt.date] = []

    def flaky(event: DateReady) -> None:
        calls.append(event.game_date)
        if len(calls) != 2:  # fails, succeeds, fails
            raise RuntimeError("worker restarting")

    bus, callback = subscribed(flaky)
    first, second = Redelivered(DateReady(DAY).to_bytes()), Redelivered(DateReady(DAY).to_bytes())
    callback(first)
    callback(second)
    assert (first.nacked, second.acked) == (1, 1)
    third = Redelivered(DateReady(DAY).to_bytes())
    callback(third)  # a later failure of the date counts from one again
    assert bus.failures[-1].endswith(f"(attempt 1 of {MAX_DELIVERY_ATTEMPTS}; redelivered)")
