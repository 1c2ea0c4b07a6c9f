"""The OCSP responder (RFC 6960 appendix A) and the TSA (RFC 3161 section 3.4) over HTTP.

Both are thin: parse the request, ask ``gateway.pki`` for the signed answer, send it.
They share one aiohttp application (``/ocsp``, ``/tsa``) because they are operated by
the same party as the CA and are off the message path: a node fetches OCSP every
1200 s and stamps its log every 60 s. aiohttp is the node's framework already
(docs/adr/0001), so a deployment runs one HTTP stack.

Revocation state is read from the CA directory at every request, so
``gateway pki revoke`` shows up in the very next OCSP answer without a restart.

Validity of OCSP answers: thisUpdate is now and nextUpdate is thisUpdate + 3600 s by
default, equal to X-Road's freshness window F. A node refetches every 1200 s and keeps
serving its cached answer when the responder is down until F runs out; a nextUpdate
shorter than F would cut that outage tolerance short (and one under 1200 s would make
every cached answer expire before its refresh). A longer one buys nothing, because a
verifier refuses answers older than F anyway. The delay until a revocation is enforced
everywhere is therefore bounded by F, whatever nextUpdate says.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp

from gateway.keys.files import is_encrypted_key_file, load_certificate, load_private_key
from gateway.net.guard import GuardSettings, guarded_site
from gateway.net.httpversion import http1_only
from gateway.pki.keys import public_key_der
from gateway.pki.ocsp import (
    OcspError,
    build_error_response,
    build_ocsp_response,
    parse_ocsp_request,
)
from gateway.pki.profiles import CertificateError, check_ocsp_responder_profile, check_tsa_profile
from gateway.pki.status import UNKNOWN, CertStatus, RevocationError, serial_hex
from gateway.pki.tsa import DEFAULT_POLICY_OID, build_rejection, build_timestamp_response
from gateway.trust.ca_store import CA_CERT_NAME
from gateway.trust.revocation import status_of

log = logging.getLogger(__name__)

OCSP_PATH = "/ocsp"
TSA_PATH = "/tsa"
OCSP_REQUEST_TYPE = "application/ocsp-request"
OCSP_RESPONSE_TYPE = "application/ocsp-response"
TSA_QUERY_TYPE = "application/timestamp-query"
TSA_REPLY_TYPE = "application/timestamp-reply"

DEFAULT_OCSP_VALIDITY = timedelta(seconds=3600)
"""nextUpdate - thisUpdate; see the module docstring for why it equals the freshness window."""

# Both requests are a few hundred bytes; anything near this is not a query.
MAX_REQUEST_BYTES = 16 * 1024

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class OcspSettings:
    """What the responder signs with and where it reads revocation state."""

    ca_dir: Path
    issuer: x509.Certificate
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    validity: timedelta = DEFAULT_OCSP_VALIDITY


@dataclass(frozen=True)
class TsaSettings:
    """What the TSA signs with; ``serials`` yields a fresh TSTInfo serial per token."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...] = ()
    policy_oid: str = DEFAULT_POLICY_OID
    serials: Callable[[], int] = x509.random_serial_number


@dataclass(frozen=True)
class TrustSettings:
    """Either service may be left out; at least one must be configured."""

    ocsp: OcspSettings | None = None
    tsa: TsaSettings | None = None
    clock: Clock = field(default_factory=SystemClock)


def _check_valid_now(cert: x509.Certificate, path: Path, now: datetime) -> None:
    """Every answer signed with an expired certificate would be refused by its verifier,
    so a service that starts with one only fails later and less clearly."""
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CertificateError(
            f"{path} is not valid now (valid {cert.not_valid_before_utc.isoformat()} to "
            f"{cert.not_valid_after_utc.isoformat()}); issue a new one with "
            "'gateway pki issue-service'"
        )


def _service_key(
    path: Path, passphrase: bytes | None, development: bool
) -> ec.EllipticCurvePrivateKey:
    """A service's key file under the node's rule: encrypted PKCS#8, or plain only in a
    development set-up."""
    if not development and not is_encrypted_key_file(path):
        raise ValueError(
            f"{path} is an unencrypted private key: encrypt it with 'gateway keys encrypt "
            f"{path}', or start with --development for a development set-up"
        )
    return load_private_key(path, passphrase)


