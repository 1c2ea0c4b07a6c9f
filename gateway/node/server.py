"""The security server: wiring, configuration refresh, the TLS switch, start and stop.

A node is two proxies over one :class:`~gateway.node.context.NodeContext`: the client
proxy (``clientproxy.py``) answers its own information systems on the consumer port,
the server proxy (``serverproxy.py``) answers peer nodes on the mutual-TLS port, and
both share the metadata services (``metadata.py``) and the wire format (``wire.py``).
The protocol's checks themselves are in ``gateway.core.protocol``. This module builds
the context at start-up (the checks that refuse keys and certificates peers would
refuse are in ``startup.py``), installs new global configuration, and starts and stops
the listeners and background tasks.

The consumer and peer ports run on the lean server (``gateway/net/http1server.py``,
route tables in ``routes.py``), which hands each handler the connection's transport and
so the TLS peer certificate (its ``ssl_object``); the provider decides who is talking
from that, never from a header. The admin port runs on aiohttp. See
docs/adr/0001-aiohttp-for-the-node.md and docs/adr/0068-lean-http-server-on-the-node-ports.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.conf.directory import Directory
from gateway.conf.globalconf import GlobalConf
from gateway.conf.tufclient import ConfigClient, Current, GlobalConfUnavailable
from gateway.core.encoding import format_time
from gateway.core.envelope import MAX_HEADER_FIELD
from gateway.core.ids import NodeId
from gateway.core.jws import SignatureVerifier
from gateway.messagelog import (
    MessageLog,
    MessageLogError,
    SignedHeadRecord,
    StoredStatus,
    open_log,
)
from gateway.messagelog.auditor import Auditor
from gateway.messagelog.leader import Leadership
from gateway.messagelog.policy import body_policy
from gateway.messagelog.timestamper import Timestamper
from gateway.messagelog.tracker import Tracker
from gateway.messagelog.witness import Witness, head_signer
from gateway.net.guard import GuardSettings, guarded_server, guarded_site
from gateway.net.http1server import Http1Server, Routes
from gateway.node.admin import admin_app
from gateway.node.clientproxy import ClientProxy
from gateway.node.clock import Clock, SystemClock
from gateway.node.cluster import NodeCluster
from gateway.node.config import ConfigError, NodeConfig
from gateway.node.context import Limits, NodeContext, TrustState
from gateway.node.federation import FederatedSource
from gateway.node.health import Health
from gateway.node.metadata import MetadataServices
from gateway.node.monitoring import Monitoring
from gateway.node.ocsp import OwnOcsp
from gateway.node.retention import RetentionJob
from gateway.node.routes import consumer_routes, peer_routes
from gateway.node.serverproxy import ServerProxy
from gateway.node.settings.manager import SettingsManager
from gateway.node.settings.source import settings_in_force
from gateway.node.startup import (
    check_auth_certificate,
    consumer_tls,
    load_signers,
    node_data_key,
    own_certificate,
    preloaded_replay_guard,
    unlock_keys,
)
from gateway.node.tls import client_context, server_context
from gateway.node.transport import PeerClient, RegistryClient
from gateway.pki.ocsp_cache import OcspCache
from gateway.pki.profiles import CertificateError

log = logging.getLogger("gateway.node")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where a started node listens (ports may have been chosen by the OS)."""

    consumer_url: str
    """The plain consumer port if it is served (some client uses ``http``), else the
    consumer TLS port."""
    peer_url: str
    consumer_tls_url: str | None = None
    """The consumer TLS port, if the internal TLS certificate is configured."""
    metrics_url: str | None = None
    """The admin listener (``/metrics``, ``/operational``), unless ``metrics_listen`` is ""."""


