"""The node's admin listener: Prometheus ``/metrics`` and the owner's ``/operational``.

Served on its own port (``metrics_listen``, loopback by default), never on the consumer
edge: information systems reach the consumer ports, and what the node's traffic looks
like is its operator's business. The gauges are computed here, at scrape time, from the
state the node keeps anyway (:class:`NodeCollector`); the counters and histograms that
move per exchange are in ``gateway.node.monitoring``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from dataclasses import asdict

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.core.errors import Code, GatewayError
from gateway.messagelog import LogStoreError
from gateway.net.httpversion import http1_only
from gateway.node.context import NodeContext
from gateway.node.monitoring import Monitoring, query_bound
from gateway.node.wire import guarded, version_refusal


class NodeCollector(Collector):
    """The node's gauges, computed per scrape from its current state."""

    def __init__(self, context: NodeContext, monitoring: Monitoring) -> None:
        self._ctx = context
        self._monitoring = monitoring

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ctx = self._ctx
        now = ctx.clock.now()
        yield GaugeMetricFamily(
            "gateway_messagelog_queue_depth",
            "Units waiting for the message log's writer thread.",
            value=ctx.log.queue_depth,
        )
        backlog = ctx.log.backlog()
        yield GaugeMetricFamily(
            "gateway_timestamp_backlog_entries",
            "Log entries not yet covered by a timestamped tree head.",
            value=backlog.pending,
        )
        age = math.nan if backlog.last_stamp is None else (now - backlog.last_stamp)
        yield GaugeMetricFamily(
            "gateway_tree_head_age_seconds",
            "Age of the latest timestamped tree head (NaN before the first).",
            value=age if isinstance(age, float) else age.total_seconds(),
        )
        ocsp_age = GaugeMetricFamily(
            "gateway_ocsp_age_seconds",
            "Age (since thisUpdate) of the good OCSP response held for each own "
            "certificate (NaN while none is held).",
            labels=["certificate"],
        )
        expiry = GaugeMetricFamily(
            "gateway_certificate_expiry_days",
            "Days until each own certificate expires.",
            labels=["certificate"],
        )
        for own in ctx.own_ocsp.certificates:
            evidence = own.evidence
            ocsp_age.add_metric(
                [own.label],
                math.nan if evidence is None else (now - evidence.this_update).total_seconds(),
            )
            expiry.add_metric(
                [own.label], (own.cert.not_valid_after_utc - now).total_seconds() / 86_400
            )
        yield ocsp_age
        yield expiry
        serial, conf_age = math.nan, math.nan
        source = ctx.globalconf
        if source is not None:
            serial = float(source.current.conf.serial)
            if source.last_success is not None:
                conf_age = (now - source.last_success).total_seconds()
        yield GaugeMetricFamily(
            "gateway_globalconf_serial",
            "Serial of the global configuration in force (NaN with a fixed directory).",
            value=serial,
        )
        yield GaugeMetricFamily(
            "gateway_globalconf_age_seconds",
            "Seconds since the global configuration was last fetched and verified (NaN "
            "until the first refresh after start-up, or with a fixed directory).",
            value=conf_age,
        )
        try:
            alerts = float(ctx.log.store.witness_alert_count())
        except LogStoreError:
            alerts = math.nan
        yield GaugeMetricFamily(
            "gateway_witness_alerts",
            "Split views and refused tree heads of peers this node's witness recorded.",
            value=alerts,
        )
        up = GaugeMetricFamily(
            "gateway_peer_node_up",
            "1 while a peer node this node sent to is reachable, 0 while it is passed "
            "over after a failed connection.",
            labels=["node"],
        )
        latency = GaugeMetricFamily(
            "gateway_peer_node_latency_seconds",
            "Smoothed time from sending a message to a peer node to its reply.",
            labels=["node"],
        )
        for node, reachable, seconds in ctx.peers.snapshot():
            up.add_metric([str(node)], 1.0 if reachable else 0.0)
            latency.add_metric([str(node)], math.nan if seconds is None else seconds)
        yield up
        yield latency
        yield GaugeMetricFamily(
            "gateway_cluster_leader",
            "1 while this process runs the log's timestamper and witness for its node "
            "cluster (always on SQLite), else 0.",
            value=1.0 if ctx.leader else 0.0,
        )
        yield GaugeMetricFamily(
            "gateway_maintenance_mode",
            "1 while the node refuses new exchanges for maintenance, else 0.",
            value=1.0 if ctx.maintenance.enabled else 0.0,
        )
        yield GaugeMetricFamily(
            "gateway_exchanges_in_flight",
            "Exchanges admitted and not yet answered, both sides together (what a node in "
            "maintenance mode still has to finish).",
            value=ctx.maintenance.in_flight,
        )


class Admin:
    """The handlers of the admin listener."""

    def __init__(self, context: NodeContext, monitoring: Monitoring) -> None:
        self._ctx = context
        self._monitoring = monitoring
        monitoring.registry.register(NodeCollector(context, monitoring))

    async def handle_metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._monitoring.registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def handle_operational(self, request: web.Request) -> web.Response:
        """``GET /operational?since=&until=&client=``: the node's operational records,
        oldest first (``since`` and ``until`` RFC 3339, ``until`` exclusive)."""
        query = request.query
        bounds: dict[str, str | None] = {}
        for name in ("since", "until"):
            value = query.get(name)
            if value is not None:
                try:
                    value = query_bound(name, value)
                except ValueError as exc:
                    raise GatewayError(Code.BAD_REQUEST, str(exc)) from None
            bounds[name] = value
        client = query.get("client")
        store = self._ctx.log.store
        try:
            records = await asyncio.to_thread(
                store.operational_records,
                since=bounds["since"],
                until=bounds["until"],
                client=client,
            )
        except LogStoreError as exc:
            raise GatewayError(Code.CP_INTERNAL_ERROR, f"cannot read the records: {exc}") from None
        return web.json_response(
            {"node": str(self._ctx.id), "records": [asdict(r) for r in records]}
        )


def admin_app(context: NodeContext) -> web.Application:
    """The admin listener's application: ``/metrics`` and ``/operational``, on a port
    apart from the consumer edge (bound to loopback by default)."""
    admin = Admin(context, context.monitoring)
    app = web.Application()
    app.middlewares.append(http1_only(version_refusal))
    who = str(context.id)
    app.router.add_get("/metrics", guarded(admin.handle_metrics, provider=False, who=who))
    app.router.add_get("/operational", guarded(admin.handle_operational, provider=False, who=who))
    return app
