"""Maintenance mode of one node: refuse new exchanges, let the ones in flight finish.

An operator who must restart, upgrade or move a node puts it in maintenance first. From
then on every new exchange, on either side, is refused at its very start with X-Road's
``maintenance_mode`` code (``server.clientproxy.maintenance_mode`` to the node's own
information systems, ``server.serverproxy.maintenance_mode`` to peer nodes, which relay
it to their clients), while every exchange already admitted runs to its end: it has a
request out at a registry, or a response whose log entries are being committed, and
cutting it would leave a caller without the answer a peer may already have logged.
:meth:`Maintenance.drained` tells when the last of them has finished, so the node can
then be stopped without failing anyone; readiness answers 503 meanwhile
(``gateway/node/health.py``) so a load balancer sends the work to another node.

Each process holds the one :class:`Maintenance` of its
:class:`~gateway.node.context.NodeContext`; every process of the node on one machine
(the workers of ``--workers N``) follows the state kept in the node's maintenance file,
which the admin API writes and which survives a restart (``maintenance_file.py``,
docs/adr/0059). The in-flight count is the process's own. Everything here runs on the
node's event loop; nothing is shared with other threads.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from gateway.core.errors import Code, GatewayError


class Maintenance:
    """Whether the node admits new exchanges, and how many it has in flight."""

    def __init__(self) -> None:
        self._since: datetime | None = None
        self._reason = ""
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._admissions: dict[Code, Admission] = {}

    @property
    def enabled(self) -> bool:
        return self._since is not None

    @property
    def since(self) -> datetime | None:
        """When maintenance began (``None`` while the node admits exchanges)."""
        return self._since

    @property
    def reason(self) -> str:
        """The operator's words, shown in every refusal and in readiness."""
        return self._reason

    @property
    def in_flight(self) -> int:
        """Exchanges admitted and not yet answered, on both sides of the node."""
        return self._in_flight

    def enter(self, reason: str, now: datetime) -> None:
        """Refuse new exchanges from now on. Entering again only replaces the reason:
        ``since`` stays the start of this maintenance, as an operator reads it."""
        if self._since is None:
            self._since = now
        self._reason = reason

    def leave(self) -> None:
        """Admit new exchanges again."""
        self._since = None
        self._reason = ""

    def follow(self, since: datetime | None, reason: str) -> None:
        """Take the state recorded for the whole node: in maintenance since ``since``
        (its own start, as every process reports it), or out of it for ``None``."""
        self._since = since
        self._reason = reason if since is not None else ""

    def describe(self) -> str:
        """What a refused caller and readiness are told: since when, and why."""
        if self._since is None:
            return "not in maintenance mode"
        why = f": {self._reason}" if self._reason else ""
        return f"the node is in maintenance mode since {self._since.isoformat()}{why}"

    def refusal(self, code: Code) -> GatewayError:
        """The error a new exchange gets while the node is in maintenance."""
        return GatewayError(code, self.describe())

    def admit(self, code: Code) -> Admission:
        """Count one exchange in flight for as long as the ``with`` block runs, or refuse
        it with ``code`` (on entering the block) while the node is in maintenance.

        The check and the count are one step on the event loop (no ``await`` between
        them), so an exchange is either refused or counted before :meth:`drained` can
        see zero: maintenance never cuts an exchange it admitted."""
        admission = self._admissions.get(code)
        if admission is None:
            admission = self._admissions[code] = Admission(self, code)
        return admission

    def _enter(self, code: Code) -> None:
        if self._since is not None:
            raise self.refusal(code)
        self._in_flight += 1
        self._idle.clear()

    def _exit(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def drained(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no exchange is in flight; whether none
        is. Exchanges admitted while waiting (maintenance off) are waited for too."""
        try:
            async with asyncio.timeout(timeout):
                while self._in_flight:
                    await self._idle.wait()
        except TimeoutError:
            return False
        return True


class Admission:
    """The ``with`` block of :meth:`Maintenance.admit`: one object per refusal code,
    reused by every exchange, since it holds no state of its own (a generator context
    manager would cost a generator and its frames per exchange)."""

    __slots__ = ("_code", "_mode")

    def __init__(self, mode: Maintenance, code: Code) -> None:
        self._mode = mode
        self._code = code

    def __enter__(self) -> None:
        self._mode._enter(self._code)

    def __exit__(self, *exc: object) -> None:
        self._mode._exit()
