"""The backfill-to-predictions trigger: the event's wire form, the in-process bus, and the Pub/Sub
adapter at its client boundary (no emulator is reachable, so fake clients record the calls)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from serving.events import (
    DATE_READY,
    DateReady,
    EventError,
    InProcessBus,
    PubSubBus,
    bus_from_url,
)

D1, D2, D3 = dt.date(2025, 1, 1), dt.date(2025, 1, 2), dt.date(2025, 1, 3)
WAIT = 10.0  # an upper bound for a drain, never a sleep


# --- the event ----------------------------------------------------------------------------------

def test_date_ready_round_trips_through_json() -> None:
    data = DateReady(D1).to_bytes()
    assert json.loads(data) == {"game_date": "2025-01-01", "event": DATE_READY}
    assert DateReady.from_bytes(data) == DateReady(D1)


def test_a_pandas_timestamp_from_the_backfill_becomes_a_date() -> None:
    assert DateReady(pd.Timestamp("2025-01-01")).game_date == D1


@pytest.mark.parametrize(("data", "expected"), [
    (b'{"game_date": "2025-13-01"}', "'2025-13-01'"),
    (b'{"game_date": null}', "None"),
    (b'{"event": "feature-store-date-ready"}', "no game_date"),
    (b"not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
])
def test_bad_messages_raise_an_event_error_naming_the_field_and_value(data: bytes, expected: str) -> None:
    with pytest.raises(EventError) as info:
        DateReady.from_bytes(data)
    assert expected in str(info.value)
    assert isinstance(info.value, ValueError)


def test_invalid_month_names_game_date_and_the_value() -> None:
    with pytest.raises(EventError, match=r"game_date.*2025-13-01"):
        DateReady.from_bytes(b'{"game_date": "2025-13-01"}')


# --- the in-process bus -------------------------------------------------------------------------

@pytest.fixture
def bus() -> Iterator[InProcessBus]:
    bus = InProcessBus()
    yield bus
    bus.close()


def test_every_handler_gets_every_event_in_order(bus: InProcessBus) -> None:
    first: list[dt.date] = []
    second: list[dt.date] = []
    bus.subscribe(lambda e: first.append(e.game_date))
    bus.subscribe(lambda e: second.append(e.game_date))
    for day in (D1, D2, D3):
        bus.publish(DateReady(day))
    assert bus.drain(WAIT)
    assert first == second == [D1, D2, D3]
    assert bus.failures == []


def test_a_failing_handler_is_recorded_and_later_events_still_arrive(bus: InProcessBus) -> None:
    seen: list[dt.date] = []

    def flaky(event: DateReady) -> None:
        if event.game_date == D1:
            raise RuntimeError("worker unreachable")
        seen.append(event.game_date)

    bus.subscribe(flaky)
    bus.publish(DateReady(D1))
    bus.publish(DateReady(D2))
    assert bus.drain(WAIT)
    assert seen == [D2]
    assert len(bus.failures) == 1
    assert "2025-01-01" in bus.failures[0] and "worker unreachable" in bus.failures[0]
    assert bus.running


def test_publish_does_not_wait_for_a_slow_handler(bus: InProcessBus) -> None:
    release, started = threading.Event(), threading.Event()
    done: list[dt.date] = []

    def slow(event: DateReady) -> None:
        started.set()
        release.wait(WAIT)
        done.append(event.game_date)

    bus.subscribe(slow)
    bus.publish(DateReady(D1))
    assert started.wait(WAIT)
    bus.publish(DateReady(D2))  # returns while the handler is still held on D1
    assert done == []
    assert not bus.drain(0.01)  # the held handler is not finished, so draining cannot succeed
    release.set()
    assert bus.drain(WAIT)
    assert done == [D1, D2]


def test_close_delivers_what_was_published_then_stops_the_thread() -> None:
    bus = InProcessBus()
    seen: list[dt.date] = []
    bus.subscribe(lambda e: seen.append(e.game_date))
    thread = bus._thread
    assert thread is not None and thread.daemon and thread.is_alive()
    bus.publish(DateReady(D1))
    bus.close()
    assert not thread.is_alive() and not bus.running
    assert seen == [D1]
    with pytest.raises(RuntimeError, match="closed"):
        bus.publish(DateReady(D2))
    bus.close()  # idempotent


def test_the_thread_starts_on_first_subscribe_only() -> None:
    bus = InProcessBus()
    bus.publish(DateReady(D1))
    assert not bus.running
    assert not bus.drain(0.01)  # nobody listens yet, so nothing can finish
    seen: list[dt.date] = []
    bus.subscribe(lambda e: seen.append(e.game_date))
    thread = bus._thread
    bus.subscribe(lambda e: None)
    assert bus._thread is thread  # one worker thread, however many handlers
    assert bus.drain(WAIT)
    assert seen == [D1]
    bus.close()


# --- the Pub/Sub adapter ------------------------------------------------------------------------

class FakeFuture:
    def __init__(self) -> None:
        self.timeouts: list[float | None] = []
        self.cancelled = False

    def result(self, timeout: float | None = None) -> str:
        self.timeouts.append(timeout)
        return "message-id-1"

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class FakeTransport:
    closed = False

    def close(self) -> None:
        self.closed = True


class FakePublisher:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []
        self.futures: list[FakeFuture] = []
        self.stopped = False
        self.transport = FakeTransport()

    def publish(self, topic: str, data: bytes, **attrs: str) -> FakeFuture:
        self.calls.append((topic, data, attrs))
        self.futures.append(FakeFuture())
        return self.futures[-1]

    def stop(self) -> None:
        self.stopped = True


class FakeSubscriber:
    def __init__(self) -> None:
        self.subscriptions: list[tuple[str, Any]] = []
        self.streams: list[FakeFuture] = []
        self.closed = False

    def subscribe(self, subscription: str, callback: Any) -> FakeFuture:
        self.subscriptions.append((subscription, callback))
        self.streams.append(FakeFuture())
        return self.streams[-1]

    def close(self) -> None:
        self.closed = True


class FakeMessage:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.acked = self.nacked = 0

    def ack(self) -> None:
        self.acked += 1

    def nack(self) -> None:
        self.nacked += 1


@pytest.fixture
def clients() -> tuple[FakePublisher, FakeSubscriber]:
    return FakePublisher(), FakeSubscriber()


@pytest.fixture
def pubsub(clients: tuple[FakePublisher, FakeSubscriber]) -> PubSubBus:
    publisher, subscriber = clients
    return PubSubBus("P", "T", "S", publisher=publisher, subscriber=subscriber)


def _callback(subscriber: FakeSubscriber, handler: Any, bus: PubSubBus) -> Any:
    bus.subscribe(handler)
    path, callback = subscriber.subscriptions[-1]
    assert path == "projects/P/subscriptions/S"
    return callback


def test_publish_sends_topic_path_json_and_attributes_and_waits(
        pubsub: PubSubBus, clients: tuple[FakePublisher, FakeSubscriber]) -> None:
    publisher, _ = clients
    pubsub.publish(DateReady(D1))
    [(topic, data, attrs)] = publisher.calls
    assert topic == "projects/P/topics/T"
    assert json.loads(data) == {"game_date": "2025-01-01", "event": DATE_READY}
    assert attrs == {"event": DATE_READY, "game_date": "2025-01-01"}
    assert publisher.futures[0].timeouts == [30]


def test_a_delivered_message_is_decoded_handled_then_acked(
        pubsub: PubSubBus, clients: tuple[FakePublisher, FakeSubscriber]) -> None:
    _, subscriber = clients
    order: list[str] = []
    message = FakeMessage(DateReady(D2).to_bytes())
    message.ack = lambda: order.append("ack")  # type: ignore[method-assign]
    callback = _callback(subscriber, lambda e: order.append(f"handled {e.game_date}"), pubsub)
    callback(message)
    assert order == ["handled 2025-01-02", "ack"]
    assert pubsub.failures == []


def test_a_malformed_message_is_acked_and_recorded(
        pubsub: PubSubBus, clients: tuple[FakePublisher, FakeSubscriber]) -> None:
    _, subscriber = clients
    handled: list[DateReady] = []
    callback = _callback(subscriber, handled.append, pubsub)
    message = FakeMessage(b'{"game_date": "2025-13-01"}')
    callback(message)
    assert (message.acked, message.nacked) == (1, 0)
    assert handled == []
    [failure] = pubsub.failures
    assert "game_date" in failure and "2025-13-01" in failure


def test_a_handler_error_nacks_for_redelivery(
        pubsub: PubSubBus, clients: tuple[FakePublisher, FakeSubscriber]) -> None:
    _, subscriber = clients

    def broken(event: DateReady) -> None:
        raise RuntimeError("worker unreachable")

    callback = _callback(subscriber, broken, pubsub)
    message = FakeMessage(DateReady(D1).to_bytes())
    callback(message)
    assert (message.acked, message.nacked) == (0, 1)
    [failure] = pubsub.failures
    assert "2025-01-01" in failure and "worker unreachable" in failure


def test_close_cancels_the_streaming_pull_and_closes_the_clients(
        pubsub: PubSubBus, clients: tuple[FakePublisher, FakeSubscriber]) -> None:
    publisher, subscriber = clients
    pubsub.subscribe(lambda e: None)
    pubsub.publish(DateReady(D1))
    pubsub.close()
    assert subscriber.streams[0].cancelled
    assert subscriber.closed
    assert publisher.stopped and publisher.transport.closed


# --- choosing a bus -----------------------------------------------------------------------------

@pytest.mark.parametrize("url", [None, ""])
def test_no_url_means_no_bus(url: str | None) -> None:
    assert bus_from_url(url) is None


def test_inprocess_url() -> None:
    bus = bus_from_url("inprocess")
    assert isinstance(bus, InProcessBus)
    bus.close()


def test_pubsub_url_builds_the_paths() -> None:
    bus = bus_from_url("pubsub://my-proj/my-topic/my-sub")
    assert isinstance(bus, PubSubBus)
    assert bus.topic_path == "projects/my-proj/topics/my-topic"
    assert bus.subscription_path == "projects/my-proj/subscriptions/my-sub"


@pytest.mark.parametrize("url", ["kafka://x", "pubsub://proj/topic", "pubsub://proj//sub", "pubsub://a/b/c/d",
                                 "InProcess"])
def test_other_urls_are_rejected_naming_the_url_and_the_accepted_forms(url: str) -> None:
    with pytest.raises(EventError) as info:
        bus_from_url(url)
    message = str(info.value)
    assert repr(url) in message and "inprocess" in message and "pubsub://PROJECT/TOPIC/SUBSCRIPTION" in message
