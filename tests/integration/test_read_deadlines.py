"""Issue 15 row 14: two slow connections sending one byte every 5 s stayed open past 60 s. Now a request's
headers and its body each have a deadline (``serving/deadlines.py``), on the worker and the coordinator,
with either of uvicorn's parsers: the server answers 408 and closes the connection.

Real servers on loopback, real sockets dripping one byte at a time; the deadlines are set to a second
so that each test takes a few. Nothing waits on a clock: the drip's pace is a ``select`` on the socket,
which returns at once when the server answers or closes.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving import deadlines
from serving.local import running
from serving.service import create_coordinator_app
from serving.worker import create_app
from warehouse import connect

DRIP_SECONDS = 0.2
HEALTH = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"


@pytest.fixture(params=[H11Protocol, HttpToolsProtocol], ids=["h11", "httptools"])
def short_deadlines(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadlines, "HEADER_SECONDS", 1.0)
    monkeypatch.setattr(deadlines, "BODY_SECONDS", 1.0)
    monkeypatch.setattr(deadlines, "HTTP", deadlines.with_read_deadlines(request.param))


# a request of each server that reads a body: the coordinator's once the token is checked
POSTS = {"worker": b"POST /predict HTTP/1.1\r\n",
         "coordinator": b"POST /backfill HTTP/1.1\r\nAuthorization: Bearer t\r\n"}


@dataclass(frozen=True)
class Server:
    address: tuple[str, int]
    post: bytes


@pytest.fixture(params=list(POSTS))
def server(request: pytest.FixtureRequest, short_deadlines: None, tmp_path: Path) -> Iterator[Server]:
    store = connect(f"duckdb:///{tmp_path / 'w.duckdb'}")
    app: FastAPI = (create_app(warehouse=store, token="t", poll_seconds=0) if request.param == "worker"
                    else create_coordinator_app("http://127.0.0.1:9", store, token="t"))
    with running(app) as base:
        host, port = base.removeprefix("http://").split(":")
        yield Server((host, int(port)), POSTS[request.param])


def drip(sock: socket.socket, data: bytes) -> int:
    """Send ``data`` a byte at a time, ``DRIP_SECONDS`` apart, until the server answers or closes; the
    bytes sent."""
    for sent in range(len(data)):
        try:
            sock.sendall(data[sent:sent + 1])
        except (BrokenPipeError, ConnectionResetError):
            return sent
        if select.select([sock], [], [], DRIP_SECONDS)[0]:
            return sent + 1
    return len(data)


def one_answer(sock: socket.socket) -> bytes:
    """One whole answer on a connection kept open: its head, then as many bytes as it says."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket's timeout bounds the wait)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_issue_15_row_14_headers_sent_a_byte_at_a_time_are_cut_off(server: Server) -> None:
    slow = b"GET /health HTTP/1.1\r\nHost: test\r\n" + b"X-Slow: " + b"x" * 200 + b"\r\n\r\n"
    with socket.create_connection(server.address, timeout=10) as sock:
        sent = drip(sock, slow)
        assert sent < len(slow), "the server waited for the whole drip"
        assert answer(sock).startswith(b"HTTP/1.1 408 Request Timeout\r\n")


def test_issue_15_row_14_a_kept_alive_connection_gets_the_deadline_for_each_request(server: Server) -> None:
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(HEALTH)
        assert one_answer(sock).split(b" ")[1] in (b"200", b"503")  # answered, and kept alive
        slow = b"GET /health HTTP/1.1\r\n" + b"X-Slow: " + b"x" * 200 + b"\r\n\r\n"
        assert drip(sock, slow) < len(slow)
        assert answer(sock).startswith(b"HTTP/1.1 408 ")


def test_issue_15_row_14_a_body_sent_a_byte_at_a_time_is_cut_off(server: Server) -> None:
    body = b'{"games": [' + b" " * 200 + b"]}"
    head = (server.post + b"Host: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(head)
        assert drip(sock, body) < len(body)
        assert answer(sock).startswith(b"HTTP/1.1 408 ")


def test_issue_15_row_14_a_request_sent_at_once_is_answered(server: Server) -> None:
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(HEALTH.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        assert answer(sock).split(b" ")[1] in (b"200", b"503")
