"""The consumer side of a node: X-Road REST ``r1`` for its own information systems
(X-Road's client proxy).

:meth:`ClientProxy.handle_consumer` is the story of one exchange as docs/protocol.md
sections 10 and 11 tell it: who calls what, the signed request, the provider's node,
its signed response (``gateway.core.protocol.open_response``), one durable commit of
both messages, and the answer to the client.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from multidict import CIMultiDict

from gateway.conf.directory import NodeInfo
from gateway.core.datasubject import DATA_SUBJECT_HEADER
from gateway.core.encoding import b64url, format_time
from gateway.core.envelope import (
    EnvelopeError,
    RequestHeader,
    body_sha256,
    body_sha256_hex,
    check_headers,
    check_path,
    check_query,
    check_represented_party,
)
from gateway.core.errors import ERROR_TABLE, Code, GatewayError
from gateway.core.headers import end_to_end_headers
from gateway.core.ids import ClientId, ServiceId, parse_client
from gateway.core.jws import Signer, VerifiedSignature
from gateway.core.protocol import OpenedResponse, ProtocolError, open_response
from gateway.messagelog import Kind, LogRecord, MessageLogError, Role
from gateway.net.http1server import ClientGone, HttpResponse, Request
from gateway.node.context import NodeContext, certs, signing_certificate
from gateway.node.federation import CONSUMER
from gateway.node.monitoring import Exchange, Side
from gateway.node.transport import PeerClient, PeerUnreachable, Reply
from gateway.node.wire import (
    AUTH_OCSP_HEADER,
    ENVELOPE_HEADER,
    SIGN_OCSP_HEADER,
    SIGNATURE_HEADER,
    optional_text,
    read_body,
    refusal,
)
from gateway.pki.ocsp_cache import OcspEvidence

log = logging.getLogger("gateway.node")

_KNOWN_CODES: Final = {c.value: spec for c, spec in ERROR_TABLE.items()}
"""The error table by code, for checking a provider's refusal before relaying it."""


@dataclass(frozen=True, slots=True)
class Call:
    """What the client asked for (protocol.md section 11), checked before signing."""

    client: ClientId
    service: ServiceId
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    xroad_id: str
    user_id: str | None
    issue: str | None
    represented_party: str | None
    """``X-Road-Represented-Party``: the party the client acts for, ``[CLASS/]CODE``."""
    signer: Signer
    own_status: tuple[OcspEvidence, OcspEvidence]
    """This node's OCSP responses (authentication, signing), sent with the request."""


@dataclass(frozen=True, slots=True)
class Sent:
    """The signed request as it went to the provider's node."""

    header: RequestHeader
    header_bytes: bytes
    signature: str
    body: bytes


