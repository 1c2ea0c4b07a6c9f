"""The parts of one node that its consumer side, provider side and services share.

:class:`NodeContext` is handed to the client proxy (``clientproxy.py``), the server
proxy (``serverproxy.py``) and the metadata services (``metadata.py``) instead of the
whole :class:`~gateway.node.server.Node`: they read the trust state, the signing keys,
the OCSP evidence, the message log, the replay guard, the settings in force (access
policy, services, connection types), the limits and the maintenance mode from here, and
nothing else. The node (``server.py``) builds it once and is the only writer of
:attr:`NodeContext.trust`, which a configuration refresh replaces as one reference;
:attr:`NodeContext.settings` is likewise one reference, replaced only by the node's
``SettingsManager``. The message log's services in the node (witness, auditor API, head
signer) get the narrower ``LogContext`` it derives (:meth:`NodeContext.log_context`).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from gateway.conf.directory import Directory
from gateway.conf.federation import FederatedDirectory
from gateway.conf.tufclient import GlobalConfSource
from gateway.core.errors import Code, GatewayError
from gateway.core.ids import ClientId, MemberId, NodeId
from gateway.core.jws import SignatureVerifier, Signer, VerifiedSignature
from gateway.messagelog import MessageLog
from gateway.messagelog.context import LogContext
from gateway.messagelog.timestamper import Timestamper
from gateway.messagelog.tracker import Tracker
from gateway.node.clientauth import (
    ClientCertStore,
    ConnectionType,
    authenticate_client,
    tls_peer,
)
from gateway.node.clock import Clock
from gateway.node.config import NodeConfig
from gateway.node.failover import PeerBackoff, PeerHealth
from gateway.node.federation import FederatedSource, Refusals
from gateway.node.maintenance import Maintenance
from gateway.node.maintenance_file import MaintenanceFile, MaintenanceWatch
from gateway.node.monitoring import Monitoring
from gateway.node.ocsp import OwnOcsp, OwnStatusUnavailable
from gateway.node.replay import ReplayGuard
from gateway.node.settings.snapshot import SettingsSnapshot
from gateway.pki.ocsp import OcspError, OcspFailure
from gateway.pki.ocsp_cache import OcspCache, OcspEvidence, find_issuer
from gateway.pki.profiles import CertificateError, member_id_of, node_id_of

_WRONG_CA = {
    Code.SP_CERT_VALIDATION: Code.SP_WRONG_INSTANCE_CA,
    Code.CP_CERT_VALIDATION: Code.CP_WRONG_INSTANCE_CA,
}
"""The code for a certificate of one instance's owner issued by another instance's CA,
by the side's code for a certificate status that does not verify."""


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
class Limits:
    """The bounds every exchange is held to (``[node]`` in the node's configuration)."""

    window: timedelta
    """A message created outside ``now ± window`` is refused (protocol.md section 5.4)."""
    max_body: int
    """Largest request or response body, in bytes."""


