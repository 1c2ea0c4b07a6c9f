"""Liveness and readiness of a node, for load balancers and orchestrators.

Liveness (``/health/live``) says only that the process's event loop answers: restart
the node when it does not. Readiness (``/health/ready``) says whether the node would
accept an exchange now: 200 when it would, 503 with the reasons while it would refuse
every exchange, so a load balancer stops sending it work that could only fail.

Each readiness check calls the function the exchange path calls, so the two cannot
disagree: maintenance mode (:class:`~gateway.node.maintenance.Maintenance`, unready for
as long as it refuses new exchanges, while liveness stays 200: the node is finishing
its exchanges in flight and must not be restarted for it), the configuration's expiry
(:meth:`NodeContext.check_globalconf`), the timestamping outage
(:meth:`Timestamper.check`), this node's own OCSP evidence
(:meth:`NodeContext.own_status`) and the message log's writer (:meth:`MessageLog.probe`, a
durable write through the same thread and transaction as an exchange's entries). A
check that fails carries the message the exchange would be refused with.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import asdict, dataclass

from gateway.core.errors import Code, GatewayError
from gateway.messagelog import MessageLogError
from gateway.net.http1server import HttpResponse, Request, json_response
from gateway.node.context import NodeContext
from gateway.node.ocsp import OwnStatusUnavailable

LOG_PROBE_TIMEOUT_SECONDS = 10.0
"""How long readiness waits for the log's probe write: longer than the writer's wait for
a database lock (5 s), so a locked database is reported with the log's own error; a
writer that answers slower than this would hold every exchange as long."""


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness check, as ``/health/ready`` lists it."""

    check: str
    ok: bool
    detail: str


class Health:
    """The ``/health/live`` and ``/health/ready`` handlers of one node's consumer port."""

    def __init__(self, context: NodeContext) -> None:
        self._context = context
        self._probe: asyncio.Task[None] | None = None

    def maintenance(self) -> Check:
        """Maintenance mode: new exchanges are refused while those in flight finish."""
        state = self._context.maintenance
        if not state.enabled:
            return Check("maintenance", True, state.describe())
        return Check(
            "maintenance", False, f"{state.describe()}; {state.in_flight} exchanges in flight"
        )

    def globalconf(self) -> Check:
        """Expired global configuration: every exchange is refused (X-Road does too)."""
        ctx = self._context
        try:
            ctx.check_globalconf(Code.CP_GLOBAL_CONF_OUTDATED)
        except GatewayError as exc:
            return Check("globalconf", False, exc.message)
        source = ctx.globalconf
        if source is None:
            return Check("globalconf", True, "a fixed directory, no global configuration source")
        current = source.current
        until = current.valid_until.isoformat(timespec="seconds")
        return Check("globalconf", True, f"serial {current.conf.serial}, valid until {until}")

    def ocsp(self) -> Check:
        """This node's own OCSP evidence for its authentication certificate and every
        signing certificate, as each exchange it sends or answers must carry it.

        Each certificate is asked on its own, so the detail names every one that is not
        usable, not only the first an exchange would stop at: their statuses were fetched
        at different moments and go stale at different moments.
        """
        ctx = self._context
        now = ctx.clock.now()
        refs = dict.fromkeys([ctx.auth_ref, *(s.cert_ref for s in ctx.signers.values())])
        failures: list[str] = []
        for ref in refs:
            try:
                ctx.own_ocsp.evidence(ref, now)
            except OwnStatusUnavailable as exc:
                failures.append(str(exc))
        if failures:
            return Check("ocsp", False, "; ".join(failures))
        return Check("ocsp", True, f"a fresh good status for each of {len(refs)} certificates")

    def settings(self) -> Check:
        """In a node cluster: the newest settings version another process recorded is in
        force here too (a revoke made elsewhere is not yet in force in this process)."""
        ctx = self._context
        if ctx.settings_behind:
            return Check("settings", False, ctx.settings_behind)
        return Check("settings", True, f"version {ctx.settings.version} in force")

    def timestamping(self) -> Check:
        """A TSA outage longer than the tolerated one (``timestamp_failure_tolerance_seconds``)."""
        try:
            self._context.timestamper.check(provider=False)
        except GatewayError as exc:
            return Check("timestamping", False, exc.message)
        if self._context.timestamper.failing:
            return Check(
                "timestamping",
                True,
                f"failing within the tolerated outage: {self._context.timestamper.last_error}",
            )
        return Check("timestamping", True, "within the tolerated outage")

    async def messagelog(self) -> Check:
        """A durable write through the log's writer, shared by concurrent readiness calls
        so a burst of probes costs one commit."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._context.log.probe())
        try:
            await asyncio.wait_for(asyncio.shield(self._probe), LOG_PROBE_TIMEOUT_SECONDS)
        except MessageLogError as exc:
            return Check("messagelog", False, f"the message log cannot be written: {exc}")
        except TimeoutError:
            return Check(
                "messagelog",
                False,
                f"the message log's writer did not commit a write within "
                f"{LOG_PROBE_TIMEOUT_SECONDS:g} s",
            )
        return Check("messagelog", True, "a write was committed")

    async def checks(self) -> list[Check]:
        """Every readiness check, in the order an exchange meets them."""
        return [
            self.maintenance(),
            self.globalconf(),
            self.settings(),
            self.timestamping(),
            self.ocsp(),
            await self.messagelog(),
        ]

    async def handle_ready(self, request: Request) -> HttpResponse:
        checks = await self.checks()
        ready = all(c.ok for c in checks)
        body = {
            "ready": ready,
            "node": str(self._context.id),
            "pid": os.getpid(),  # which of the node's worker processes answered
            "checks": [asdict(c) for c in checks],
        }
        return json_response(body, status=200 if ready else 503)

    async def handle_live(self, request: Request) -> HttpResponse:
        return json_response({"alive": True, "node": str(self._context.id)})