def load_settings(
    *,
    ca_dir: Path | None = None,
    ocsp_cert: Path | None = None,
    ocsp_key: Path | None = None,
    tsa_cert: Path | None = None,
    tsa_key: Path | None = None,
    ocsp_validity: timedelta = DEFAULT_OCSP_VALIDITY,
    policy_oid: str = DEFAULT_POLICY_OID,
    clock: Clock | None = None,
    passphrase: bytes | None = None,
    development: bool = True,
) -> TrustSettings:
    """Load and check keys and certificates, so a misconfiguration fails at start-up.

    The OCSP responder must be the CA itself or a delegated responder the CA issued;
    the TSA certificate must fit RFC 3161's profile; each key must match its certificate
    and each certificate must be valid now. Encrypted key files are opened with
    ``passphrase``; a plain one is refused unless ``development`` (the node's rule,
    docs/adr/0041: ``gateway trust serve`` passes ``--development`` through).
    """
    if (ocsp_cert is None) != (ocsp_key is None) or (tsa_cert is None) != (tsa_key is None):
        raise ValueError("give each service's certificate together with its key")
    if ocsp_cert is None and tsa_cert is None:
        raise ValueError("configure the OCSP responder, the TSA, or both")
    if ocsp_validity <= timedelta(0):
        raise ValueError("the OCSP validity must be positive")
    try:
        x509.ObjectIdentifier(policy_oid)
    except ValueError:
        raise ValueError(f"TSA policy {policy_oid!r} is not a dotted OID") from None
    clock = clock or SystemClock()
    now = clock.now()
    ocsp: OcspSettings | None = None
    if ocsp_cert is not None and ocsp_key is not None:
        if ca_dir is None:
            raise ValueError("the OCSP responder needs the CA directory (--ca)")
        issuer = load_certificate(ca_dir / CA_CERT_NAME)
        cert = load_certificate(ocsp_cert)
        key = _service_key(ocsp_key, passphrase, development)
        if public_key_der(key) != public_key_der(cert):
            raise ValueError(f"{ocsp_key} does not belong to {ocsp_cert}")
        if public_key_der(cert) != public_key_der(issuer):
            try:
                cert.verify_directly_issued_by(issuer)
            except (InvalidSignature, ValueError, TypeError):
                raise CertificateError(
                    f"{ocsp_cert} is not issued by the CA in {ca_dir}; a responder may "
                    "only answer for its own CA"
                ) from None
            check_ocsp_responder_profile(cert)
        _check_valid_now(cert, ocsp_cert, now)
        ocsp = OcspSettings(ca_dir, issuer, cert, key, ocsp_validity)
    tsa: TsaSettings | None = None
    if tsa_cert is not None and tsa_key is not None:
        cert = load_certificate(tsa_cert)
        key = _service_key(tsa_key, passphrase, development)
        if public_key_der(key) != public_key_der(cert):
            raise ValueError(f"{tsa_key} does not belong to {tsa_cert}")
        check_tsa_profile(cert)
        _check_valid_now(cert, tsa_cert, now)
        tsa = TsaSettings(cert, key, policy_oid=policy_oid)
    return TrustSettings(ocsp, tsa, clock)


# --- OCSP ---------------------------------------------------------------------------------


