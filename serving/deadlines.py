"""Read deadlines on every connection of the worker and the coordinator: a request's headers, then its
body, must arrive within a bounded time, or the connection is answered 408 and closed.

Why here, in uvicorn's HTTP protocol: uvicorn closes an idle keep-alive connection after
``timeout_keep_alive``, but any byte received resets that timer, and neither of its parsers (h11,
httptools) bounds how long a request may take to arrive. A client sending one byte every few seconds
held its connection, its buffers and its place in the server for as long as it liked; a few hundred
such clients hold every file descriptor. The ASGI app cannot help: it is called once the headers are
complete. Both parsers set the connection's ``cycle`` when a request's headers are complete and clear
its ``more_body`` when its body is; the deadlines follow those two steps, whichever parser serves.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

HEADER_SECONDS = 10.0  # from a connection's opening, or a request's first byte, to the end of its headers
BODY_SECONDS = 30.0  # from the end of a request's headers to the end of its body (8 MiB at 280 KB/s)
_TEXT = b"the request did not arrive in time; send it at once"
TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
             b"content-length: " + str(len(_TEXT)).encode() + b"\r\n\r\n" + _TEXT)


class ReadDeadlines:
    """Mixed into a uvicorn HTTP protocol class (``with_read_deadlines``): one timer per connection,
    armed for the headers (on connecting, and on the first byte of each later request), re-armed for
    the body once the headers are in, disarmed once the body is in or the connection is gone."""

    _deadline: asyncio.TimerHandle | None = None
    _reading: Any = None  # the request whose body is awaited
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm(HEADER_SECONDS)

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        if self._deadline is None and (before is None or before.response_complete):
            self._arm(HEADER_SECONDS)  # the first byte of the next request on a kept-alive connection
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not before:  # a request's headers are in: its body has its own time
            self._reading = self.cycle
            self._arm(BODY_SECONDS)
        if self._reading is not None and (not self._reading.more_body or self._reading.response_complete):
            self._reading = None  # the whole request is in (or answered already)
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(TIMED_OUT)  # nothing of another answer is on the wire: this one can be
        self.transport.close()  # the app waiting for the body sees the client gone


def with_read_deadlines(protocol: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """``protocol`` (uvicorn's h11 or httptools class) with the read deadlines."""
    return type(f"{protocol.__name__}WithReadDeadlines", (ReadDeadlines, protocol), {})


HTTP = with_read_deadlines(AutoHTTPProtocol)  # uvicorn.Config(http=...): the parser uvicorn would pick itself