class NodeContext:
    """The shared parts of one node; see the module docstring for who receives it."""

    def __init__(
        self,
        *,
        config: NodeConfig,
        clock: Clock,
        trust: TrustState,
        globalconf: GlobalConfSource[TrustState] | None,
        signers: dict[MemberId, Signer],
        own_ocsp: OwnOcsp,
        ocsp_cache: OcspCache,
        auth_ref: str,
        log: MessageLog,
        timestamper: Timestamper,
        replay: ReplayGuard,
        settings: SettingsSnapshot,
        tracker: Tracker,
        limits: Limits,
        client_certs: ClientCertStore,
        monitoring: Monitoring,
        key_passphrase: bytes | None = None,
    ) -> None:
        self.id: NodeId = config.node.node_id
        self.key_passphrase = key_passphrase
        """What opens the node's encrypted key files (docs/adr/0041): a key made or
        imported at run time is written and read with it."""
        self.config = config
        self.clock = clock
        self.trust = trust
        """The configuration applied last. Read it once per use: only the node replaces
        it, as one reference, when a new global configuration is installed."""
        self.globalconf = globalconf
        self.signers = signers
        self.own_ocsp = own_ocsp
        self.ocsp_cache = ocsp_cache
        self.auth_ref = auth_ref
        self.log = log
        self.timestamper = timestamper
        self.replay = replay
        self.settings = settings
        """The settings in force (clients, services, access rights, local groups). An
        exchange reads it once, at admission, and keeps that snapshot to its end: only
        the node's ``SettingsManager`` replaces it, as one reference, after the new
        version is durable in the log."""
        self.tracker = tracker
        self.limits = limits
        self.client_certs = client_certs
        """The registered information-system certificates (reread when the file changes)."""
        self.monitoring = monitoring
        """Counters, histograms and operational records of the exchanges (monitoring.py)."""
        self.leader = True
        """Whether this process runs the log's timestamper and witness: always on
        SQLite, for one process of a cluster on PostgreSQL (``gateway.messagelog.leader``;
        set by the node)."""
        self.settings_behind = ""
        """Why a newer settings version another process of the node's cluster recorded
        is not in force here, "" when none is: readiness fails meanwhile, so a load
        balancer stops sending this process exchanges its old settings would admit
        (``settings/follow.py``, set by the node)."""
        self.maintenance = Maintenance()
        """Maintenance mode and the exchanges in flight (maintenance.py); every exchange
        of either side is admitted through it."""
        self.maintenance_watch = MaintenanceWatch(
            self.maintenance, MaintenanceFile(config.node.maintenance_file), clock.now
        )
        """Keeps ``maintenance`` at the node's maintenance file, which every process of
        the node on this machine shares and a restart keeps (maintenance_file.py)."""
        self.peers = PeerHealth(
            PeerBackoff(config.node.peer_backoff_seconds, config.node.peer_backoff_max_seconds)
        )
        """Which peer nodes could be reached lately, and how fast (failover.py); the
        client proxy orders a provider's nodes by it, the metrics show it."""

    @property
    def directory(self) -> Directory:
        """The directory of the configuration applied last (one attribute load)."""
        return self.trust.directory

    @property
    def verifier(self) -> SignatureVerifier:
        return self.trust.verifier

    def hosts(self, client: ClientId) -> bool:
        """Whether the directory lists ``client`` as hosted on this node."""
        me = self.directory.node(self.id)
        return me is not None and client in me.clients

    def authenticate_client(
        self, transport: object, client: ClientId, connection: ConnectionType
    ) -> None:
        """Refuse with ``client.ssl_authentication_failed`` unless the connection
        ``transport`` carries satisfies ``connection`` (the client's connection type in
        the exchange's settings snapshot); the certificate comes from the TLS connection
        only."""
        tls, peer_der = tls_peer(transport)
        authenticate_client(
            client,
            connection,
            tls=tls,
            peer_der=peer_der,
            store=self.client_certs,
            now=self.clock.now(),
        )

    def log_context(self) -> LogContext:
        """What the log's services (witness, auditor API, head signer) use of this node:
        the same parts, read through this context, so they follow a new configuration."""
        return LogContext(
            node_id=self.id,
            log=self.log,
            clock=self.clock,
            audit=self.config.audit,
            peer_timeout_seconds=self.config.node.peer_timeout_seconds,
            directory=lambda: self.trust.directory,
            verifier=lambda: self.trust.verifier,
            client_ssl=lambda: self.trust.client_ssl,
            own_signer=lambda: self.signers.get(self.id.owner),
            own_evidence=self.own_ocsp.evidence,
            peer_status=self.peer_status,
            hosts=self.hosts,
            authenticate_client=lambda transport, client: self.authenticate_client(
                transport, client, ConnectionType.HTTPS
            ),
        )

    def check_globalconf(self, code: Code) -> None:
        """Refuse every exchange while the configuration is expired (X-Road does too)."""
        source = self.globalconf
        if source is None:
            return
        reason = source.outdated(self.clock.now())
        if reason is not None:
            raise GatewayError(code, reason)

    def check_instance(self, instance: str, codes: Refusals) -> None:
        """Refuse an exchange with an owner of another instance unless that instance is
        federated and its configuration is valid now (a foreign configuration that
        expired stops that instance only)."""
        directory, source = self.directory, self.globalconf
        if not isinstance(source, FederatedSource) or not isinstance(directory, FederatedDirectory):
            return  # a fixed directory (tests): no federation
        source.federation.check(directory, instance, self.clock.now(), codes)

    def own_status(self, signer: Signer, code: Code) -> tuple[OcspEvidence, OcspEvidence]:
        """This node's OCSP responses (auth, signing) to send now, or refuse with ``code``."""
        now = self.clock.now()
        try:
            return (
                self.own_ocsp.evidence(self.auth_ref, now),
                self.own_ocsp.evidence(signer.cert_ref, now),
            )
        except OwnStatusUnavailable as exc:
            raise GatewayError(code, str(exc)) from None

    def peer_status(
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
            directory = self.directory
            issuer = find_issuer(cert, directory.trust_roots())
            if issuer is None:
                raise OcspError(OcspFailure.WRONG_CERTIFICATE, "no trusted CA issued it")
            instance = owner_instance(cert)
            if instance is not None and issuer not in directory.trust_roots_for(instance):
                raise GatewayError(
                    _WRONG_CA.get(code, code),
                    f"{what()} names an owner in {instance} but was issued by "
                    f"{issuer.subject.rfc4514_string()}, which is not a CA of {instance}",
                )
            return cert, issuer

        try:
            return self.ocsp_cache.check(ref, encoded, now, subject)
        except OcspError as exc:
            raise GatewayError(
                code, f"{what()} has no valid OCSP status: {exc.reason.value}: {exc.detail}"
            ) from None


def owner_instance(cert: x509.Certificate) -> str | None:
    """The instance of the node or member a certificate names, if it follows either
    profile (the chain and the status are checked elsewhere)."""
    for owner in (node_id_of, member_id_of):
        try:
            return owner(cert).instance
        except (CertificateError, ValueError):
            continue
    return None


def certs(*signatures: VerifiedSignature | Signer) -> dict[str, tuple[bytes, str]]:
    """The certificates (DER and JWS protected header) the log stores once per ref."""
    return {s.cert_ref: (s.cert_der, s.jws_header) for s in signatures}


def signing_certificate(verified: VerifiedSignature) -> str:
    """How a refusal names a peer's signing certificate (built only when refusing)."""
    serial = verified.certificate.serial_number
    return f"the signing certificate of {verified.signer} (serial {serial:x})"
