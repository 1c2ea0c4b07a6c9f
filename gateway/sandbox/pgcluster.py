"""A throwaway PostgreSQL cluster, from the installed server binaries.

The tests of the log's PostgreSQL backend and the fault harness's ``--postgres`` run
against a real server: ``initdb`` and ``pg_ctl`` from Debian's ``postgresql`` package
(``/usr/lib/postgresql/<version>/bin``, the highest version present; ``make
system-packages`` installs it). The cluster lives in a temporary directory, listens only
on a Unix socket there (no TCP port to collide with anyone's), trusts local connections
and is stopped and removed afterwards. ``initdb`` refuses to run as root, so as root the
server runs as the ``postgres`` user Debian's package creates.

It lives in the sandbox, not in ``tests/``, because the harness (``python -m
gateway.sandbox.faults --postgres``) needs it too and the sandbox never imports the
tests; ``tests/pg.py`` uses this one. Each database is cloned from a template that
already holds the log's schema (``CREATE DATABASE ... TEMPLATE``), which costs
milliseconds.
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
        result = subprocess.run(full, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603 - the installed pg binaries
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

    def _options(self) -> str:
        options = f"-c listen_addresses='' -c unix_socket_directories={self.socket_dir}"
        return options + " -c max_connections=200 -c fsync=on -c synchronous_commit=on"

    def start_server(self) -> None:
        """Start the server on the cluster's data (again, after ``stop_server``)."""
        self._pg_ctl("start")

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m mode``: what an operator's restart of the database does
        under load; every session ends (``fast``) and the clients must reconnect."""
        self._pg_ctl("restart", "-m", mode)

    def _pg_ctl(self, action: str, *extra: str) -> None:
        self._run(
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "server.log"),
                "-o",
                self._options(),
                "-w",
                *extra,
                action,
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