class ClientProxy:
    """Answers ``/r1/...`` from this node's information systems."""

    def __init__(self, context: NodeContext, peer: PeerClient) -> None:
        self._ctx = context
        self._peer = peer

    async def handle_consumer(self, request: Request) -> HttpResponse:
        """Sign, relay, verify, log both messages, answer: X-Road REST ``r1``.

        Every refusal made once the exchange has its ids carries them (``X-Road-Id``,
        and ``X-Road-Request-Id`` once the message exists): the provider's node may
        already have logged the exchange, and the caller must be able to name it.
        """
        ids: dict[str, str] = {}
        monitoring = self._ctx.monitoring
        ex = monitoring.begin(Side.CONSUMER)
        try:
            # First of all: a node in maintenance starts nothing new, and one it
            # admitted is counted in flight until it is answered.
            with self._ctx.maintenance.admit(Code.CP_MAINTENANCE_MODE):
                response = await self._exchange(request, ids, ex)
        except GatewayError as refused:
            refused.headers.update(ids)
            monitoring.refused_with(ex, refused)
            raise
        except ClientGone:
            # Not a refusal: the client closed the connection within the body
            # (wire.read_body); nobody is left to answer, and it is no internal error.
            raise
        except Exception:
            failure = GatewayError(Code.CP_INTERNAL_ERROR, "unexpected error; see the node's log")
            monitoring.refused_with(ex, failure)
            if not ids:
                raise
            log.exception("%s internal error (%s)", self._ctx.id, failure.detail)
            failure.headers.update(ids)
            raise failure from None
        relayed = response.header("X-Road-Error")
        if relayed is not None:  # the provider's refusal, relayed
            response.headers.extend(ids.items())
            monitoring.refused(ex, relayed, response.status, len(response.body))
        else:
            monitoring.succeeded(ex)
        return response

    async def _exchange(self, request: Request, ids: dict[str, str], ex: Exchange) -> HttpResponse:
        """The exchange of ``handle_consumer``; records the exchange's ids in ``ids`` and
        what monitoring needs in ``ex``."""
        ctx = self._ctx
        ctx.check_globalconf(Code.CP_GLOBAL_CONF_OUTDATED)
        ctx.timestamper.check(provider=False)  # before any work: the log cannot be stamped
        call = self._read_call(request, ids)
        ex.client, ex.service, ex.xroad_id = str(call.client), str(call.service), call.xroad_id
        body = await read_body(request, ctx.limits.max_body, Code.REQUEST_TOO_LARGE)
        ex.request_size = len(body)
        targets = self._route(call.service)
        sent = self._sign(call, request.method, body)
        ids["X-Road-Request-Id"] = sent.header.message_id
        ex.message_id = sent.header.message_id
        reply = await self._deliver(targets, call, sent, ex)
        if "X-Road-Error" in reply.headers:
            return self._relay_provider_error(reply.status, reply.headers, reply.body)
        opened = self._open(sent, reply)
        await self._log(call, sent, opened, reply.body, ex)
        return self._to_client(call, sent, opened, reply.body)

    def _read_call(self, request: Request, ids: dict[str, str]) -> Call:
        """Section 11: the service from the path, the client this node must host and
        hold a key for, authenticated as its connection type requires, this node's
        OCSP evidence, and every limit of section 5.1.
        Records the exchange's ``X-Road-Id`` in ``ids`` as soon as it is known."""
        ctx = self._ctx
        service, path, query = parse_r1(request.raw_path)
        client_values = request.headers.getall("X-Road-Client", [])
        if not client_values:
            raise GatewayError(Code.INVALID_CLIENT_IDENTIFIER, "X-Road-Client header is missing")
        client = parse_client(client_values[-1])
        if not ctx.hosts(client):
            raise GatewayError(Code.UNKNOWN_CLIENT, f"{client} is not a client of node {ctx.id}")
        # Before anything is signed or sent: the connection must satisfy the client's
        # connection type (its registered TLS certificate for https) in the settings in
        # force now; the rest of this exchange needs nothing else of them.
        connection = ctx.settings.connection_type(client)
        ctx.authenticate_client(request.transport, client, connection)
        signer = ctx.signers.get(client.member)
        if signer is None:
            raise GatewayError(
                Code.UNKNOWN_CLIENT, f"node {ctx.id} holds no signing key for {client.member}"
            )
        own_status = ctx.own_status(signer, Code.CP_OCSP_UNAVAILABLE)
        xroad_id = optional_text(request, "X-Road-Id", 255) or (
            f"{ctx.directory.instance}-{uuid.uuid4()}"
        )
        ids["X-Road-Id"] = xroad_id
        user_id = optional_text(request, "X-Road-UserId", 255)
        issue = optional_text(request, "X-Road-Issue", 1024)
        represented_party = optional_text(request, "X-Road-Represented-Party", 255)
        try:
            if represented_party is not None:
                check_represented_party(represented_party)
            kept_headers = check_headers(end_to_end_headers(request.headers.items()))
            check_path(path)
            check_query(query)
        except EnvelopeError as exc:
            raise GatewayError(Code.BAD_REQUEST, exc.message) from None
        return Call(
            client,
            service,
            path,
            query,
            kept_headers,
            xroad_id,
            user_id,
            issue,
            represented_party,
            signer,
            own_status,
        )

    def _route(self, service: ServiceId) -> list[NodeInfo]:
        """The nodes hosting the provider, in the order to try them: reachable and fast
        first (``PeerHealth.order``, gateway/node/failover.py)."""
        self._ctx.check_instance(service.provider.instance, CONSUMER)  # federation
        providers = self._ctx.directory.nodes_hosting(service.provider)
        if not providers:
            raise GatewayError(Code.CP_UNKNOWN_MEMBER, f"no node hosts {service.provider}")
        return self._ctx.peers.order(providers, time.monotonic())

    def _sign(self, call: Call, method: str, body: bytes) -> Sent:
        """Section 10, step 1: the request header, checked against every limit the
        provider applies, signed with the client's member's key."""
        header = RequestHeader(
            message_id=str(uuid.uuid4()),
            xroad_id=call.xroad_id,
            client=call.client,
            service=call.service,
            method=method,
            path=call.path,
            query=call.query,
            headers=call.headers,
            user_id=call.user_id,
            issue=call.issue,
            created=format_time(self._ctx.clock.now()),
            body_sha256=body_sha256(body),
            body_length=len(body),
            represented_party=call.represented_party,
        )
        try:
            header_bytes = header.checked_bytes()  # every limit the provider applies
        except EnvelopeError as exc:
            raise GatewayError(Code.BAD_REQUEST, exc.message) from None
        return Sent(header, header_bytes, call.signer.sign(header_bytes), body)

    async def _deliver(
        self, targets: list[NodeInfo], call: Call, sent: Sent, ex: Exchange
    ) -> Reply:
        """Section 10, step 2, over the provider's nodes in turn.

        The next node is tried only when no connection to this one could be made
        (``PeerUnreachable``): nothing of the message was sent, so it is executed at
        most once. Any failure once a connection exists is refused as it is, never
        sent again: the node may have called its registry already.
        """
        peers, monitoring = self._ctx.peers, self._ctx.monitoring
        missed: list[tuple[NodeInfo, PeerUnreachable]] = []
        for target in targets:
            ex.peer_node = str(target.id)
            started = time.monotonic()
            try:
                reply = await self._send(target, call, sent)
            except PeerUnreachable as failure:
                pause = peers.unreachable(target.id, time.monotonic())
                missed.append((target, failure))
                if target is not targets[-1]:
                    monitoring.failovers.labels(str(target.id)).inc()
                log.warning(
                    "%s: %s (%s); passed over for %.1f s",
                    self._ctx.id,
                    target.id,
                    failure.message,
                    pause,
                )
                continue
            except GatewayError:
                peers.connected(target.id)
                raise
            peers.connected(target.id, time.monotonic() - started)
            return reply
        raise _unreachable(call.service, missed)

    async def _send(self, target: NodeInfo, call: Call, sent: Sent) -> Reply:
        """Section 10, step 2: POST over pinned mTLS with this node's OCSP evidence."""
        own_auth, own_sign = call.own_status
        # The node's certificate must come from a CA of its own instance (docs/adr/0040).
        issuers = frozenset(self._ctx.directory.trust_roots_for(target.id.instance))
        return await self._peer.post(
            target.address,
            target.auth_cert_sha256,
            self._ctx.trust.client_ssl,
            {
                ENVELOPE_HEADER: b64url(sent.header_bytes),
                SIGNATURE_HEADER: sent.signature,
                SIGN_OCSP_HEADER: own_sign.encoded,
                AUTH_OCSP_HEADER: own_auth.encoded,
                "Content-Type": "application/octet-stream",
            },
            sent.body,
            issuers,
        )

    def _relay_provider_error(
        self, status: int, headers: CIMultiDict[str], body: bytes
    ) -> HttpResponse:
        """Section 10, step 3: pass the provider node's refusal on unchanged, if it is one."""
        code = headers["X-Road-Error"]
        known = _KNOWN_CODES
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
        log.warning(
            "%s relayed the provider's refusal (%s): %s", self._ctx.id, doc.get("detail"), code
        )
        return HttpResponse(status, body, [("X-Road-Error", code)], "application/json")

    def _open(self, sent: Sent, reply: Reply) -> OpenedResponse[OcspEvidence]:
        """Section 10, step 4: a signed 200 from a node with a good status, then the
        protocol's checks of the response (``open_response``)."""
        ctx = self._ctx
        envelope = reply.headers.get(ENVELOPE_HEADER)
        signature = reply.headers.get(SIGNATURE_HEADER)
        if reply.status != 200 or envelope is None or signature is None:
            raise GatewayError(
                Code.CP_INVALID_MESSAGE,
                f"the provider's node answered {reply.status} without a signed response",
            )
        now = ctx.clock.now()
        peer_der = reply.peer_cert
        if peer_der is None:
            raise GatewayError(
                Code.CP_SSL_AUTHENTICATION_FAILED, "the provider's node presented no certificate"
            )
        ctx.peer_status(
            reply.headers.get(AUTH_OCSP_HEADER),
            AUTH_OCSP_HEADER,
            hashlib.sha256(peer_der).hexdigest(),
            lambda: x509.load_der_x509_certificate(peer_der),
            lambda: "the authentication certificate of the provider's node",
            Code.CP_CERT_VALIDATION,
            now,
        )

        def vouch(verified: VerifiedSignature) -> OcspEvidence:
            return ctx.peer_status(
                reply.headers.get(SIGN_OCSP_HEADER),
                SIGN_OCSP_HEADER,
                verified.cert_ref,
                lambda: verified.certificate,
                lambda: signing_certificate(verified),
                Code.CP_CERT_VALIDATION,
                now,
            )

        try:
            return open_response(
                envelope,
                signature,
                reply.body,
                request=sent.header,
                request_bytes=sent.header_bytes,
                verifier=ctx.verifier,
                now=now,
                window=ctx.limits.window,
                vouch=vouch,
            )
        except ProtocolError as exc:
            raise refusal(exc, provider=False) from None

    async def _log(
        self,
        call: Call,
        sent: Sent,
        opened: OpenedResponse[OcspEvidence],
        body: bytes,
        ex: Exchange,
    ) -> None:
        """Section 10, step 5: both messages, durably, each with its signer's OCSP, and
        the exchange's operational record in the same commit."""
        header, response = sent.header, opened.header
        own_sign = call.own_status[1]
        monitoring = self._ctx.monitoring
        record = monitoring.record(ex, status=response.status, response_size=len(body))
        try:
            with monitoring.timing_commit():
                await self._ctx.log.append(
                    [
                        LogRecord(
                            role=Role.CONSUMER,
                            kind=Kind.REQUEST,
                            message_id=header.message_id,
                            xroad_id=header.xroad_id,
                            client=str(call.client),
                            service=str(call.service),
                            created=header.created,
                            header=sent.header_bytes,
                            body=sent.body,
                            signature=sent.signature,
                            cert_ref=call.signer.cert_ref,
                            ocsp_ref=own_sign.ref,
                            body_sha256=body_sha256_hex(header.body_sha256),
                        ),
                        LogRecord(
                            role=Role.CONSUMER,
                            kind=Kind.RESPONSE,
                            message_id=header.message_id,
                            xroad_id=header.xroad_id,
                            client=str(call.client),
                            service=str(call.service),
                            created=response.created,
                            header=opened.header_bytes,
                            body=body,
                            signature=opened.signature.jws,
                            cert_ref=opened.signature.cert_ref,
                            ocsp_ref=opened.status.ref,
                            # open_response checked this digest against ``body``
                            body_sha256=body_sha256_hex(response.body_sha256),
                        ),
                    ],
                    certs=certs(call.signer, opened.signature),
                    ocsp={own_sign.ref: own_sign.der, opened.status.ref: opened.status.der},
                    operational=[record],
                )
        except MessageLogError as exc:
            raise GatewayError(Code.CP_MESSAGELOG_FAILED, str(exc)) from None

    @staticmethod
    def _to_client(
        call: Call, sent: Sent, opened: OpenedResponse[OcspEvidence], body: bytes
    ) -> HttpResponse:
        """Section 11: the provider's status, end-to-end headers and body, with the
        X-Road headers that name this exchange."""
        # The provider signed these, but only end-to-end headers reach the client: framing
        # and protocol headers are this hop's business, whatever a provider signs.
        out = CIMultiDict(end_to_end_headers(opened.header.headers))
        out.popall(DATA_SUBJECT_HEADER, None)  # the provider's business, never the client's
        out["X-Road-Id"] = sent.header.xroad_id
        out["X-Road-Request-Id"] = sent.header.message_id
        out["X-Road-Request-Hash"] = opened.header.request_hash
        out["X-Road-Client"] = str(call.client)
        out["X-Road-Service"] = str(call.service)
        return HttpResponse(opened.header.status, body, out.items())


