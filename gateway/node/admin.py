"""The node's admin listener: Prometheus ``/metrics`` and the management API ``/api/v1``.

Served on its own port (``metrics_listen``, loopback by default), never on the consumer
edge: information systems reach the consumer ports, and what the node's traffic looks
like is its operator's business. The gauges are computed here, at scrape time, from the
state the node keeps anyway (:class:`NodeCollector`); the counters and histograms that
move per exchange are in ``gateway.node.monitoring``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from aiohttp.http import HttpVersion
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.core.errors import AdminCode, AdminError, Code, GatewayError
from gateway.core.roles import NodePermission
from gateway.messagelog import LogStoreError
from gateway.net.http1server import HttpResponse
from gateway.net.httpversion import http1_only
from gateway.node.adminapi import (
    PREFIX,
    ApiRoute,
    KeysApi,
    ReadApi,
    authorized,
    error_json,
)
from gateway.node.admincerts import CertificatesApi
from gateway.node.adminchanges import ChangeApi
from gateway.node.adminclientcerts import ClientCertsApi
from gateway.node.adminlog import LogApi
from gateway.node.adminmaintenance import MaintenanceApi
from gateway.node.apikeys import KeyHolder, NodeKeyStore
from gateway.node.context import NodeContext
from gateway.node.monitoring import Monitoring
from gateway.node.openapi import openapi_document
from gateway.node.settings.manager import SettingsManager
from gateway.node.wire import error_response, version_refusal

log = logging.getLogger("gateway.node.admin")


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
        skew = ctx.timestamper.clock_skew
        yield GaugeMetricFamily(
            "gateway_clock_skew_seconds",
            "The node's clock minus the TSA's genTime at the last time stamp, round trip "
            "taken out (NaN before the first).",
            value=math.nan if skew is None else skew.total_seconds(),
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
            "gateway_settings_version",
            "Version of the node's settings in force (clients, services, access rights), "
            "as its log records them.",
            value=ctx.settings.version,
        )
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


def admin_app(context: NodeContext, settings: SettingsManager | None = None) -> web.Application:
    """The admin listener's application, on a port apart from the consumer edge (bound
    to loopback by default): ``/metrics`` open to Prometheus; the management API
    ``/api/v1`` and its older alias ``/operational`` only with an API key; the settings
    routes when given the node's ``settings`` manager. Creates the key store with its
    first system administrator key (``admin.key``) if there is none."""
    admin = Admin(context, context.monitoring)
    node = context.config.node
    store = NodeKeyStore(node.api_keys, node.admin_key)
    if store.ensure(context.clock.now()) is not None:
        log.warning(
            "%s: created the API key store %s and its first key in %s",
            context.id,
            node.api_keys,
            node.admin_key,
        )
    app = web.Application()
    app.middlewares.append(http1_only(_version_refusal))
    who = str(context.id)
    app.router.add_get("/metrics", _guarded(admin.handle_metrics, who))
    reads = ReadApi(context)
    routes = [
        *reads.routes(),
        *KeysApi(context, store).routes(),
        *MaintenanceApi(context).routes(),
        *CertificatesApi(context).routes(),
        *ClientCertsApi(context, settings).routes(),
        *LogApi(context).routes(),
        *(ChangeApi(settings).routes() if settings is not None else []),
    ]
    document: list[dict[str, Any]] = []

    async def openapi(request: web.Request, holder: KeyHolder) -> web.Response:
        return web.json_response(document[0])

    routes.append(
        ApiRoute(
            "GET",
            f"{PREFIX}/openapi.json",
            NodePermission.READ,
            "This document.",
            openapi,
            tags=("meta",),
        )
    )
    document.append(openapi_document(routes, who))
    for route in routes:
        app.router.add_route(route.method, route.path, authorized(store, context, route))
    operational = next(r for r in routes if r.path == f"{PREFIX}/operational")
    app.router.add_get("/operational", authorized(store, context, operational))
    app.router.add_route("*", PREFIX + "/{tail:.*}", not_found)
    return app


def _on_aiohttp(answer: HttpResponse) -> web.Response:
    """An answer of the node's wire format, as aiohttp's response (the admin port only)."""
    return web.Response(status=answer.status, body=answer.body, headers=CIMultiDict(answer.headers))


def _version_refusal(version: HttpVersion) -> web.StreamResponse:
    return _on_aiohttp(version_refusal(f"{version.major}.{version.minor}"))


def _guarded(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], who: str
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``wire.guarded`` for the admin port's aiohttp handlers: every refusal in X-Road's
    error format, never a traceback."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except GatewayError as refused:
            log.warning("%s refused (%s): %s", who, refused.detail, refused)
            return _on_aiohttp(error_response(refused, request.headers.get("Accept")))
        except web.HTTPException:
            raise
        except Exception:
            failure = GatewayError(Code.CP_INTERNAL_ERROR, "unexpected error; see the node's log")
            log.exception("%s internal error (%s)", who, failure.detail)
            return _on_aiohttp(error_response(failure, request.headers.get("Accept")))

    return wrapped


async def not_found(request: web.Request) -> web.Response:
    """A path or method the API does not have: ``admin.not_found``, as JSON."""
    return error_json(
        AdminError(AdminCode.NOT_FOUND, f"no {request.method} {request.path} in this API")
    )
