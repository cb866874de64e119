"""The trigger from the feature backfill to predictions: "this game date's features are ready".

The old system published a Pub/Sub message when Phase 4 (the feature store) finished a date, and
that message started Phase 5 (predictions) for the date. The platform keeps that shape behind one
small interface, :class:`EventBus`, so the backfill never knows who listens:

* :class:`InProcessBus` (the default) runs the listeners on a background thread of the same
  process, so one machine needs no cloud account and no broker, and a slow prediction run never
  holds up the backfill that announced the date;
* :class:`PubSubBus` carries the same events over Google Cloud Pub/Sub, for users who outgrow one
  machine and run the backfill and the predictor apart.

:func:`bus_from_url` picks one from a URL, so the choice is configuration, not code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import queue
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Protocol

DATE_READY = "feature-store-date-ready"
PUBLISH_TIMEOUT_SECONDS = 30.0
MAX_DELIVERY_ATTEMPTS = 5  # a date whose predictions fail this often is given up on (acked and recorded)

log = logging.getLogger(__name__)

Handler = Callable[["DateReady"], None]


class EventError(ValueError):
    """An event or a bus URL that cannot be used; the message names the field and the value."""


@dataclass(frozen=True)
class DateReady:
    """Every feature row of ``game_date`` is committed, so predictions for it can be made."""

    game_date: dt.date

    def __post_init__(self) -> None:
        # pandas hands the backfill Timestamps (datetime subclasses): keep the calendar date only, so
        # the wire form is always YYYY-MM-DD and equal events compare equal.
        if isinstance(self.game_date, dt.datetime):
            object.__setattr__(self, "game_date", self.game_date.date())
        elif not isinstance(self.game_date, dt.date):
            raise EventError(f"game_date must be a date, got {self.game_date!r}")

    def to_bytes(self) -> bytes:
        return json.dumps({"game_date": self.game_date.isoformat(), "event": DATE_READY}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> DateReady:
        """Decode a message; anything unreadable raises :class:`EventError` so a bus can drop it on
        purpose instead of crashing its listener."""
        try:
            payload = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EventError(f"{DATE_READY} message is not JSON ({exc}): {bytes(data)[:200]!r}") from exc
        if not isinstance(payload, dict) or "game_date" not in payload:
            raise EventError(f"{DATE_READY} message has no game_date field: {payload!r}")
        value = payload["game_date"]
        try:
            game_date = dt.date.fromisoformat(value)
        except (TypeError, ValueError) as exc:
            raise EventError(f"{DATE_READY} message has game_date {value!r}, expected YYYY-MM-DD") from exc
        return cls(game_date)


class EventBus(Protocol):
    """What the backfill publishes to and the predictor subscribes to, whatever carries it."""

    def publish(self, event: DateReady) -> None: ...

    def subscribe(self, handler: Handler) -> None: ...

    def close(self) -> None: ...


def _describe(handler: Handler) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


class InProcessBus:
    """Events delivered on one daemon thread of this process, in the order they were published.

    One thread (not one per event) keeps predictions for successive dates from running at once
    against the same worker and warehouse. A failing handler is recorded in :attr:`failures` and
    the thread goes on, so one bad date does not silence every later one.
    """

    _STOP = object()

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._handlers: list[Handler] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # published events whose handlers have not all finished
        self._thread: threading.Thread | None = None
        self._closed = False
        self.failures: list[str] = []

    def publish(self, event: DateReady) -> None:
        """Enqueue and return at once: the backfill must not wait for predictions."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the event bus is closed; {event.game_date} was not published")
            self._pending += 1
        self._queue.put(event)

    def subscribe(self, handler: Handler) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the event bus is closed; cannot subscribe")
            self._handlers.append(handler)
            if self._thread is None:  # started lazily: a bus nobody listens to costs no thread
                self._thread = threading.Thread(target=self._run, name="event-bus", daemon=True)
                self._thread.start()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every event published so far has been handled; False if ``timeout`` ran out
        first (or nobody subscribed, so nothing will ever handle them)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Deliver what was already published, then stop the thread and wait for it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(self._STOP)
            if thread is not threading.current_thread():  # a handler closing its own bus must not self-join
                thread.join()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is self._STOP:
                return
            with self._lock:
                handlers = list(self._handlers)
            for handler in handlers:
                try:
                    handler(event)
                except Exception as exc:  # a listener's bug must not stop later dates
                    failure = f"{event.game_date}: {_describe(handler)} failed: {type(exc).__name__}: {exc}"
                    log.exception("event handler failed for %s", event.game_date)
                    with self._lock:
                        self.failures.append(failure)
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()


