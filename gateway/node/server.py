"""The security server: an X-Road REST ``r1`` consumer edge and a provider side for peers.

Both run on aiohttp's server because it hands the application the TLS peer certificate
(the transport's ``ssl_object``); the provider decides who is talking from that, never
from a header. See docs/adr/0001-aiohttp-for-the-node.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import signal
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from aiohttp.http import HttpVersion
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from multidict import CIMultiDict

from gateway.conf.directory import Directory, NodeInfo
from gateway.conf.globalconf import GlobalConf
from gateway.conf.tufclient import ConfigClient, Current, GlobalConfSource, GlobalConfUnavailable
from gateway.core.datasubject import DATA_SUBJECT_HEADER, DataSubjectError, split_data_subjects
from gateway.core.encoding import b64url, b64url_decode, format_time
from gateway.core.envelope import (
    MAX_HEADER_FIELD,
    EnvelopeError,
    RequestHeader,
    ResponseHeader,
    SignatureVerifier,
    Signer,
    VerifiedSignature,
    body_sha256,
    check_body,
    check_created,
    check_headers,
    check_path,
    check_query,
    decode_segment,
    parse_time,
    request_hash,
)
from gateway.core.errors import ERROR_TABLE, Code, GatewayError
from gateway.core.headers import end_to_end_headers
from gateway.core.ids import (
    ClientId,
    InvalidIdentifierError,
    MemberId,
    ServiceId,
    SubsystemId,
    parse_client,
)
from gateway.core.policy import AccessPolicy
from gateway.httpversion import http1_only
from gateway.keys.files import load_certificates, load_private_key
from gateway.messagelog import (
    Kind,
    LogRecord,
    MessageLogError,
    ReplayError,
    Role,
    StoredStatus,
    open_log,
)
from gateway.messagelog.auditor import Auditor
from gateway.messagelog.context import LogContext
from gateway.messagelog.policy import body_policy
from gateway.messagelog.timestamper import Timestamper
from gateway.messagelog.tracker import (
    FIND_USAGE,
    Tracker,
    check_purpose,
    details_of,
    required_headers,
)
from gateway.messagelog.witness import Witness, head_signer
from gateway.net.guard import GuardSettings, guarded_site
from gateway.node.clock import Clock, SystemClock
from gateway.node.config import ConfigError, NodeConfig, ServiceSection
from gateway.node.ocsp import OwnCertificate, OwnOcsp, OwnStatusUnavailable
from gateway.node.replay import ReplayGuard
from gateway.node.tls import client_context, peer_fingerprint, server_context
from gateway.node.transport import PeerClient, RegistryClient, Reply, read_limited
from gateway.pki.ocsp import OcspError, OcspFailure
from gateway.pki.ocsp_cache import OcspCache, OcspEvidence, find_issuer
from gateway.pki.profiles import CertificateError, node_id_of
from gateway.pki.validation import verify_auth_certificate

log = logging.getLogger("gateway.node")

ENVELOPE_HEADER = "X-Gw-Envelope"
SIGNATURE_HEADER = "X-Gw-Signature"
SIGN_OCSP_HEADER = "X-Gw-Sign-Ocsp"
"""OCSP response (base64url DER) for the certificate that signed this message."""
AUTH_OCSP_HEADER = "X-Gw-Auth-Ocsp"
"""OCSP response (base64url DER) for the sending node's TLS authentication certificate."""
METADATA_SERVICES = frozenset({"listMethods", "allowedMethods", "getOpenAPI", FIND_USAGE})
_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(err: GatewayError, accept: str | None = None) -> web.Response:
    """X-Road's error format: ``X-Road-Error`` plus JSON (or XML if asked for)."""
    headers = {**err.headers, "X-Road-Error": err.code.value}
    wants_xml = accept is not None and "xml" in accept and "json" not in accept
    if wants_xml:
        body = (
            f"<error><type>{escape(err.code.value)}</type><message>{escape(err.message)}"
            f"</message><detail>{escape(err.detail)}</detail></error>"
        )
        return web.Response(
            status=err.status, text=body, content_type="application/xml", headers=headers
        )
    return web.Response(
        status=err.status,
        body=json.dumps(err.body()).encode(),
        content_type="application/json",
        headers=headers,
    )


def _version_refusal(version: HttpVersion) -> web.StreamResponse:
    """505 in X-Road's error format for a request line that is not HTTP/1.x."""
    return error_response(
        GatewayError(
            Code.HTTP_VERSION_NOT_SUPPORTED,
            f"HTTP/{version.major}.{version.minor} is not supported; use HTTP/1.1",
        )
    )


def _optional_text(request: web.Request, name: str, limit: int) -> str | None:
    """Last value of an optional X-Road header, refused if it could smuggle anything."""
    values = request.headers.getall(name, [])
    if not values:
        return None
    value = values[-1]
    if len(value) > limit or not set(value) <= _PRINTABLE:
        raise GatewayError(
            Code.BAD_REQUEST, f"{name} must be printable ASCII of at most {limit} characters"
        )
    return value


def _map_envelope(exc: EnvelopeError, *, provider: bool) -> GatewayError:
    codes = {
        "malformed": (Code.SP_INVALID_MESSAGE, Code.CP_INVALID_MESSAGE),
        "signature": (Code.SP_INVALID_SIGNATURE, Code.CP_INVALID_SIGNATURE),
        "certificate": (Code.SP_INVALID_CERTIFICATE, Code.CP_INVALID_CERTIFICATE),
        "expired": (Code.SP_MESSAGE_EXPIRED, Code.CP_INCONSISTENT_RESPONSE),
    }
    provider_code, consumer_code = codes[exc.reason]
    return GatewayError(provider_code if provider else consumer_code, exc.message)


def _signing_certificate(verified: VerifiedSignature) -> str:
    """How a refusal names a peer's signing certificate (built only when refusing)."""
    serial = verified.certificate.serial_number
    return f"the signing certificate of {verified.signer} (serial {serial:x})"


