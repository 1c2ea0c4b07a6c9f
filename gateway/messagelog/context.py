"""What the log's services in the node (auditor API, witness, head signer) need from it.

They used to be handed the whole ``Node`` and read its private members, which tied
``gateway.node.server`` and these modules into an import cycle. A ``LogContext`` names
exactly what they use; the node builds one from itself (``Node._log_context``), and
tests can build one from parts. Values that change when a new global configuration is
applied (the directory, the verifier, the TLS client context) are callables, so a
service always sees the configuration in force.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography import x509

from gateway.conf.directory import Directory
from gateway.core.errors import Code
from gateway.core.ids import ClientId, NodeId
from gateway.core.jws import SignatureVerifier, Signer
from gateway.messagelog.store import LogWriter
from gateway.node.clock import Clock
from gateway.node.config import AuditSection
from gateway.pki.ocsp_cache import OcspEvidence

__all__ = ["LogContext", "PeerStatusCheck"]


class PeerStatusCheck(Protocol):
    """The node's check of an OCSP response a peer sent for one of its certificates
    (``encoded``, base64url DER, or None), judged at ``now``; raises ``GatewayError``
    with ``code`` when it is missing, bad or not good."""

    def __call__(
        self,
        encoded: str | None,
        header: str,
        ref: str,
        certificate: Callable[[], x509.Certificate],
        what: Callable[[], str],
        code: Code,
        now: datetime,
    ) -> OcspEvidence: ...


@dataclass(frozen=True, slots=True)
class LogContext:
    """One node's view for the auditor API and the witness."""

    node_id: NodeId
    log: LogWriter
    """The writer (side writes) and, through ``log.store``, the read side."""
    clock: Clock
    audit: AuditSection
    """``[audit]``: auditors, the admin token, witnessing interval and peers."""
    peer_timeout_seconds: float
    directory: Callable[[], Directory]
    verifier: Callable[[], SignatureVerifier]
    client_ssl: Callable[[], ssl.SSLContext]
    """The TLS client context of the configuration in force (peer connections)."""
    own_signer: Callable[[], Signer | None]
    """The key of the member that owns the node, if the node holds it."""
    own_evidence: Callable[[str, datetime], OcspEvidence]
    """The node's current OCSP evidence for one of its own certificates (by ref);
    raises ``gateway.node.ocsp.OwnStatusUnavailable`` while there is none."""
    peer_status: PeerStatusCheck
    hosts: Callable[[ClientId], bool]
    """Whether an information system is a client hosted at this node."""
    authenticate_client: Callable[[object, ClientId], None]
    """Raises ``GatewayError`` unless the connection (an aiohttp transport) presented a
    TLS client certificate registered for the client and valid now."""
