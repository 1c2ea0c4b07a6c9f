"""How the sandbox runs one ``gateway`` process: its command line, its log file, the
wait until it answers, and its end.

Every process of the loopback federation (trust services, central, nodes, registries,
the portal) is ``python -m gateway ...`` with its output appended to one log file; a
:class:`Launch` records how it was started so that the demo's supervisor
(``supervisor.py``) can start it again the same way. Which processes run, and their
bookkeeping, are :class:`~gateway.sandbox.localnet.LocalNet`'s.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import httpx

_LOGS: weakref.WeakKeyDictionary[subprocess.Popen[bytes], Path] = weakref.WeakKeyDictionary()
"""The log file of each process :func:`spawn` started, for the error when one dies."""
_TAIL_BYTES = 4000

Env = tuple[tuple[str, str], ...]
"""Variables added to a process's environment, in order."""


@dataclass(frozen=True, slots=True)
class Launch:
    """How one process of the federation was started, to start it again the same way."""

    name: str
    """The process's name in reports and its log's file name (``node-05974040``)."""
    args: tuple[str, ...]
    """The ``gateway`` command line after ``python -m gateway``."""
    log: Path
    """The file its stdout and stderr go to (appended across restarts)."""
    env: Env = ()
    """Variables added to the harness's environment (the fault harness's faked clock)."""


def spawn(launch: Launch) -> subprocess.Popen[bytes]:
    """Start ``python -m gateway`` with ``launch.args``, stdout and stderr appended to
    ``launch.log``, unbuffered so the log is current when a test reads it."""
    launch.log.parent.mkdir(parents=True, exist_ok=True)
    with launch.log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "gateway", *launch.args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **dict(launch.env)},
        )
    _LOGS[proc] = launch.log
    return proc


def died(proc: subprocess.Popen[bytes], what: str) -> RuntimeError:
    """The error for a process that ended while it was waited for, with the end of its
    log when :func:`spawn` started it: a failed start in CI is read from that alone."""
    message = f"process for {what} exited with code {proc.returncode}"
    log = _LOGS.get(proc)
    if log is None:
        return RuntimeError(message)
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - _TAIL_BYTES))
            tail = f.read().decode("utf-8", "replace")
    except OSError as exc:
        tail = f"(its log {log} cannot be read: {exc})"
    return RuntimeError(f"{message}; the end of its log {log}:\n{tail}")


def end(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Stop ``proc`` if it runs: SIGTERM (a node drains and closes its log), SIGKILL if
    it has not ended within ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


START_TIMEOUT = 60.0
"""How long a started process may take to answer. A start takes a second or two, but
on a loaded two-core machine it has taken over 20 s; a process that dies fails the wait
at once, so only a start that hangs waits this long."""


def wait_http(
    url: str,
    proc: subprocess.Popen[bytes] | None = None,
    timeout: float = START_TIMEOUT,
    *,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Poll until ``url`` answers 200; fail early if the process died. ``verify``: the
    TLS context for an ``https`` URL (trusting a node's internal TLS certificate).

    One client for all the polls: a new one per poll would load the trusted roots each
    time, costing more CPU than the poll, while the process it waits for starts."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    # A fresh connection per poll, as before: a kept-alive one could outlive a restart.
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(timeout=1, verify=verify, limits=limits) as client:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise died(proc, url)
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout} s: {last}")
