"""The lock that makes promotions and rollbacks of one system take turns, wherever they run.

A promotion reads the champion, judges the challenger, then moves the alias and writes the history;
two at once would both judge against the same champion and leave a history that skips one. A lock on
one machine's disk only orders that machine's processes, so the lock lives where every promoter meets:

- ``PROMOTION_LOCK_URL=postgresql://...``: a PostgreSQL advisory lock held on one connection for the
  whole promotion; the server drops it when that connection ends, so a killed promoter frees it.
- no ``PROMOTION_LOCK_URL``, a tracking store in PostgreSQL: the same lock, in the tracking database.
- no ``PROMOTION_LOCK_URL``, a SQLite or file tracking store: a file lock next to the store, named from
  its resolved path, so ``sqlite:///mlruns/mlflow.db`` and its absolute spelling meet on one file.
- ``PROMOTION_LOCK_URL=file:///DIR``: a file lock in DIR, for a tracking server whose promotions all
  run on one machine (or on a shared disk with working ``flock``).
- anything else (a tracking server, MySQL, Databricks) is refused rather than locked on this machine:
  a per-machine lock there corrupts the history silently, and a warning in a CI log goes unread.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

FILE_LOCK_POLL_S = 0.05  # flock has no timed wait: retry a non-blocking try until the deadline
CONNECT_TIMEOUT_S = 10
POSTGRES_SCHEMES = ("postgresql", "postgres")


class LockError(RuntimeError):
    """The promotion lock cannot be configured, reached or taken in time; the message says which."""


def wait_seconds(value: str) -> float:
    """``PROMOTION_LOCK_WAIT`` as seconds: a bounded wait, never forever and never zero."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= 86_400:
        raise LockError(f"PROMOTION_LOCK_WAIT is {value[:40]!r}; expected seconds to wait, above 0 and at most 86400")
    return seconds


def redacted(url: str) -> str:
    """The URL without its password or query, fit for an error message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    user = f"{parts.username}@" if parts.username else ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _scheme(url: str) -> str:
    """The URL's scheme without a SQLAlchemy driver suffix (``postgresql+psycopg2`` -> ``postgresql``)."""
    return urlsplit(url).scheme.split("+")[0].lower()


def _local_store_path(tracking_uri: str) -> Path | None:
    """The resolved file or folder of a SQLite or file tracking store; None for any other store."""
    scheme = _scheme(tracking_uri)
    if scheme == "sqlite":
        location = tracking_uri.split("://", 1)[1].removeprefix("/").split("?")[0]
    elif scheme == "file":
        location = urlsplit(tracking_uri).path
    elif scheme == "":  # a bare path
        location = tracking_uri
    else:
        return None
    return Path(location).expanduser().resolve()


def promotion_lock(system: str, tracking_uri: str, lock_url: str | None,
                   wait_s: float) -> contextlib.AbstractContextManager[None]:
    """The lock for promotions of ``system`` against ``tracking_uri``, waiting at most ``wait_s`` seconds."""
    if lock_url:
        scheme = _scheme(lock_url)
        if scheme in POSTGRES_SCHEMES:
            return _advisory_lock(lock_url, system, wait_s)
        if scheme == "file":
            return _file_lock(Path(urlsplit(lock_url).path) / f"promote-{system}.lock", system, wait_s)
        raise LockError(f"PROMOTION_LOCK_URL is {redacted(lock_url)!r}; expected postgresql://USER@HOST/DB "
                        "or file:///DIR")
    if _scheme(tracking_uri) in POSTGRES_SCHEMES:
        return _advisory_lock(tracking_uri, system, wait_s)
    store = _local_store_path(tracking_uri)
    if store is None:
        raise LockError(f"promotions against the tracking store {redacted(tracking_uri)} need a lock that every "
                        "promoting machine shares: set PROMOTION_LOCK_URL to postgresql://USER@HOST/DB (the password "
                        "in PGPASSWORD or ~/.pgpass; or file:///DIR when every promotion runs on this machine)")
    return _file_lock(store.with_name(f"{store.name}.promote-{system}.lock"), system, wait_s)


def _busy(system: str, where: str, wait_s: float) -> LockError:
    return LockError(f"another promotion or rollback of {system} has held the lock at {where} for more than "
                     f"{wait_s:g} s: try again when it has finished")


@contextlib.contextmanager
def _file_lock(path: Path, system: str, wait_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(system, str(path), wait_s) from None
                time.sleep(FILE_LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def advisory_key(system: str) -> int:
    """A stable signed 64-bit key per system, the argument ``pg_advisory_lock`` takes."""
    digest = hashlib.sha256(f"nba-props promotion|{system}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def _advisory_lock(url: str, system: str, wait_s: float) -> Iterator[None]:
    import psycopg2  # only a team lock needs the driver
    from psycopg2 import errors

    libpq_url = url.replace(urlsplit(url).scheme + "://", "postgresql://", 1)
    try:
        connection = psycopg2.connect(libpq_url, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg2.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise LockError(f"cannot reach the promotion lock at {redacted(url)}: {reason[:200]}") from None
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = %s", (f"{max(1, round(wait_s * 1000))}ms",))
            try:
                cursor.execute("SELECT pg_advisory_lock(%s)", (advisory_key(system),))
            except errors.LockNotAvailable:
                raise _busy(system, redacted(url), wait_s) from None
        yield
    finally:
        connection.close()  # ending the session releases its advisory lock
