"""The provider side of a node: answer a peer's signed request (X-Road's server proxy).

:meth:`ServerProxy.handle_exchange` is the story of one exchange as docs/protocol.md
section 9 tells it, step by step: who is talking (TLS), the signed request
(``gateway.core.protocol.open_request``), whether this node provides the service and
may answer, the body, the replay guard, the registry call, and one durable commit of
request and signed response before anything leaves the node.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from gateway.conf.directory import NodeInfo
from gateway.core.datasubject import DataSubjectError, split_data_subjects
from gateway.core.encoding import b64url, format_time
from gateway.core.envelope import (
    EnvelopeError,
    RequestHeader,
    ResponseHeader,
    body_sha256,
    body_sha256_hex,
    request_hash,
)
from gateway.core.errors import Code, GatewayError
from gateway.core.headers import end_to_end_headers
from gateway.core.jws import Signer, VerifiedSignature
from gateway.core.protocol import OpenedRequest, ProtocolError, open_request
from gateway.messagelog import Kind, LogRecord, MessageLogError, ReplayError, Role
from gateway.messagelog.tracker import details_of
from gateway.net.http1server import ClientGone, HttpResponse, Request
from gateway.node.config import ServiceSection
from gateway.node.context import NodeContext, certs, signing_certificate
from gateway.node.federation import PROVIDER
from gateway.node.metadata import Answer, MetadataServices, is_metadata
from gateway.node.monitoring import Exchange, Side
from gateway.node.settings.snapshot import SettingsSnapshot
from gateway.node.tls import peer_fingerprint
from gateway.node.transport import RegistryClient
from gateway.node.wire import (
    AUTH_OCSP_HEADER,
    ENVELOPE_HEADER,
    SIGN_OCSP_HEADER,
    SIGNATURE_HEADER,
    read_body,
    refusal,
)
from gateway.pki.ocsp import OcspError, OcspFailure
from gateway.pki.ocsp_cache import OcspEvidence

log = logging.getLogger("gateway.node")


@dataclass(frozen=True, slots=True)
class Accepted:
    """A request that passed every check before the registry is called (steps 1-13)."""

    opened: OpenedRequest[OcspEvidence]
    """The signed request, with the OCSP evidence of its signing certificate."""
    record: LogRecord
    """Its log entry, committed with the response (or alone if there is none)."""
    signer: Signer
    """The service member's key this node answers with."""
    own_status: tuple[OcspEvidence, OcspEvidence]
    """This node's OCSP responses (authentication, signing), sent with the answer."""
    settings: SettingsSnapshot
    """The settings in force when the exchange was admitted, used to its end."""


def registry_headers(header: RequestHeader) -> list[tuple[str, str]]:
    """What the registry receives: the signed end-to-end headers, then X-Road's headers
    from the signed header's own fields, as X-Road's provider side passes them on.

    ``X-Road-*`` names inside the signed header list are dropped: an honest consumer's
    node never signs them (``end_to_end_headers`` at its edge), and a registry must be
    able to trust that ``X-Road-Client`` is the one the signature vouches for.
    """
    out = end_to_end_headers(header.headers)
    out += [
        ("X-Road-Client", str(header.client)),
        ("X-Road-Id", header.xroad_id),
        ("X-Road-Request-Id", header.message_id),
    ]
    if header.user_id is not None:
        out.append(("X-Road-UserId", header.user_id))
    if header.issue is not None:
        out.append(("X-Road-Issue", header.issue))
    if header.represented_party is not None:
        out.append(("X-Road-Represented-Party", header.represented_party))
    return out