@dataclass(frozen=True, slots=True)
class TrustState:
    """Everything a node derives from one directory, replaced as one reference.

    Built completely (off the event loop when global configuration changes) before it is
    installed, so an exchange sees one consistent version of routing and trust.
    """

    directory: Directory
    verifier: SignatureVerifier
    roots_der: frozenset[bytes]
    server_ssl: ssl.SSLContext
    client_ssl: ssl.SSLContext


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where a started node listens (ports may have been chosen by the OS)."""

    consumer_url: str
    peer_url: str


class Node:
    """One security server. ``start()`` binds both listeners; ``stop()`` drains and closes."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        clock: Clock | None = None,
        directory: Directory | None = None,
    ) -> None:
        self.config = config
        self.id = config.node.node_id
        self.clock = clock or SystemClock()
        # Routing and trust: signed global configuration that a background task
        # refreshes (``directory`` fixes one instead, for tests that run a node in
        # process); either way read only through ``self._trust``.
        self.globalconf: GlobalConfSource[TrustState] | None = None
        if directory is None:
            try:
                anchor = config.load_anchor()
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            client = ConfigClient(
                anchor,
                config.globalconf.state_dir,
                fetch_timeout=config.globalconf.fetch_timeout_seconds,
            )
            self.globalconf = GlobalConfSource(client, self._derive_from)
            try:
                self._trust = self.globalconf.bootstrap().state
            except GlobalConfUnavailable as exc:
                raise ConfigError(
                    f"node {self.id} does not start: {exc}. Check that the anchor "
                    f"{config.globalconf.anchor} is the instance's (root fingerprint "
                    f"{anchor.fingerprint()}) and that {anchor.metadata_url} is reachable"
                ) from None
        else:
            self._trust = self._derive(directory)
        self.policy = AccessPolicy(config.grants())
        self.services: dict[ServiceId, ServiceSection] = {s.service_id: s for s in config.services}
        self.window = timedelta(seconds=config.node.message_window_seconds)
        self.max_body = config.node.max_body_bytes
        roots = self.directory.trust_roots()
        self.signers: dict[MemberId, Signer] = {}
        signing_chains: dict[MemberId, list[x509.Certificate]] = {}
        now = self.clock.now()
        for entry in config.signing:
            member = MemberId.parse(entry.member)
            chain = load_certificates(entry.cert)
            signer = Signer(member, load_private_key(entry.key), chain)
            # Refuse to start with a key that peers would refuse: fail at boot, not per call.
            try:
                tested = self.verifier.verify(signer.sign(b"self-test"), b"self-test", now)
            except EnvelopeError as exc:
                raise CertificateError(
                    f"signing key {entry.key} does not work with {entry.cert}: {exc.message}"
                ) from None
            if tested.signer != member:
                raise CertificateError(f"signing certificate {entry.cert} is not for {member}")
            self.signers[member] = signer
            signing_chains[member] = chain
        auth_chain = load_certificates(config.node.auth_cert)
        auth_owner = verify_auth_certificate(auth_chain[0], auth_chain[1:], roots, now)
        if auth_owner != self.id or node_id_of(auth_chain[0]) != self.id:
            raise CertificateError(f"authentication certificate is for {auth_owner}, not {self.id}")
        auth_key = load_private_key(config.node.auth_key)
        spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if auth_key.public_key().public_bytes(*spki) != auth_chain[0].public_key().public_bytes(
            *spki
        ):
            raise CertificateError(
                f"{config.node.auth_key} is not the key of {config.node.auth_cert}"
            )
        # OCSP: peers' responses are checked through one bounded cache; this node's own
        # statuses are fetched in the background (started in start()).
        freshness = timedelta(seconds=self.directory.parameters().ocsp_freshness_seconds)
        self.ocsp_cache = OcspCache(freshness)
        own = [self._own_certificate(f"authentication certificate of {self.id}", auth_chain)]
        for member, chain in signing_chains.items():
            own.append(self._own_certificate(f"signing certificate of {member}", chain))
        self._auth_ref = own[0].cert_ref
        # The default follows the freshness window this node actually applies (the
        # directory's), not the one written in its own configuration file.
        refresh_seconds = config.node.ocsp_refresh_seconds
        refresh = freshness / 3 if refresh_seconds is None else timedelta(seconds=refresh_seconds)
        try:
            self.own_ocsp = OwnOcsp(
                str(self.id),
                own,
                self.ocsp_cache,
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
        self._server_ssl = self._trust.server_ssl
        if self.globalconf is not None:
            self._server_ssl.sni_callback = self._select_server_context
        self.log = open_log(
            config.node.messagelog,
            clock=self.clock.now,
            body_policy=body_policy(config.logging.metadata_only(), config.logging.max_body_bytes),
        )
        self.tracker = Tracker(self.log.store, config.tracker.hidden_clients)
        context = self._log_context()
        self.timestamper = Timestamper(
            self.log,
            lambda: self._trust.directory,
            str(self.id),
            self.clock,
            batch_size=config.node.timestamp_batch_size,
            tolerated_outage=timedelta(seconds=config.node.timestamp_failure_tolerance_seconds),
            timeout_seconds=config.node.timestamp_timeout_seconds,
            sign_head=head_signer(context),
        )
        # Co-signs peers' tree heads, and serves the log's auditor API (gateway/messagelog/).
        self.witness = Witness(context)
        self.auditor = Auditor(context, self.witness)
        self.replay = ReplayGuard(self.window)
        self.replay.preload(
            (client, message_id, parse_time(created))
            for client, message_id, created in self.log.seen_since(format_time(now - self.window))
        )
        self._runners: list[web.AppRunner] = []
        self._refresher: asyncio.Task[None] | None = None
        self._peer: PeerClient | None = None
        self._registry: RegistryClient | None = None
        self.endpoints: Endpoints | None = None

    # ------------------------------------------------------------------ routing and trust

    @property
    def directory(self) -> Directory:
        """The directory of the configuration applied last (one attribute load)."""
        return self._trust.directory

    @property
    def verifier(self) -> SignatureVerifier:
        return self._trust.verifier

    def _derive(self, directory: Directory) -> TrustState:
        """Build every trust object from ``directory``; raises before anything changes."""
        roots = directory.trust_roots()
        cert, key = self.config.node.auth_cert, self.config.node.auth_key
        try:
            server_ssl = server_context(cert, key, roots)
            client_ssl = client_context(cert, key, roots)
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
        directory = conf.directory()
        if directory.node(self.id) is None:
            # Applied all the same: the instance decides; this node then serves nobody.
            log.error("global configuration serial %d does not list node %s", conf.serial, self.id)
        current = getattr(self, "_trust", None)
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
        current = self._trust.server_ssl
        if current is not context:
            sslobj.context = current

    def _install(self, candidate: Current[TrustState]) -> None:
        """Swap in a prepared configuration: one reference for routing and trust, plus
        the OCSP responders this node asks about its own certificates and the freshness
        window (plain attributes read per use; nothing else holds an old copy)."""
        assert self.globalconf is not None
        self.globalconf.install(candidate)
        self._trust = candidate.state
        for own in self.own_ocsp.certificates:
            responders = tuple(self.directory.ocsp_responders(own.issuer))
            if responders:
                own.responders = responders
            else:
                log.error("global configuration lists no OCSP responder for %s", own.label)
        # The instance-wide freshness window applies to the next check of any response.
        freshness = timedelta(seconds=self.directory.parameters().ocsp_freshness_seconds)
        if freshness > self.own_ocsp.refresh_interval:
            self.ocsp_cache.freshness = freshness
        else:
            log.error(
                "global configuration sets ocsp_freshness_seconds to %g, not longer than "
                "this node's OCSP refresh interval; keeping %g",
                freshness.total_seconds(),
                self.ocsp_cache.freshness.total_seconds(),
            )

    async def _record_configuration(self, current: Current[TrustState]) -> bool:
        """Durably add ``current`` to the log's configuration history before it is
        installed, so every entry logged under it can be shown its signed version
        (docs/message-log.md 8.1). False if that failed: the caller keeps the old one."""
        if not current.files:
            return True
        try:
            await self.log.record_configuration(
                current.files, current.conf.serial, format_time(self.clock.now())
            )
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

    def _check_globalconf(self, code: Code) -> None:
        """Refuse every exchange while the configuration is expired (X-Road does too)."""
        source = self.globalconf
        if source is None:
            return
        reason = source.outdated(self.clock.now())
        if reason is not None:
            raise GatewayError(code, reason)

    def _own_certificate(self, label: str, chain: list[x509.Certificate]) -> OwnCertificate:
        """One of this node's certificates with its issuer and the responders to ask.

        A node that cannot learn its own status could never send or answer anything, so
        a directory without a responder for the issuing CA stops it here, at start-up.
        """
        cert = chain[0]
        label = f"{label} (serial {cert.serial_number:x})"
        issuer = find_issuer(cert, [*chain[1:], *self.directory.trust_roots()])
        if issuer is None:
            raise CertificateError(f"no trusted CA certificate issued this node's {label}")
        responders = tuple(self.directory.ocsp_responders(issuer))
        if not responders:
            raise ConfigError(
                f"the directory lists no OCSP responder for {issuer.subject.rfc4514_string()}, "
                f"the CA that issued this node's {label}; without one the node cannot show "
                "its certificates are valid, so it does not start (the central authority "
                "must list an OCSP responder for that CA)"
            )
        return OwnCertificate(label, cert, issuer, responders)

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
        # Only then the timestamper: entries left pending before a restart are stamped
        # at once, and their signed tree head needs this node's OCSP evidence.
        await self.timestamper.start()
        if self.globalconf is not None:
            self._refresher = asyncio.create_task(self._refresh_globalconf())
        self._peer = PeerClient(
            self._trust.client_ssl,
            connect_timeout=self.config.node.peer_connect_timeout_seconds,
            total_timeout=self.config.node.peer_timeout_seconds,
            max_body=self.max_body,
        )
        self._registry = RegistryClient(max_body=self.max_body)
        consumer = await self._listen(self.consumer_app(), self.config.node.consumer_listen, None)
        peer = await self._listen(self.peer_app(), self.config.node.peer_listen, self._server_ssl)
        self.endpoints = Endpoints(f"http://{consumer}", f"https://{peer}")
        await self.witness.start()
        log.info("node %s: consumer %s, peers %s", self.id, consumer, peer)
        return self.endpoints

    async def _listen(self, app: web.Application, hostport: str, ssl: Any) -> str:
        """Bind one port. Bodies are read as sent (``auto_decompress=False``): a body
        with ``Content-Encoding`` is signed, logged, limited and relayed in the coding
        the client chose, so the evidence is the bytes that were actually received."""
        host, _, port = hostport.rpartition(":")
        runner = web.AppRunner(
            app,
            access_log=None,
            max_field_size=MAX_HEADER_FIELD,
            handle_signals=False,
            auto_decompress=False,
        )
        await runner.setup()
        node = self.config.node
        limits = GuardSettings(
            header_timeout=node.header_timeout_seconds,
            body_timeout=node.body_timeout_seconds,
            max_connections=node.max_connections,
            max_connections_per_ip=node.max_connections_per_ip,
        )
        name = f"{self.id} {'peer' if ssl is not None else 'consumer'} port"
        site = guarded_site(
            runner, host, int(port), limits, ssl_context=ssl, backlog=1024, name=name
        )
        await site.start()
        self._runners.append(runner)
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        bound_port = sockets[0].getsockname()[1] if sockets else int(port)
        return f"{host}:{bound_port}"

    async def stop(self) -> None:
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
        await self.witness.stop()
        await self.timestamper.stop()
        await self.log.close()

    # ------------------------------------------------------------------ apps

    def consumer_app(self) -> web.Application:
        app = web.Application()
        app.middlewares.append(http1_only(_version_refusal))
        app.router.add_route("*", "/r1/{tail:.*}", self._guarded(self.handle_consumer, False))
        app.router.add_get("/listClients", self._guarded(self.handle_list_clients, False))
        app.router.add_get("/health", self.handle_health)
        self.auditor.add_consumer_routes(app)
        app.router.add_route("*", "/{tail:.*}", self._guarded(self.handle_not_r1, False))
        return app

    def peer_app(self) -> web.Application:
        app = web.Application()
        app.middlewares.append(http1_only(_version_refusal))
        app.router.add_post("/gw/v1/exchange", self._guarded(self.handle_exchange, True))
        self.auditor.add_peer_routes(app)
        return app

    def _guarded(self, handler: Handler, provider: bool) -> Handler:
        """Turn every refusal into X-Road's error format; never leak a traceback.

        A wrapper per route rather than a middleware: it is on the hot path, and
        aiohttp's middleware chain costs a few percent of an exchange.
        """
        internal = Code.SP_INTERNAL_ERROR if provider else Code.CP_INTERNAL_ERROR

        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except GatewayError as refusal:
                log.warning("%s refused (%s): %s", self.id, refusal.detail, refusal)
                return error_response(refusal, request.headers.get("Accept"))
            except web.HTTPException:
                raise
            except Exception:
                failure = GatewayError(internal, "unexpected error; see the node's log")
                log.exception("%s internal error (%s)", self.id, failure.detail)
                return error_response(failure, request.headers.get("Accept"))

        return guarded

    async def handle_not_r1(self, request: web.Request) -> web.Response:
        raise GatewayError(Code.BAD_REQUEST, f"{request.path} is not an X-Road REST r1 path")

    # ------------------------------------------------------------------ helpers

    def _self_info(self) -> NodeInfo | None:
        return self.directory.node(self.id)

    def hosts(self, client: ClientId) -> bool:
        me = self._self_info()
        return me is not None and client in me.clients

    def _log_context(self) -> LogContext:
        """What the log's services (witness, auditor API, head signer) use of this node."""
        return LogContext(
            node_id=self.id,
            log=self.log,
            clock=self.clock,
            audit=self.config.audit,
            peer_timeout_seconds=self.config.node.peer_timeout_seconds,
            directory=lambda: self._trust.directory,
            verifier=lambda: self._trust.verifier,
            client_ssl=lambda: self._trust.client_ssl,
            own_signer=lambda: self.signers.get(self.id.owner),
            own_evidence=self.own_ocsp.evidence,
            peer_status=self._peer_status,
            hosts=self.hosts,
        )

    async def _read_body(self, request: web.Request, code: Code) -> bytes:
        if request.content_length is not None and request.content_length > self.max_body:
            raise GatewayError(code, f"body of {request.content_length} bytes exceeds the limit")
        try:
            body = await read_limited(request.content, self.max_body)
        except ConnectionResetError:
            # The client went away, or stalled and the connection guard closed it: nobody
            # is left to answer, and it is not the node's fault (no internal error).
            raise web.HTTPBadRequest(text="the connection closed within the body") from None
        if body is None:
            raise GatewayError(code, f"body exceeds the limit of {self.max_body} bytes")
        return body

    @staticmethod
    def _certs(*signatures: VerifiedSignature | Signer) -> dict[str, tuple[bytes, str]]:
        return {s.cert_ref: (s.cert_der, s.jws_header) for s in signatures}

    def _own_status(self, signer: Signer, code: Code) -> tuple[OcspEvidence, OcspEvidence]:
        """This node's OCSP responses (auth, signing) to send now, or refuse with ``code``."""
        now = self.clock.now()
        try:
            return (
                self.own_ocsp.evidence(self._auth_ref, now),
                self.own_ocsp.evidence(signer.cert_ref, now),
            )
        except OwnStatusUnavailable as exc:
            raise GatewayError(code, str(exc)) from None

    def _peer_status(
        self,
        encoded: str | None,
        header: str,
        ref: str,
        certificate: Callable[[], x509.Certificate],
        what: Callable[[], str],
        code: Code,
        now: datetime,
    ) -> OcspEvidence:
        """Check the OCSP response a peer sent for one of its certificates.

        ``ref`` is the certificate's SHA-256 (hex); ``certificate`` loads it and is only
        called the first time this response is seen, when the cache parses and verifies
        it. Every later message costs a dict lookup and the time checks; ``what`` names
        the certificate for a refusal and is only called then.
        """
        if encoded is None:
            raise GatewayError(code, f"{what()} has no OCSP status: {header} is missing")

        def subject() -> tuple[x509.Certificate, x509.Certificate]:
            cert = certificate()
            issuer = find_issuer(cert, self.directory.trust_roots())
            if issuer is None:
                raise OcspError(OcspFailure.WRONG_CERTIFICATE, "no trusted CA issued it")
            return cert, issuer

        try:
            return self.ocsp_cache.check(ref, encoded, now, subject)
        except OcspError as exc:
            raise GatewayError(
                code, f"{what()} has no valid OCSP status: {exc.reason.value}: {exc.detail}"
            ) from None

    # ------------------------------------------------------------------ consumer edge

    async def handle_health(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {"status": "ok", "node": str(self.id)}
        if self.globalconf is not None:
            body["globalconf"] = self.globalconf.status(self.clock.now())
        return web.json_response(body)

    async def handle_list_clients(self, request: web.Request) -> web.Response:
        """``listClients``: the instance's members and subsystems, answered locally."""
        instance = request.query.get("xRoadInstance", self.directory.instance)
        members: list[dict[str, Any]] = []
        for info in self.directory.members():
            if info.id.instance != instance:
                continue
            ids: list[MemberId | SubsystemId] = [info.id, *info.subsystems]
            for client in ids:
                entry: dict[str, Any] = {
                    "member_class": client.member_class,
                    "member_code": client.member_code,
                    "object_type": client.object_type,
                    "xroad_instance": client.instance,
                }
                if isinstance(client, SubsystemId):
                    entry["subsystem_code"] = client.subsystem_code
                members.append({"id": entry, "name": info.name})
        accept = request.headers.get("Accept", "")
        if "json" in accept:
            return web.json_response({"member": members})
        rows = "".join(
            '<member><id object_type="{}">{}</id><name>{}</name></member>'.format(
                m["id"]["object_type"],
                "".join(
                    f"<{k}>{escape(str(v))}</{k}>" for k, v in m["id"].items() if k != "object_type"
                ),
                escape(m["name"]),
            )
            for m in members
        )
        return web.Response(text=f"<clientList>{rows}</clientList>", content_type="application/xml")

    def _parse_r1(self, request: web.Request) -> tuple[ServiceId, str, str]:
        raw_path, _, query = request.raw_path.partition("?")
        segments = raw_path.split("/")
        if len(segments) < 7:
            raise GatewayError(
                Code.BAD_REQUEST,
                "the path must be /r1/{instance}/{class}/{member}/{subsystem}/{service}[/path]",
            )
        service = ServiceId.from_parts(segments[2:7], Code.INVALID_SERVICE_IDENTIFIER)
        path = "/" + "/".join(segments[7:]) if len(segments) > 7 else ""
        return service, path, query

    async def handle_consumer(self, request: web.Request) -> web.Response:
        """Sign, relay, verify, log both messages, answer: X-Road REST ``r1``.

        Every refusal made once the exchange has its ids carries them (``X-Road-Id``,
        and ``X-Road-Request-Id`` once the message exists): the provider's node may
        already have logged the exchange, and the caller must be able to name it.
        """
        ids: dict[str, str] = {}
        try:
            response = await self._consume(request, ids)
        except GatewayError as refusal:
            refusal.headers.update(ids)
            raise
        except Exception:
            if not ids:
                raise
            failure = GatewayError(Code.CP_INTERNAL_ERROR, "unexpected error; see the node's log")
            log.exception("%s internal error (%s)", self.id, failure.detail)
            failure.headers.update(ids)
            raise failure from None
        if "X-Road-Error" in response.headers:  # the provider's refusal, relayed
            response.headers.update(ids)
        return response

    async def _consume(self, request: web.Request, ids: dict[str, str]) -> web.Response:
        """The exchange of ``handle_consumer``; records the exchange's ids in ``ids``."""
        self._check_globalconf(Code.CP_GLOBAL_CONF_OUTDATED)
        self.timestamper.check(provider=False)  # before any work: the log cannot be stamped
        service, path, query = self._parse_r1(request)
        client_values = request.headers.getall("X-Road-Client", [])
        if not client_values:
            raise GatewayError(Code.INVALID_CLIENT_IDENTIFIER, "X-Road-Client header is missing")
        client = parse_client(client_values[-1])
        if not self.hosts(client):
            raise GatewayError(Code.UNKNOWN_CLIENT, f"{client} is not a client of node {self.id}")
        signer = self.signers.get(client.member)
        if signer is None:
            raise GatewayError(
                Code.UNKNOWN_CLIENT, f"node {self.id} holds no signing key for {client.member}"
            )
        own_auth, own_sign = self._own_status(signer, Code.CP_OCSP_UNAVAILABLE)
        xroad_id = _optional_text(request, "X-Road-Id", 255) or (
            f"{self.directory.instance}-{uuid.uuid4()}"
        )
        ids["X-Road-Id"] = xroad_id
        user_id = _optional_text(request, "X-Road-UserId", 255)
        issue = _optional_text(request, "X-Road-Issue", 1024)
        try:
            kept_headers = check_headers(
                [list(h) for h in end_to_end_headers(request.headers.items())]
            )
            check_path(path)
            check_query(query)
        except EnvelopeError as exc:
            raise GatewayError(Code.BAD_REQUEST, exc.message) from None
        body = await self._read_body(request, Code.REQUEST_TOO_LARGE)

        providers = self.directory.nodes_hosting(service.provider)
        if not providers:
            raise GatewayError(Code.CP_UNKNOWN_MEMBER, f"no node hosts {service.provider}")
        target = providers[0]

        header = RequestHeader(
            message_id=str(uuid.uuid4()),
            xroad_id=xroad_id,
            client=client,
            service=service,
            method=request.method,
            path=path,
            query=query,
            headers=kept_headers,
            user_id=user_id,
            issue=issue,
            created=format_time(self.clock.now()),
            body_sha256=body_sha256(body),
            body_length=len(body),
        )
        try:
            header_bytes = header.checked_bytes()  # every limit the provider applies
        except EnvelopeError as exc:
            raise GatewayError(Code.BAD_REQUEST, exc.message) from None
        ids["X-Road-Request-Id"] = header.message_id
        signature = signer.sign(header_bytes)
        assert self._peer is not None
        reply = await self._peer.post(
            target.address,
            target.auth_cert_sha256,
            self._trust.client_ssl,
            {
                ENVELOPE_HEADER: b64url(header_bytes),
                SIGNATURE_HEADER: signature,
                SIGN_OCSP_HEADER: own_sign.encoded,
                AUTH_OCSP_HEADER: own_auth.encoded,
                "Content-Type": "application/octet-stream",
            },
            body,
        )
        if "X-Road-Error" in reply.headers:
            return self._relay_provider_error(reply.status, reply.headers, reply.body)
        response, verified, provider_sign = self._verify_response(header, header_bytes, reply)
        try:
            await self.log.append(
                [
                    LogRecord(
                        role=Role.CONSUMER,
                        kind=Kind.REQUEST,
                        message_id=header.message_id,
                        xroad_id=header.xroad_id,
                        client=str(client),
                        service=str(service),
                        created=header.created,
                        header=header_bytes,
                        body=body,
                        signature=signature,
                        cert_ref=signer.cert_ref,
                        ocsp_ref=own_sign.ref,
                    ),
                    LogRecord(
                        role=Role.CONSUMER,
                        kind=Kind.RESPONSE,
                        message_id=header.message_id,
                        xroad_id=header.xroad_id,
                        client=str(client),
                        service=str(service),
                        created=response.created,
                        header=b64url_decode(reply.headers[ENVELOPE_HEADER]),
                        body=reply.body,
                        signature=verified.jws,
                        cert_ref=verified.cert_ref,
                        ocsp_ref=provider_sign.ref,
                    ),
                ],
                certs=self._certs(signer, verified),
                ocsp={own_sign.ref: own_sign.der, provider_sign.ref: provider_sign.der},
            )
        except MessageLogError as exc:
            raise GatewayError(Code.CP_MESSAGELOG_FAILED, str(exc)) from None
        # The provider signed these, but only end-to-end headers reach the client: framing
        # and protocol headers are this hop's business, whatever a provider signs.
        out = CIMultiDict(end_to_end_headers(response.headers))
        out.popall(DATA_SUBJECT_HEADER, None)  # the provider's business, never the client's
        out["X-Road-Id"] = header.xroad_id
        out["X-Road-Request-Id"] = header.message_id
        out["X-Road-Request-Hash"] = response.request_hash
        out["X-Road-Client"] = str(client)
        out["X-Road-Service"] = str(service)
        return web.Response(status=response.status, body=reply.body, headers=out)

    def _relay_provider_error(
        self, status: int, headers: CIMultiDict[str], body: bytes
    ) -> web.Response:
        """Pass the provider node's refusal on unchanged, if it is one."""
        code = headers["X-Road-Error"]
        known = {c.value: spec for c, spec in ERROR_TABLE.items()}
        try:
            doc = json.loads(body)
            valid = (
                code.startswith("server.serverproxy.")
                and code in known
                and known[code].status == status
                and isinstance(doc, dict)
                and doc.get("type") == code
                and isinstance(doc.get("message"), str)
            )
        except (ValueError, UnicodeDecodeError):
            valid = False
        if not valid:
            raise GatewayError(
                Code.CP_INVALID_MESSAGE, "the provider's node sent a malformed error"
            )
        log.warning("%s relayed the provider's refusal (%s): %s", self.id, doc.get("detail"), code)
        return web.Response(
            status=status,
            body=body,
            content_type="application/json",
            headers={"X-Road-Error": code},
        )

    def _verify_response(
        self, request: RequestHeader, request_bytes: bytes, reply: Reply
    ) -> tuple[ResponseHeader, VerifiedSignature, OcspEvidence]:
        envelope = reply.headers.get(ENVELOPE_HEADER)
        signature = reply.headers.get(SIGNATURE_HEADER)
        if reply.status != 200 or envelope is None or signature is None:
            raise GatewayError(
                Code.CP_INVALID_MESSAGE,
                f"the provider's node answered {reply.status} without a signed response",
            )
        now = self.clock.now()
        peer_der = reply.peer_cert
        if peer_der is None:
            raise GatewayError(
                Code.CP_SSL_AUTHENTICATION_FAILED, "the provider's node presented no certificate"
            )
        self._peer_status(
            reply.headers.get(AUTH_OCSP_HEADER),
            AUTH_OCSP_HEADER,
            hashlib.sha256(peer_der).hexdigest(),
            lambda: x509.load_der_x509_certificate(peer_der),
            lambda: "the authentication certificate of the provider's node",
            Code.CP_CERT_VALIDATION,
            now,
        )
        try:
            response_bytes = decode_segment(envelope)
            verified = self.verifier.verify(signature, response_bytes, now)
            response = ResponseHeader.from_bytes(response_bytes)
            if verified.signer != request.service.member:
                raise GatewayError(
                    Code.CP_INVALID_SIGNATURE,
                    f"response signed by {verified.signer}, expected {request.service.member}",
                )
            signer_status = self._peer_status(
                reply.headers.get(SIGN_OCSP_HEADER),
                SIGN_OCSP_HEADER,
                verified.cert_ref,
                lambda: verified.certificate,
                lambda: _signing_certificate(verified),
                Code.CP_CERT_VALIDATION,
                now,
            )
            check_body(response.body_sha256, response.body_length, reply.body)
        except EnvelopeError as exc:
            raise _map_envelope(exc, provider=False) from None
        expected = request_hash(request_bytes)
        if (
            response.request_hash != expected
            or response.message_id != request.message_id
            or response.xroad_id != request.xroad_id
            or response.client != request.client
            or response.service != request.service
        ):
            raise GatewayError(
                Code.CP_INCONSISTENT_RESPONSE, "the signed response is for a different request"
            )
        try:
            check_created(response.created, now, self.window)
        except EnvelopeError as exc:
            raise GatewayError(Code.CP_INCONSISTENT_RESPONSE, exc.message) from None
        return response, verified, signer_status

    # ------------------------------------------------------------------ provider side

    async def handle_exchange(self, request: web.Request) -> web.Response:
        """Checks in order, each before any later work: peer, client, signature and
        freshness, service, access, body digest, replay; then call the registry, sign,
        and log request and response in one commit before answering."""
        self._check_globalconf(Code.SP_GLOBAL_CONF_OUTDATED)
        self.timestamper.check(provider=True)  # before any work: the log cannot be stamped
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        fingerprint = peer_fingerprint(ssl_object)
        peer = self.directory.node_by_auth_cert(fingerprint) if fingerprint else None
        if peer is None or fingerprint is None:
            raise GatewayError(
                Code.SP_SSL_AUTHENTICATION_FAILED,
                "the TLS peer's certificate is not registered for any node",
            )
        now = self.clock.now()

        def peer_certificate() -> x509.Certificate:
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if not der:
                raise OcspError(OcspFailure.WRONG_CERTIFICATE, "no TLS peer certificate")
            return x509.load_der_x509_certificate(der)

        self._peer_status(
            request.headers.get(AUTH_OCSP_HEADER),
            AUTH_OCSP_HEADER,
            fingerprint,
            peer_certificate,
            lambda: f"the authentication certificate of node {peer.id}",
            Code.SP_CERT_VALIDATION,
            now,
        )
        envelope = request.headers.get(ENVELOPE_HEADER)
        signature = request.headers.get(SIGNATURE_HEADER)
        if envelope is None or signature is None:
            raise GatewayError(Code.SP_INVALID_MESSAGE, "envelope or signature header missing")
        try:
            header_bytes = decode_segment(envelope)
            header = RequestHeader.from_bytes(header_bytes)
        except EnvelopeError as exc:
            raise _map_envelope(exc, provider=True) from None
        client, service = header.client, header.service
        if not self.directory.is_known_client(client):
            raise GatewayError(Code.SP_UNKNOWN_MEMBER, f"{client} is not known in the instance")
        if client not in peer.clients:
            raise GatewayError(
                Code.SP_SSL_AUTHENTICATION_FAILED, f"node {peer.id} does not host {client}"
            )
        try:
            verified = self.verifier.verify(signature, header_bytes, now)
        except EnvelopeError as exc:
            raise _map_envelope(exc, provider=True) from None
        if verified.signer != client.member:
            raise GatewayError(
                Code.SP_SIGNER_MISMATCH, f"signed by {verified.signer}, client is {client}"
            )
        client_status = self._peer_status(
            request.headers.get(SIGN_OCSP_HEADER),
            SIGN_OCSP_HEADER,
            verified.cert_ref,
            lambda: verified.certificate,
            lambda: _signing_certificate(verified),
            Code.SP_CERT_VALIDATION,
            now,
        )
        try:
            created = check_created(header.created, now, self.window)
        except EnvelopeError as exc:
            raise _map_envelope(exc, provider=True) from None
        signer = self.signers.get(service.member)
        if not self.hosts(service.provider) or signer is None:
            raise GatewayError(Code.SP_UNKNOWN_SERVICE, f"{service} is not provided here")
        own_status = self._own_status(signer, Code.SP_OCSP_UNAVAILABLE)
        groups = self.directory.groups_of(client)
        section: ServiceSection | None = None
        if service.service_code in METADATA_SERVICES:
            if service.service_code == "getOpenAPI":
                section = self._openapi_target(header, client, groups)
            elif service.service_code == FIND_USAGE:  # a provider policy, like any service
                self.policy.check(client, groups, service, header.method, header.path)
        else:
            section = self.services.get(service)
            if section is None:
                raise GatewayError(Code.SP_UNKNOWN_SERVICE, f"{service} is not provided here")
            if not section.enabled:
                raise GatewayError(Code.SP_SERVICE_DISABLED, f"{service} is disabled")
            self.policy.check(client, groups, service, header.method, header.path)
            check_purpose(section, header)
        body = await self._read_body(request, Code.SP_REQUEST_TOO_LARGE)
        try:
            check_body(header.body_sha256, header.body_length, body)
        except EnvelopeError as exc:
            raise _map_envelope(exc, provider=True) from None
        if not self.replay.claim(str(client), header.message_id, created, now):
            raise GatewayError(
                Code.SP_REPLAY_DETECTED, f"message {header.message_id} from {client} seen before"
            )
        request_record = LogRecord(
            role=Role.PROVIDER,
            kind=Kind.REQUEST,
            message_id=header.message_id,
            xroad_id=header.xroad_id,
            client=str(client),
            service=str(service),
            created=header.created,
            header=header_bytes,
            body=body,
            signature=signature,
            cert_ref=verified.cert_ref,
            ocsp_ref=client_status.ref,
        )

        subjects: tuple[str, ...] = ()
        try:
            if service.service_code in METADATA_SERVICES:
                status, headers, reply_body = await self._metadata(
                    service, client, groups, section, header
                )
            else:
                assert section is not None and self._registry is not None
                url = section.url + header.path + (f"?{header.query}" if header.query else "")
                reply = await self._registry.call(
                    header.method, url, list(header.headers), body, section.timeout_seconds
                )
                status = reply.status
                # The data subjects are for this node's log only: recorded, never signed.
                try:
                    kept, subjects = split_data_subjects(reply.headers.items())
                except DataSubjectError as exc:
                    raise GatewayError(
                        Code.SP_INVALID_DATA_SUBJECT,
                        f"the registry of {service} sent a malformed X-Data-Subject: {exc}",
                    ) from None
                headers = end_to_end_headers(kept)
                reply_body = reply.body
        except GatewayError:
            # The registry may have acted on the request: log it and make its id durable,
            # so the same signed message is refused after a restart as well.
            await self._log_unanswered(request_record, verified, client_status)
            raise
        return await self._answer(
            header,
            header_bytes,
            request_record,
            verified,
            client_status,
            signer,
            own_status,
            status,
            headers,
            reply_body,
            subjects,
        )

    async def _log_unanswered(
        self, record: LogRecord, verified: VerifiedSignature, status: OcspEvidence
    ) -> None:
        try:
            await self.log.append(
                [record],
                certs=self._certs(verified),
                ocsp={status.ref: status.der},
                replay_key=(record.client, record.message_id, record.created),
            )
        except (MessageLogError, ReplayError) as exc:
            log.error("%s could not log unanswered request %s: %s", self.id, record.message_id, exc)

    async def _answer(
        self,
        request: RequestHeader,
        request_bytes: bytes,
        request_record: LogRecord,
        verified: VerifiedSignature,
        client_status: OcspEvidence,
        signer: Signer,
        own_status: tuple[OcspEvidence, OcspEvidence],
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        subjects: tuple[str, ...] = (),
    ) -> web.Response:
        """Sign the response and log request and response in one durable commit.

        The request's id goes into ``seen_request`` in the same transaction, so the
        replay guard survives restarts; nothing leaves this node before the commit.
        The response carries the OCSP responses taken before the registry was called:
        still fresh, since a node refreshes long before the window ends.
        """
        own_auth, own_sign = own_status
        response = ResponseHeader(
            message_id=request.message_id,
            xroad_id=request.xroad_id,
            client=request.client,
            service=request.service,
            request_hash=request_hash(request_bytes),
            status=status,
            headers=tuple(headers),
            created=format_time(self.clock.now()),
            body_sha256=body_sha256(body),
            body_length=len(body),
        )
        try:
            response_bytes = response.checked_bytes()  # every limit the consumer applies
        except EnvelopeError as exc:
            # Nothing is signed; the registry was called, so the request is logged as in
            # a failed registry call (protocol.md section 9, step 14b).
            await self._log_unanswered(request_record, verified, client_status)
            raise GatewayError(
                Code.SP_INVALID_RESPONSE,
                f"the registry's answer for {request.service} cannot be signed: {exc.message}",
            ) from None
        signature = signer.sign(response_bytes)
        try:
            await self.log.append(
                [
                    request_record,
                    LogRecord(
                        role=Role.PROVIDER,
                        kind=Kind.RESPONSE,
                        message_id=request.message_id,
                        xroad_id=request.xroad_id,
                        client=str(request.client),
                        service=str(request.service),
                        created=response.created,
                        header=response_bytes,
                        body=body,
                        signature=signature,
                        cert_ref=signer.cert_ref,
                        ocsp_ref=own_sign.ref,
                        subjects=subjects,
                        read=details_of(request, status) if subjects else None,
                    ),
                ],
                certs=self._certs(verified, signer),
                ocsp={client_status.ref: client_status.der, own_sign.ref: own_sign.der},
                replay_key=(str(request.client), request.message_id, request.created),
            )
        except ReplayError:
            raise GatewayError(
                Code.SP_REPLAY_DETECTED, f"message {request.message_id} seen before"
            ) from None
        except MessageLogError as exc:
            raise GatewayError(Code.SP_MESSAGELOG_FAILED, str(exc)) from None
        return web.Response(
            status=200,
            body=body,
            headers={
                ENVELOPE_HEADER: b64url(response_bytes),
                SIGNATURE_HEADER: signature,
                SIGN_OCSP_HEADER: own_sign.encoded,
                AUTH_OCSP_HEADER: own_auth.encoded,
                "Content-Type": "application/octet-stream",
            },
        )

    # ------------------------------------------------------------------ metadata services

    def _openapi_target(
        self, header: RequestHeader, client: ClientId, groups: frozenset[Any]
    ) -> ServiceSection:
        from urllib.parse import parse_qs

        codes = parse_qs(header.query).get("serviceCode", [])
        if len(codes) != 1:
            raise GatewayError(Code.SP_UNKNOWN_SERVICE, "getOpenAPI needs one serviceCode")
        try:
            target = header.service.provider.service(codes[0])
        except InvalidIdentifierError as exc:
            raise GatewayError(Code.SP_UNKNOWN_SERVICE, exc.message) from None
        section = self.services.get(target)
        if section is None or section.openapi_url is None:
            raise GatewayError(Code.SP_UNKNOWN_SERVICE, f"{target} has no OpenAPI description")
        if not self.policy.grants_for(client, groups, target):
            raise GatewayError(Code.SP_ACCESS_DENIED, f"{client} has no access right to {target}")
        return section

    async def _metadata(
        self,
        service: ServiceId,
        client: ClientId,
        groups: frozenset[Any],
        section: ServiceSection | None,
        header: RequestHeader,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        json_type = [("content-type", "application/json")]
        if service.service_code == FIND_USAGE:
            return await self.tracker.answer(header)
        if service.service_code == "getOpenAPI":
            assert section is not None and section.openapi_url is not None
            assert self._registry is not None
            document = await self._registry.get_json_document(
                section.openapi_url, section.timeout_seconds
            )
            return 200, json_type, document
        only_allowed = service.service_code == "allowedMethods"
        listed = []
        for sid, sec in self.services.items():
            if sid.provider != service.provider:
                continue
            grants = self.policy.grants_for(client, groups, sid)
            if only_allowed and not grants:
                continue
            endpoints = [{"method": e.method, "path": e.path} for e in sec.endpoints]
            if only_allowed:
                endpoints = [
                    e
                    for e in endpoints
                    if any(
                        g.methods is None or e["method"] == "*" or e["method"] in g.methods
                        for g in grants
                    )
                ]
            required = required_headers(sec)
            listed.append(
                {
                    **({"required_headers": required} if required else {}),
                    "xroad_instance": sid.instance,
                    "member_class": sid.member_class,
                    "member_code": sid.member_code,
                    "subsystem_code": sid.subsystem_code,
                    "service_code": sid.service_code,
                    "object_type": "SERVICE",
                    "service_type": "OPENAPI" if sec.openapi_url else "REST",
                    "endpoint_list": endpoints,
                }
            )
        return 200, json_type, json.dumps({"service": listed}, sort_keys=True).encode()


async def run_node(config: NodeConfig, *, ready: Callable[[Endpoints], None] | None = None) -> None:
    """Run until SIGINT/SIGTERM, then drain and close the log."""
    node = Node(config)
    endpoints = await node.start()
    if ready is not None:
        ready(endpoints)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await node.stop()
