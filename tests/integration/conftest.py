"""A throw-away PostgreSQL server on loopback, for the team-deployment tests.

PostgreSQL refuses to run as root, so under root (CI, containers) the cluster is created and run as
the ``postgres`` user that Debian's package adds, in a temporary folder that user owns (pytest's own
temporary folders are private to the user running pytest). Without the binaries the tests skip with
the reason on a laptop, and fail in CI (``CI`` set), where ``.ci/run`` installs them.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest

from serving.local import free_port

SUPERUSER = "postgres"


def _postgres_bin() -> Path | None:
    """Debian keeps the server binaries off PATH, under /usr/lib/postgresql/VERSION/bin."""
    found = shutil.which("pg_ctl") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)),
                                           None)
    return Path(found).parent if found else None


@pytest.fixture(scope="session")
def postgres() -> Iterator[Callable[[str], str]]:
    """Start a cluster; yields ``database(name) -> URL``, which creates the database on first use. The URL
    names the driver (``postgresql+psycopg2://``): SQLAlchemy 2.1 would pick psycopg 3 for ``postgresql://``,
    with which MLflow's stage transition fails on PostgreSQL (it compares an integer column to a string)."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        missing = "PostgreSQL's server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql"
        if os.environ.get("CI"):
            pytest.fail(f"{missing}; CI must run the PostgreSQL tests (.ci/run installs it)", pytrace=False)
        pytest.skip(missing)
    as_root = os.geteuid() == 0
    run_as = {"user": SUPERUSER, "group": SUPERUSER, "extra_groups": []} if as_root else {}
    folder = Path(tempfile.mkdtemp(prefix="nba-props-pg-"))
    if as_root:
        shutil.chown(folder, SUPERUSER, SUPERUSER)
    data, port = folder / "data", free_port()
    base = f"{SUPERUSER}@127.0.0.1:{port}"
    created: set[str] = set()

    def database(name: str) -> str:
        if name not in created:
            connection = psycopg2.connect(f"postgresql://{base}/postgres")
            connection.autocommit = True  # CREATE DATABASE runs outside a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
            connection.close()
            created.add(name)
        return f"postgresql+psycopg2://{base}/{name}"

    try:
        subprocess.run([bin_dir / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8"],
                       check=True, capture_output=True, **run_as)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder} -F"
        subprocess.run([bin_dir / "pg_ctl", "-D", data, "-o", options, "-l", folder / "server.log", "-w", "-t", "60",
                        "start"], check=True, capture_output=True, **run_as)
        yield database
    finally:
        subprocess.run([bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True,
                       **run_as)
        shutil.rmtree(folder, ignore_errors=True)