def _ocsp_answer(settings: OcspSettings, clock: Clock, der: bytes) -> bytes:
    """Always an OCSP response: protocol errors are answered in OCSP, not in HTTP."""
    try:
        cert_id = parse_ocsp_request(der)
    except OcspError as exc:
        log.info("OCSP: malformed request: %s", exc.detail)
        return build_error_response(x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    try:
        status: CertStatus = UNKNOWN
        if cert_id.is_issued_by(settings.issuer):
            status = status_of(settings.ca_dir, cert_id.serial_number)
        this_update = clock.now().astimezone(UTC).replace(microsecond=0)
        answer = build_ocsp_response(
            cert_id,
            status,
            this_update,
            this_update + settings.validity,
            settings.cert,
            settings.key,
            settings.issuer,
        )
    except RevocationError as exc:
        # Never guess: a client must not read "good" out of a broken revocation database.
        # The message names the file and the damage; a traceback would add nothing.
        log.error("OCSP: answering internalError: %s", exc)
        return build_error_response(x509_ocsp.OCSPResponseStatus.INTERNAL_ERROR)
    except (OSError, ValueError):
        log.exception("OCSP: cannot answer for serial %s", serial_hex(cert_id.serial_number))
        return build_error_response(x509_ocsp.OCSPResponseStatus.INTERNAL_ERROR)
    log.info("OCSP: serial %s is %s", serial_hex(cert_id.serial_number), type(status).__name__)
    return answer


def _ocsp_response(answer: bytes) -> web.Response:
    # Revocation must be visible at once, so shared caches are told not to reuse answers.
    return web.Response(
        body=answer,
        content_type=OCSP_RESPONSE_TYPE,
        headers={"Cache-Control": "no-cache"},
    )


def _unsupported_type(expected: str) -> web.Response:
    return web.Response(status=415, text=f"send the request as {expected}\n")


# --- TSA ----------------------------------------------------------------------------------


def _tsa_answer(settings: TsaSettings, clock: Clock, der: bytes) -> bytes:
    try:
        return build_timestamp_response(
            der,
            settings.cert,
            settings.key,
            settings.chain,
            clock.now(),
            settings.serials(),
            settings.policy_oid,
        )
    except (ValueError, CertificateError):
        log.exception("TSA: cannot issue a time stamp")
        return build_rejection("system_failure", "the TSA cannot issue a time stamp now")


# --- application --------------------------------------------------------------------------


@web.middleware
async def _size_limit(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Refuse a declared body over the limit before reading any of it, on every route.

    ``client_max_size`` alone stops a body only once that much has been read, and only
    on the routes that read one; a chunked body is still counted by it. A connection
    lost within the body (the client left, or stalled and the connection guard closed
    it) is nobody's internal error: there is no one left to answer.
    """
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_REQUEST_BYTES, actual_size=request.content_length
        )
    try:
        return await handler(request)
    except ConnectionResetError:
        raise web.HTTPBadRequest(text="the connection closed within the body\n") from None


def create_app(settings: TrustSettings) -> web.Application:
    """The HTTP application for the configured services; no state outside ``settings``."""
    if settings.ocsp is None and settings.tsa is None:
        raise ValueError("configure the OCSP responder, the TSA, or both")
    app = web.Application(
        client_max_size=MAX_REQUEST_BYTES, middlewares=[http1_only(), _size_limit]
    )
    clock = settings.clock

    async def health(request: web.Request) -> web.Response:
        return web.json_response(
            {"ocsp": settings.ocsp is not None, "tsa": settings.tsa is not None}
        )

    app.router.add_get("/health", health)

    ocsp = settings.ocsp
    if ocsp is not None:

        async def ocsp_post(request: web.Request) -> web.Response:
            if request.content_type != OCSP_REQUEST_TYPE:
                return _unsupported_type(OCSP_REQUEST_TYPE)
            return _ocsp_response(_ocsp_answer(ocsp, clock, await request.read()))

        async def ocsp_get(request: web.Request) -> web.Response:
            # RFC 6960 A.1: GET {url}/{url-encoding of base-64 encoding of the DER request}.
            # Read the raw path: base64 may contain '/', which routing would split on.
            encoded = request.raw_path.split("?", 1)[0][len(OCSP_PATH) + 1 :]
            try:
                der = base64.b64decode(unquote(encoded), validate=True)
            except (binascii.Error, ValueError):
                log.info("OCSP: GET path is not base64")
                answer = build_error_response(x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
                return _ocsp_response(answer)
            return _ocsp_response(_ocsp_answer(ocsp, clock, der))

        app.router.add_post(OCSP_PATH, ocsp_post)
        app.router.add_get(OCSP_PATH + "/{request:.+}", ocsp_get)

    tsa = settings.tsa
    if tsa is not None:

        async def tsa_post(request: web.Request) -> web.Response:
            if request.content_type != TSA_QUERY_TYPE:
                return _unsupported_type(TSA_QUERY_TYPE)
            answer = _tsa_answer(tsa, clock, await request.read())
            return web.Response(body=answer, content_type=TSA_REPLY_TYPE)

        app.router.add_post(TSA_PATH, tsa_post)

    return app


async def run_trust(
    settings: TrustSettings,
    host: str,
    port: int,
    *,
    ready: Callable[[str], None] | None = None,
    limits: GuardSettings | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; ``ready`` gets the base URL once the socket is bound.

    ``limits`` bounds slow and numerous clients (gateway/net/guard.py; default settings
    when not given).
    """
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    try:
        site = guarded_site(runner, host, port, limits or GuardSettings(), name="trust services")
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        if ready is not None:
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            ready(f"http://{shown}:{bound_port}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
