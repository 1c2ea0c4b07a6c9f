"""A throwaway PostgreSQL cluster for the tests, from the installed server binaries.

The tests of the log's PostgreSQL backend run against a real server: ``initdb`` and
``pg_ctl`` from Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``,
the highest version present; ``make system-packages`` installs it). The cluster lives in
a temporary directory, listens only on a Unix socket there (no TCP port to collide with
anyone's), trusts local connections and is stopped and removed afterwards. ``initdb``
refuses to run as root, so as root the server runs as the ``postgres`` user Debian's
package creates.

Each test gets a database of its own, cloned from a template that already holds the
log's schema (``CREATE DATABASE ... TEMPLATE``), which costs milliseconds.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import pytest

POSTGRESQL_ROOT = Path("/usr/lib/postgresql")
_TEMPLATE = "gateway_template"


def server_binaries() -> Path | None:
    """The ``bin`` directory of the highest installed PostgreSQL version, if any."""
    if not POSTGRESQL_ROOT.is_dir():
        return None
    versions = [
        p
        for p in POSTGRESQL_ROOT.iterdir()
        if re.fullmatch(r"\d+", p.name) and (p / "bin" / "initdb").exists()
    ]
    if not versions:
        return None
    return max(versions, key=lambda p: int(p.name)) / "bin"


class PgCluster:
    """One running cluster on a Unix socket in a temporary directory."""

    def __init__(self, binaries: Path) -> None:
        self._bin = binaries
        self._counter = itertools.count(1)
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            pwd.getpwnam(self._user)  # KeyError: no postgres user to run the server as
        self.root = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.socket_dir.mkdir()
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.superuser = self._user or pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, command: Sequence[str]) -> None:
        full = list(command)
        if self._user is not None:
            full = ["runuser", "-u", self._user, "--", *full]
        result = subprocess.run(full, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(full)} failed: {result.stdout}{result.stderr}")

    def start(self) -> None:
        self._run(
            [
                str(self._bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.superuser,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ]
        )
        self.start_server()

    def start_server(self) -> None:
        """Start the server on the cluster's data (again, after ``stop_server``)."""
        options = f"-c listen_addresses='' -c unix_socket_directories={self.socket_dir}"
        options += " -c max_connections=200 -c fsync=on -c synchronous_commit=on"
        self._run(
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "server.log"),
                "-o",
                options,
                "-w",
                "start",
            ]
        )

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server, keeping the data: what an operator's restart does first
        (``fast`` ends every session; ``immediate`` is a crash, recovered at the start)."""
        self._run([str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def stop(self) -> None:
        """Stop without a shutdown checkpoint (``immediate``): the cluster is deleted
        next, and flushing every test database first would only cost time."""
        try:
            self._run(
                [str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        """A libpq URL for ``database`` over the cluster's socket."""
        return (
            f"postgresql://{quote(self.superuser)}@/{database}"
            f"?host={quote(str(self.socket_dir), safe='')}"
        )

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(statement)

    def prepare_template(self) -> None:
        """A database holding the log's schema, created by ``gateway db upgrade``'s code."""
        from gateway.messagelog.migrations import upgrade

        self._admin(f"CREATE DATABASE {_TEMPLATE}")
        upgrade(self.url(_TEMPLATE))

    def fresh_database(self, *, empty: bool = False) -> str:
        """The URL of a new database: a clone of the migrated template, or empty."""
        name = f"log_{os.getpid()}_{next(self._counter)}"
        template = "template0" if empty else _TEMPLATE
        self._admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)


CENTRAL_BACKENDS = ("sqlite", "postgresql")
"""The params of a fixture that makes a central authority, once per registry backend."""


def central_database(request: pytest.FixtureRequest) -> str | None:
    """For a fixture parametrized by :data:`CENTRAL_BACKENDS`: None (the central keeps its
    registry in ``central.sqlite``) or a new empty PostgreSQL database, which ``gateway
    central init --database-url`` migrates."""
    if request.param == "sqlite":
        return None
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.fresh_database(empty=True)