def _unreachable(
    service: ServiceId, missed: list[tuple[NodeInfo, PeerUnreachable]]
) -> GatewayError:
    """The refusal once no node of the provider could be reached, naming each node
    tried and why: ``ssl_authentication_failed`` if every one failed its TLS
    authentication, ``network_error`` otherwise."""
    codes = {failure.code for _, failure in missed}
    code = codes.pop() if len(codes) == 1 else Code.CP_NETWORK_ERROR
    tried = "; ".join(f"{node.id}: {failure.message}" for node, failure in missed)
    if len(missed) == 1:
        return GatewayError(code, tried)
    return GatewayError(
        code,
        f"none of the {len(missed)} nodes hosting {service.provider} could be reached: {tried}",
    )


def parse_r1(raw_target: str) -> tuple[ServiceId, str, str]:
    """The service, the path after it and the query of an ``/r1/`` request target, as
    the request line spells it (still percent-encoded); refuses with ``GatewayError``."""
    raw_path, _, query = raw_target.partition("?")
    segments = raw_path.split("/")
    if len(segments) < 7:
        raise GatewayError(
            Code.BAD_REQUEST,
            "the path must be /r1/{instance}/{class}/{member}/{subsystem}/{service}[/path]",
        )
    service = ServiceId.from_parts(segments[2:7], Code.INVALID_SERVICE_IDENTIFIER)
    path = "/" + "/".join(segments[7:]) if len(segments) > 7 else ""
    return service, path, query