class ServerProxy:
    """Answers ``POST /gw/v1/exchange`` from peer nodes."""

    def __init__(
        self, context: NodeContext, registry: RegistryClient, metadata: MetadataServices
    ) -> None:
        self._ctx = context
        self._registry = registry
        self._metadata = metadata

    async def handle_exchange(self, request: Request) -> HttpResponse:
        """One exchange from a peer node, counted and recorded for monitoring (a
        success's record is committed with its log entries in ``_answer``)."""
        monitoring = self._ctx.monitoring
        ex = monitoring.begin(Side.PROVIDER)
        try:
            # Before any check or work: a node in maintenance accepts no new exchange
            # (metadata services included), and finishes those it admitted.
            with self._ctx.maintenance.admit(Code.SP_MAINTENANCE_MODE):
                response = await self._exchange(request, ex)
        except GatewayError as refused:
            monitoring.refused_with(ex, refused)
            raise
        except ClientGone:
            raise  # the peer closed the connection within the body: no answer, no count
        except Exception:
            monitoring.refused(ex, Code.SP_INTERNAL_ERROR.value, 500)
            raise
        monitoring.succeeded(ex)
        return response

    async def _exchange(self, request: Request, ex: Exchange) -> HttpResponse:
        """Checks in order, each before any later work: peer, client, signature and
        freshness, service, access, body digest, replay; then call the registry, sign,
        and log request and response in one commit before answering."""
        ctx = self._ctx
        ctx.check_globalconf(Code.SP_GLOBAL_CONF_OUTDATED)  # step 0
        ctx.timestamper.check(provider=True)  # step 0: the log cannot be stamped
        peer, now = self._authenticate_peer(request)  # steps 1, 1a
        ex.peer_node = str(peer.id)
        opened = self._open(request, peer, now)  # steps 2-8
        header = opened.header
        ex.client, ex.service = str(header.client), str(header.service)
        ex.message_id, ex.xroad_id = header.message_id, header.xroad_id
        signer = ctx.signers.get(header.service.member)  # step 9
        if not ctx.hosts(header.service.provider) or signer is None:
            raise GatewayError(Code.SP_UNKNOWN_SERVICE, f"{header.service} is not provided here")
        own_status = ctx.own_status(signer, Code.SP_OCSP_UNAVAILABLE)  # step 9a
        groups = ctx.directory.groups_of(header.client)
        # Admission: this exchange runs to its end under the settings in force now, so
        # a right revoked from here on does not break it (docs/adr/0030).
        settings = ctx.settings
        section = self._metadata.authorize(header, groups, settings)  # step 10
        body = await read_body(request, ctx.limits.max_body, Code.SP_REQUEST_TOO_LARGE)  # 11
        ex.request_size = len(body)
        try:
            opened.check_body(body)  # step 12
        except ProtocolError as exc:
            raise refusal(exc, provider=True) from None
        if not ctx.replay.claim(str(header.client), header.message_id, opened.created, now):
            raise GatewayError(  # step 13
                Code.SP_REPLAY_DETECTED,
                f"message {header.message_id} from {header.client} seen before",
            )
        record = self._request_record(opened, body)
        accepted = Accepted(opened, record, signer, own_status, settings)
        answer, subjects = await self._call(accepted, groups, section, body)  # steps 14, 14a
        return await self._answer(accepted, answer, subjects, ex)  # steps 14b-16

    def _authenticate_peer(self, request: Request) -> tuple[NodeInfo, datetime]:
        """Steps 1 and 1a: the TLS client certificate is a registered node's, with a
        good status; returns that node and the time every later check uses."""
        ctx = self._ctx
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        fingerprint = peer_fingerprint(ssl_object)
        peer = ctx.directory.node_by_auth_cert(fingerprint) if fingerprint else None
        if peer is None or fingerprint is None:
            raise GatewayError(
                Code.SP_SSL_AUTHENTICATION_FAILED,
                "the TLS peer's certificate is not registered for any node",
            )
        now = ctx.clock.now()

        def peer_certificate() -> x509.Certificate:
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if not der:
                raise OcspError(OcspFailure.WRONG_CERTIFICATE, "no TLS peer certificate")
            return x509.load_der_x509_certificate(der)

        ctx.peer_status(
            request.headers.get(AUTH_OCSP_HEADER),
            AUTH_OCSP_HEADER,
            fingerprint,
            peer_certificate,
            lambda: f"the authentication certificate of node {peer.id}",
            Code.SP_CERT_VALIDATION,
            now,
        )
        return peer, now

    def _open(self, request: Request, peer: NodeInfo, now: datetime) -> OpenedRequest[OcspEvidence]:
        """Steps 2 to 8: the signed request, from a node that hosts its client."""
        ctx = self._ctx

        def admit(header: RequestHeader) -> None:  # steps 4 and 5
            client = header.client
            ctx.check_instance(client.instance, PROVIDER)  # federation
            if not ctx.directory.is_known_client(client):
                raise GatewayError(Code.SP_UNKNOWN_MEMBER, f"{client} is not known in the instance")
            if client not in peer.clients:
                raise GatewayError(
                    Code.SP_SSL_AUTHENTICATION_FAILED, f"node {peer.id} does not host {client}"
                )

        def vouch(verified: VerifiedSignature) -> OcspEvidence:  # step 7a
            return ctx.peer_status(
                request.headers.get(SIGN_OCSP_HEADER),
                SIGN_OCSP_HEADER,
                verified.cert_ref,
                lambda: verified.certificate,
                lambda: signing_certificate(verified),
                Code.SP_CERT_VALIDATION,
                now,
            )

        try:
            return open_request(
                request.headers.get(ENVELOPE_HEADER),
                request.headers.get(SIGNATURE_HEADER),
                verifier=ctx.verifier,
                now=now,
                window=ctx.limits.window,
                admit=admit,
                vouch=vouch,
            )
        except ProtocolError as exc:
            raise refusal(exc, provider=True) from None

    @staticmethod
    def _request_record(opened: OpenedRequest[OcspEvidence], body: bytes) -> LogRecord:
        header = opened.header
        return LogRecord(
            role=Role.PROVIDER,
            kind=Kind.REQUEST,
            message_id=header.message_id,
            xroad_id=header.xroad_id,
            client=str(header.client),
            service=str(header.service),
            created=header.created,
            header=opened.header_bytes,
            body=body,
            signature=opened.signature.jws,
            cert_ref=opened.signature.cert_ref,
            ocsp_ref=opened.status.ref,
            # built only after check_body held this digest to ``body`` (step 12)
            body_sha256=body_sha256_hex(header.body_sha256),
        )

    async def _call(
        self,
        accepted: Accepted,
        groups: frozenset[Any],
        section: ServiceSection | None,
        body: bytes,
    ) -> tuple[Answer, tuple[str, ...]]:
        """Step 14: the answer of the registry (or of a metadata service), and the data
        subjects the registry named (step 14a)."""
        header = accepted.opened.header
        service = header.service
        subjects: tuple[str, ...] = ()
        try:
            if is_metadata(service):
                answer = await self._metadata.answer(header, groups, section, accepted.settings)
            else:
                assert section is not None
                url = section.url + header.path + (f"?{header.query}" if header.query else "")
                reply = await self._registry.call(
                    header.method,
                    url,
                    registry_headers(header),
                    body,
                    section.timeout_seconds,
                    service=service,
                    tls=accepted.settings.registry_tls.get(service),
                )
                # The data subjects are for this node's log only: recorded, never signed.
                try:
                    kept, subjects = split_data_subjects(reply.headers.items())
                except DataSubjectError as exc:
                    raise GatewayError(
                        Code.SP_INVALID_DATA_SUBJECT,
                        f"the registry of {service} sent a malformed X-Data-Subject: {exc}",
                    ) from None
                answer = (reply.status, end_to_end_headers(kept), reply.body)
        except GatewayError:
            # The registry may have acted on the request: log it and make its id durable,
            # so the same signed message is refused after a restart as well.
            await self._log_unanswered(accepted)
            raise
        return answer, subjects

    async def _log_unanswered(self, accepted: Accepted) -> None:
        record, opened = accepted.record, accepted.opened
        try:
            await self._ctx.log.append(
                [record],
                certs=certs(opened.signature),
                ocsp={opened.status.ref: opened.status.der},
                replay_key=(record.client, record.message_id, record.created),
            )
        except (MessageLogError, ReplayError) as exc:
            log.error(
                "%s could not log unanswered request %s: %s",
                self._ctx.id,
                record.message_id,
                exc,
            )

    async def _answer(
        self, accepted: Accepted, answer: Answer, subjects: tuple[str, ...], ex: Exchange
    ) -> HttpResponse:
        """Sign the response and log request and response in one durable commit.

        The request's id goes into ``seen_request`` in the same transaction, so the
        replay guard survives restarts; nothing leaves this node before the commit.
        The response carries the OCSP responses taken before the registry was called:
        still fresh, since a node refreshes long before the window ends.
        """
        ctx = self._ctx
        opened, signer = accepted.opened, accepted.signer
        request = opened.header
        own_auth, own_sign = accepted.own_status
        status, headers, body = answer
        response = ResponseHeader(
            message_id=request.message_id,
            xroad_id=request.xroad_id,
            client=request.client,
            service=request.service,
            request_hash=request_hash(opened.header_bytes),
            status=status,
            headers=tuple(headers),
            created=format_time(ctx.clock.now()),
            body_sha256=body_sha256(body),
            body_length=len(body),
        )
        try:
            response_bytes = response.checked_bytes()  # every limit the consumer applies
        except EnvelopeError as exc:
            # Nothing is signed; the registry was called, so the request is logged as in
            # a failed registry call (protocol.md section 9, step 14b).
            await self._log_unanswered(accepted)
            raise GatewayError(
                Code.SP_INVALID_RESPONSE,
                f"the registry's answer for {request.service} cannot be signed: {exc.message}",
            ) from None
        signature = signer.sign(response_bytes)
        monitoring = ctx.monitoring
        record = monitoring.record(ex, status=status, response_size=len(body))
        try:
            with monitoring.timing_commit():
                await ctx.log.append(
                    [
                        accepted.record,
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
                            body_sha256=body_sha256_hex(response.body_sha256),
                            subjects=subjects,
                            read=details_of(request, status) if subjects else None,
                        ),
                    ],
                    certs=certs(opened.signature, signer),
                    ocsp={opened.status.ref: opened.status.der, own_sign.ref: own_sign.der},
                    replay_key=(str(request.client), request.message_id, request.created),
                    operational=[record],
                )
        except ReplayError:
            raise GatewayError(
                Code.SP_REPLAY_DETECTED, f"message {request.message_id} seen before"
            ) from None
        except MessageLogError as exc:
            raise GatewayError(Code.SP_MESSAGELOG_FAILED, str(exc)) from None
        return HttpResponse(
            200,
            body,
            [
                (ENVELOPE_HEADER, b64url(response_bytes)),
                (SIGNATURE_HEADER, signature),
                (SIGN_OCSP_HEADER, own_sign.encoded),
                (AUTH_OCSP_HEADER, own_auth.encoded),
                ("Content-Type", "application/octet-stream"),
            ],
        )