class PubSubBus:
    """The same events on Google Cloud Pub/Sub, for a backfill and a predictor on different machines.

    A handler error nacks the message so Pub/Sub redelivers it (the prediction may succeed once the
    worker is back), up to ``MAX_DELIVERY_ATTEMPTS`` deliveries of a date: then it is acked and the
    give-up recorded, so a date that always fails is not redelivered forever. The attempt is Pub/Sub's
    own count where the subscription has a dead-letter policy, else this process's count per date. A
    message that cannot be decoded is acked and recorded, since redelivering it would fail the same
    way forever.
    """

    def __init__(self, project: str, topic: str, subscription: str, publisher: Any | None = None,
                 subscriber: Any | None = None) -> None:
        from google.cloud import pubsub_v1  # imported here: the in-process default never needs gRPC

        self.project, self.topic, self.subscription = project, topic, subscription
        self.topic_path = pubsub_v1.PublisherClient.topic_path(project, topic)
        self.subscription_path = pubsub_v1.SubscriberClient.subscription_path(project, subscription)
        self._publisher = publisher
        self._subscriber = subscriber
        self._streams: list[Any] = []
        self._lock = threading.Lock()
        self._attempts: dict[dt.date, int] = {}  # failed deliveries per date, forgotten once it is acked
        self.failures: list[str] = []

    @property
    def publisher(self) -> Any:
        # created on first use, so a subscribe-only process never opens a publisher (and vice versa)
        if self._publisher is None:
            from google.cloud import pubsub_v1

            self._publisher = pubsub_v1.PublisherClient()
        return self._publisher

    @property
    def subscriber(self) -> Any:
        if self._subscriber is None:
            from google.cloud import pubsub_v1

            self._subscriber = pubsub_v1.SubscriberClient()
        return self._subscriber

    def publish(self, event: DateReady) -> None:
        """Wait for Pub/Sub to accept the message, so a backfill that reports success really
        announced its dates."""
        future = self.publisher.publish(self.topic_path, data=event.to_bytes(), event=DATE_READY,
                                        game_date=str(event.game_date))
        future.result(timeout=PUBLISH_TIMEOUT_SECONDS)

    def subscribe(self, handler: Handler) -> None:
        def callback(message: Any) -> None:
            try:
                event = DateReady.from_bytes(message.data)
            except EventError as exc:
                self._record(f"{self.subscription_path}: dropped malformed message: {exc}")
                message.ack()
                return
            try:
                handler(event)
            except Exception as exc:
                attempt = self._failed_attempt(event.game_date, getattr(message, "delivery_attempt", None))
                failure = f"{event.game_date}: {_describe(handler)} failed: {type(exc).__name__}: {exc}"
                if attempt < MAX_DELIVERY_ATTEMPTS:
                    self._record(f"{failure} (attempt {attempt} of {MAX_DELIVERY_ATTEMPTS}; redelivered)")
                    message.nack()  # Pub/Sub retries the date later
                    return
                self._record(f"{failure} (attempt {attempt} of {MAX_DELIVERY_ATTEMPTS}; given up, acked)")
            with self._lock:
                self._attempts.pop(event.game_date, None)
            message.ack()

        stream = self.subscriber.subscribe(self.subscription_path, callback=callback)
        with self._lock:
            self._streams.append(stream)

    def close(self) -> None:
        with self._lock:
            streams, self._streams = self._streams, []
        for stream in streams:
            stream.cancel()
            with contextlib.suppress(futures.CancelledError, futures.TimeoutError):
                stream.result(timeout=PUBLISH_TIMEOUT_SECONDS)  # wait for the pull to shut down
        if self._subscriber is not None:
            self._subscriber.close()
        if self._publisher is not None:
            self._publisher.stop()  # PublisherClient has no close(): stop() flushes, then drop the channel
            self._publisher.transport.close()

    def _failed_attempt(self, game_date: dt.date, delivery_attempt: int | None) -> int:
        with self._lock:
            counted = self._attempts.get(game_date, 0) + 1
            self._attempts[game_date] = counted
        return max(counted, delivery_attempt or 0)

    def _record(self, failure: str) -> None:
        log.error("%s", failure)
        with self._lock:
            self.failures.append(failure)


_ACCEPTED = '"inprocess" or "pubsub://PROJECT/TOPIC/SUBSCRIPTION" (or empty for no bus)'


def bus_from_url(url: str | None) -> EventBus | None:
    """The bus an operator configured: none, in-process, or Pub/Sub."""
    if not url:
        return None
    if url == "inprocess":
        return InProcessBus()
    prefix = "pubsub://"
    if url.startswith(prefix):
        parts = url[len(prefix):].split("/")
        if len(parts) == 3 and all(parts):
            return PubSubBus(*parts)
    raise EventError(f"event bus URL {url!r} is not understood; expected {_ACCEPTED}")