class Node:
    """One security server. ``start()`` binds both listeners; ``stop()`` drains and closes."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        clock: Clock | None = None,
        directory: Directory | None = None,
        sockets: Mapping[str, socket.socket] | None = None,
    ) -> None:
        self.config = config
        self._sockets = dict(sockets or {})  # bound by the parent of ``--workers``
        self.id: NodeId = config.node.node_id
        self.clock = clock or SystemClock()
        # Routing and trust: signed global configuration that a background task
        # refreshes (``directory`` fixes one instead, for tests that run a node in
        # process); either way read only through ``self.context.trust``.
        self.globalconf: FederatedSource[TrustState] | None = None
        self._passphrase = pw = unlock_keys(config)  # of the key files (docs/adr/0041)
        trust = self._bootstrap(directory)
        now = self.clock.now()
        signers, signing_chains = load_signers(config, trust.verifier, now, pw)
        auth_chain = check_auth_certificate(config, self.id, trust.directory, now, pw)
        # OCSP: peers' responses are checked through one bounded cache; this node's own
        # statuses are fetched in the background (started in start()).
        freshness = timedelta(seconds=trust.directory.parameters().ocsp_freshness_seconds)
        ocsp_cache = OcspCache(freshness)
        own = [own_certificate(f"authentication certificate of {self.id}", auth_chain, trust)]
        for member, chain in signing_chains.items():
            own.append(own_certificate(f"signing certificate of {member}", chain, trust))
        # The default follows the freshness window this node actually applies (the
        # directory's), not the one written in its own configuration file.
        refresh_seconds = config.node.ocsp_refresh_seconds
        refresh = freshness / 3 if refresh_seconds is None else timedelta(seconds=refresh_seconds)
        try:
            own_ocsp = OwnOcsp(
                str(self.id),
                own,
                ocsp_cache,
                self.clock,
                refresh,
                fetch_timeout=config.node.peer_connect_timeout_seconds,
                persist=self._keep_own_status,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        # The listening context is fixed at bind time; a changed set of trust roots is
        # switched in per handshake (see _select_server_context), so NEW connections
        # verify against the configuration applied last.
        self._server_ssl = trust.server_ssl
        if self.globalconf is not None:
            self._server_ssl.sni_callback = self._select_server_context
        message_log = open_log(
            config.node.log_location,
            clock=self.clock.now,
            body_policy=body_policy(config.logging.metadata_only(), config.logging.max_body_bytes),
            data_key=node_data_key(config),
            inline_commit=config.logging.inline_commit,
            body_file_bytes=config.logging.body_file_bytes,
        )
        tracker = Tracker(message_log.store, config.tracker.hidden_clients)
        settings = settings_in_force(config, message_log)
        problem = config.consumer_ports_problem(settings.settings.serves_plain_http())
        if problem is not None:
            raise ConfigError(f"node {self.id}: {problem}")
        client_certs, self._consumer_tls = consumer_tls(config, pw)
        limits = Limits(
            window=timedelta(seconds=config.node.message_window_seconds),
            max_body=config.node.max_body_bytes,
        )
        self.context = NodeContext(
            config=config,
            clock=self.clock,
            trust=trust,
            globalconf=self.globalconf,
            signers=signers,
            own_ocsp=own_ocsp,
            ocsp_cache=ocsp_cache,
            auth_ref=own[0].cert_ref,
            log=message_log,
            timestamper=Timestamper(
                message_log,
                lambda: self.context.trust.directory,
                str(self.id),
                self.clock,
                batch_size=config.node.timestamp_batch_size,
                tolerated_outage=timedelta(seconds=config.node.timestamp_failure_tolerance_seconds),
                timeout_seconds=config.node.timestamp_timeout_seconds,
                max_clock_skew=timedelta(seconds=config.node.max_clock_skew_seconds),
                sign_head=self._sign_head,
                sync=message_log.follow if Leadership.elects(config.node.log_location) else None,
            ),
            replay=preloaded_replay_guard(message_log, limits.window, now),
            settings=settings,
            tracker=tracker,
            limits=limits,
            client_certs=client_certs,
            key_passphrase=pw,
            monitoring=Monitoring(
                str(self.id),
                self.clock,
                message_log,
                retention=timedelta(days=config.node.opdata_retention_days),
            ),
        )
        log_context = self.context.log_context()
        self._head_signer = head_signer(log_context)
        self.settings = SettingsManager(self.context)
        """The one writer of the settings in force (clients, services, access rights)."""
        self.witness = Witness(log_context)
        self.auditor = Auditor(log_context, self.witness)
        self.retention = RetentionJob.for_node(self.context, config)  # ADR 0046
        self.cluster = NodeCluster(self.context, self.witness, self.retention, self.settings)
        self._runners: list[web.AppRunner] = []
        self._servers: list[tuple[asyncio.Server, Http1Server]] = []
        self._refresher: asyncio.Task[None] | None = None
        self._peer: PeerClient | None = None
        self._registry: RegistryClient | None = None
        self.endpoints: Endpoints | None = None
        self.bound: dict[str, list[tuple[str, int]]] = {}
        """The addresses each listener's sockets are bound to, by port name, once started."""

    # ------------------------------------------------------------------ shared parts

    @property
    def directory(self) -> Directory:
        """The directory of the configuration applied last (one attribute load)."""
        return self.context.trust.directory

    @property
    def verifier(self) -> SignatureVerifier:
        return self.context.trust.verifier

    @property
    def own_ocsp(self) -> OwnOcsp:
        return self.context.own_ocsp

    @property
    def log(self) -> MessageLog:
        return self.context.log

    @property
    def timestamper(self) -> Timestamper:
        return self.context.timestamper

    def _sign_head(self, document: bytes) -> SignedHeadRecord | None:
        """The timestamper's signer of tree heads (``head_signer`` over the log context,
        which exists once the node's context does)."""
        return self._head_signer(document)

    # ------------------------------------------------------------------ routing and trust

    def _bootstrap(self, directory: Directory | None) -> TrustState:
        """The trust state to start with: ``directory`` if given, else the signed global
        configuration (sets ``self.globalconf``); refuses to start without one."""
        config = self.config
        if directory is not None:
            return self._derive(directory)
        try:
            anchor = config.load_anchor()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        client = ConfigClient(
            anchor,
            config.globalconf.state_dir,
            fetch_timeout=config.globalconf.fetch_timeout_seconds,
        )
        self.globalconf = FederatedSource(client, self._derive_from, self.clock.now)
        try:
            return self.globalconf.bootstrap().state
        except GlobalConfUnavailable as exc:
            raise ConfigError(
                f"node {self.id} does not start: {exc}. Check that the anchor "
                f"{config.globalconf.anchor} is the instance's (root fingerprint "
                f"{anchor.fingerprint()}) and that {anchor.metadata_url} is reachable"
            ) from None

    def _derive(self, directory: Directory) -> TrustState:
        """Build every trust object from ``directory``; raises before anything changes."""
        roots = directory.trust_roots()
        cert, key = self.config.node.auth_cert, self.config.node.auth_key
        try:
            server_ssl = server_context(cert, key, roots, self._passphrase)
            client_ssl = client_context(cert, key, roots, self._passphrase)
        except (OSError, ssl.SSLError) as exc:
            raise CertificateError(
                f"cannot use the authentication certificate {cert} with the key {key}: {exc}"
            ) from None
        return TrustState(
            directory,
            SignatureVerifier(roots),
            frozenset(r.public_bytes(Encoding.DER) for r in roots),
            server_ssl,
            client_ssl,
        )

    def _derive_from(self, conf: GlobalConf) -> TrustState:
        directory = self.globalconf.federation.view(conf) if self.globalconf else conf.directory()
        if directory.node(self.id) is None:
            # Applied all the same: the instance decides; this node then serves nobody.
            log.error("global configuration serial %d does not list node %s", conf.serial, self.id)
        context: NodeContext | None = getattr(self, "context", None)  # None at bootstrap
        current = context.trust if context is not None else None
        state = self._derive(directory)
        if current is not None and current.roots_der == state.roots_der:
            # Same trust roots: keep the TLS contexts, so pooled connections stay valid.
            state = TrustState(
                directory, state.verifier, state.roots_der, current.server_ssl, current.client_ssl
            )
        return state

    def _select_server_context(
        self, sslobj: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        """Per TLS handshake: verify the client against the current trust roots."""
        current = self.context.trust.server_ssl
        if current is not context:
            sslobj.context = current

    def _install(self, candidate: Current[TrustState]) -> None:
        """Swap in a prepared configuration: one reference for routing and trust, plus
        the OCSP responders this node asks about its own certificates and the freshness
        window (plain attributes read per use; nothing else holds an old copy)."""
        assert self.globalconf is not None
        ctx = self.context
        self.globalconf.install(candidate)
        ctx.trust = candidate.state
        for own in ctx.own_ocsp.certificates:
            responders = tuple(ctx.directory.ocsp_responders(own.issuer))
            if responders:
                own.responders = responders
            else:
                log.error("global configuration lists no OCSP responder for %s", own.label)
        # The instance-wide freshness window applies to the next check of any response.
        freshness = timedelta(seconds=ctx.directory.parameters().ocsp_freshness_seconds)
        if freshness > ctx.own_ocsp.refresh_interval:
            ctx.ocsp_cache.freshness = freshness
        else:
            log.error(
                "global configuration sets ocsp_freshness_seconds to %g, not longer than "
                "this node's OCSP refresh interval; keeping %g",
                freshness.total_seconds(),
                ctx.ocsp_cache.freshness.total_seconds(),
            )

    async def _record_configuration(self, current: Current[TrustState]) -> bool:
        """Durably add ``current`` to the log's configuration history before it is
        installed, so every entry logged under it can be shown its signed version
        (docs/message-log.md 8.1), with the federated instances' versions its directory
        holds. False if that failed: the caller keeps the old one."""
        if not current.files:
            return True
        try:
            applied_at = format_time(self.clock.now())
            await self.log.record_configuration(current.files, current.conf.serial, applied_at)
            if self.globalconf is not None:  # and each federated instance's it rests on
                await self.globalconf.federation.record(self.log, applied_at)
        except MessageLogError:
            log.exception(
                "%s: cannot record global configuration serial %d; not applying it",
                self.id,
                current.conf.serial,
            )
            return False
        return True

    async def refresh_globalconf_once(self) -> bool:
        """One refresh: fetch and prepare in a thread, record it in the configuration
        history, install it on the loop. True if a new version was installed."""
        assert self.globalconf is not None
        candidate = await asyncio.to_thread(self.globalconf.refresh_blocking, self.clock.now())
        if candidate is None or not await self._record_configuration(candidate):
            return False
        self._install(candidate)
        return True

    async def _refresh_globalconf(self) -> None:
        """Every ``refresh_seconds``: fetch and prepare in a thread, install on the loop."""
        assert self.globalconf is not None and self.config.globalconf is not None
        interval = self.config.globalconf.refresh_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh_globalconf_once()
            except Exception:
                # The loop must outlive any bug: without it the node would expire.
                log.exception("%s: global configuration refresh crashed", self.id)

    # ------------------------------------------------------------------ lifecycle

    async def _keep_own_status(self, ref: str, status: StoredStatus | None) -> None:
        """Keep a good own OCSP answer in the log for the next start-up (or forget it)."""
        await self.log.keep_own_status(ref, status)

    async def start(self) -> Endpoints:
        self.log.start()
        if self.globalconf is not None and not await self._record_configuration(
            self.globalconf.current
        ):
            raise MessageLogError("the configuration in force could not be recorded")
        # Before listening: the answers kept before a restart, while still fresh, and
        # then the first fetch decide whether the node can serve at once. It starts
        # either way and fails closed until a status arrives.
        self.own_ocsp.restore(self.log.store.own_statuses(), self.clock.now())
        await self.own_ocsp.start()
        # Only then the timestamper and witness (in a cluster's leader): a backlog is
        # stamped at once, and its signed tree head needs this node's OCSP evidence.
        await self.cluster.start()
        # A new log records the settings node.toml bootstraps as version 1, under the
        # configuration just recorded and with the own OCSP evidence just fetched; it
        # waits for the next time-stamp like any entry.
        if await self.settings.bootstrap() is not None:
            log.info("%s: settings taken from node.toml, recorded as version 1", self.id)
        if self.globalconf is not None:
            self._refresher = asyncio.create_task(self._refresh_globalconf())
        max_body = self.context.limits.max_body
        self._peer = PeerClient(
            self.context.trust.client_ssl,
            connect_timeout=self.config.node.peer_connect_timeout_seconds,
            total_timeout=self.config.node.peer_timeout_seconds,
            max_body=max_body,
        )
        self._registry = RegistryClient(max_body=max_body)
        metadata = MetadataServices(self.context, self._registry)
        client_proxy = ClientProxy(self.context, self._peer)
        node = self.config.node
        # The admin listener first: once a consumer port answers, it answers too.
        metrics_url = None
        if node.metrics_listen:
            admin_api = admin_app(self.context, self.settings)
            admin = await self._listen(admin_api, node.metrics_listen, None, "admin")
            metrics_url = f"http://{admin}"
        # The consumer edge: the TLS port with the internal certificate, and the plain
        # port only if some hosted subsystem's connection type is http.
        tls_url = plain_url = None
        if self._consumer_tls is not None:
            app = self._consumer_routes(client_proxy, metadata)
            bound = await self._listen(
                app, node.consumer_tls_listen, self._consumer_tls.context, "consumer_tls"
            )
            tls_url = f"https://{bound}"
        if self.context.settings.settings.serves_plain_http():
            app = self._consumer_routes(client_proxy, metadata)
            plain_url = f"http://{await self._listen(app, node.consumer_listen, None)}"
        server_proxy = ServerProxy(self.context, self._registry, metadata)
        peer_app = peer_routes(str(self.id), server_proxy, self.auditor)
        peer = await self._listen(peer_app, node.peer_listen, self._server_ssl)
        consumer_url = plain_url or tls_url
        if consumer_url is None:
            raise ConfigError(f"node {self.id} serves its information systems on no port")
        self.endpoints = Endpoints(consumer_url, f"https://{peer}", tls_url, metrics_url)
        self.context.monitoring.start()
        log.info(
            "node %s: consumer %s, consumer TLS %s, peers %s",
            self.id,
            plain_url or "-",
            tls_url or "-",
            peer,
        )
        return self.endpoints

    async def _listen(
        self, app: web.Application | Routes, hostport: str, ssl: Any, what: str | None = None
    ) -> str:
        """Bind one port: the admin app on aiohttp, route tables on the lean server.
        Bodies are read as sent (``auto_decompress=False`` on aiohttp; the lean server
        never decodes): a body with ``Content-Encoding`` is signed, logged, limited and
        relayed in the coding the client chose, so the evidence is the bytes that were
        actually received. ``what`` names the port in ``bound`` and the log
        ("consumer_tls"); by default "peer" with a TLS context, "consumer" without."""
        host, _, port = hostport.rpartition(":")
        node = self.config.node
        limits = GuardSettings(
            header_timeout=node.header_timeout_seconds,
            body_timeout=node.body_timeout_seconds,
            write_timeout=node.write_timeout_seconds,
            max_connections=node.max_connections,
            max_connections_per_ip=node.max_connections_per_ip,
        )
        port_name = what or ("peer" if ssl is not None else "consumer")
        name = f"{self.id} {port_name.replace('_', ' ')} port"
        sock = self._sockets.get(port_name)
        server: Any
        if isinstance(app, Routes):
            lean = Http1Server(app, name=name, max_field=MAX_HEADER_FIELD)
            server = await guarded_server(
                lean, host, int(port), limits, ssl_context=ssl, backlog=1024, name=name, sock=sock
            )
            self._servers.append((server, lean))
        else:
            runner = web.AppRunner(
                app,
                access_log=None,
                max_field_size=MAX_HEADER_FIELD,
                handle_signals=False,
                auto_decompress=False,
            )
            await runner.setup()
            site = guarded_site(
                runner, host, int(port), limits, ssl_context=ssl, backlog=1024, name=name, sock=sock
            )
            await site.start()
            self._runners.append(runner)
            server = site._server
            assert server is not None
        sockets = getattr(server, "sockets", None) or []
        bound = [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in sockets]
        self.bound[port_name] = bound
        if port_name.startswith("consumer") and not all(_loopback(a) for a, _ in bound):
            # Whoever reaches a consumer port can call in the name of the clients this
            # node hosts that need no certificate (http, https-no-auth), and read
            # metadata; docs/deployment.md says which network it belongs on.
            log.warning(
                "%s listens on %s, beyond this host's loopback interface: only the "
                "information systems' network may reach it",
                name,
                ", ".join(f"{a}:{p}" for a, p in bound),
            )
        if port_name == "admin" and not all(_loopback(a) for a, _ in bound):
            # Anyone who reaches it reads the node's traffic records and metrics.
            log.warning(
                "%s listens on %s, beyond this host's loopback interface: only the "
                "operator's monitoring network may reach it",
                name,
                ", ".join(f"{a}:{p}" for a, p in bound),
            )
        bound_port = bound[0][1] if bound else int(port)
        return f"{host}:{bound_port}"

    async def stop(self) -> None:
        # Stop accepting on every port, then finish the requests in flight (a kept-alive
        # idle connection is closed at once), as aiohttp's runner does for the admin port.
        for server, _ in self._servers:
            server.close()
        for _, lean in reversed(self._servers):
            await lean.shutdown()
        self._servers.clear()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        await self.own_ocsp.stop()
        if self._peer is not None:
            await self._peer.close()
        if self._registry is not None:
            await self._registry.close()
        await self.context.monitoring.stop()  # its buffered records, before the log closes
        await self.cluster.stop()  # the timestamper, witness and retention, if this process led
        await self.log.close()

    # ------------------------------------------------------------------ routes

    def _consumer_routes(self, proxy: ClientProxy, metadata: MetadataServices) -> Routes:
        def globalconf_status() -> dict[str, Any] | None:
            if self.globalconf is None:
                return None
            return self.globalconf.status(self.clock.now())

        return consumer_routes(
            str(self.id), proxy, metadata, Health(self.context), self.auditor, globalconf_status
        )


# ---------------------------------------------------------------------- start-up checks


def _loopback(address: str) -> bool:
    """Whether a bound socket address is on the loopback interface only."""
    return ipaddress.ip_address(address.partition("%")[0]).is_loopback
