"""The fuzz targets: every parser that takes bytes from outside, in one list.

A target turns one input (arbitrary bytes) into a call of a parser the way the product
calls it, and lets through only the refusal that parser documents: anything else
(``IndexError``, ``KeyError``, ``TypeError``, ``UnicodeDecodeError``,
``RecursionError``, an ``AssertionError`` of a round-trip property) is a crash. The same
list drives the hypothesis tests of the suite (``tests/unit/test_fuzz_parsers.py``) and
the coverage-guided run of ``make fuzz`` (``tests/fuzz/run.py``), so a target is written
once and both check it.

Each target has seeds: valid inputs taken from the test vectors or made by the product's
own builders (certificates, OCSP responses, time-stamp tokens, TUF metadata, an audit
bundle), which the fuzzers then damage. Setting a target up may need files (a TUF
client's state, a registry's database): ``open`` is a context manager that yields the
function to call and cleans up afterwards.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from gateway.audit.bundle import BundleFormatError
from gateway.audit.bundle_read import parse_entry_line, read_bundle
from gateway.central.errors import CentralError
from gateway.central.registration import client_document, sign_detached, verify_client_request
from gateway.conf.anchor import ConfigurationAnchorError, parse_anchor
from gateway.conf.globalconf import (
    CaEntry,
    GlobalConf,
    GlobalConfError,
    MemberEntry,
    NodeEntry,
    TsaEntry,
)
from gateway.conf.tufclient import ConfigClient
from gateway.core.canonical import NotCanonicalError, canonical_json, parse_canonical
from gateway.core.envelope import (
    MAX_QUERY,
    EnvelopeError,
    RequestHeader,
    ResponseHeader,
    check_path,
    check_query,
    decode_segment,
)
from gateway.core.errors import GatewayError
from gateway.core.ids import (
    GroupId,
    InvalidIdentifierError,
    MemberId,
    NodeId,
    ServiceId,
    SubsystemId,
    parse_client,
)
from gateway.core.jws import SignatureVerifier, parse_jws_chain
from gateway.core.openapi import parse_openapi
from gateway.core.protocol import ProtocolError, open_request
from gateway.node.clientproxy import parse_r1
from gateway.pki.ca import (
    create_root_ca,
    issue_certificate,
    issue_service_certificate,
    make_csr,
    make_service_csr,
)
from gateway.pki.keys import generate_key
from gateway.pki.ocsp import (
    OcspError,
    build_error_response,
    build_ocsp_request,
    build_ocsp_response,
    cert_id_for,
    parse_ocsp_request,
    verify_ocsp_response,
)
from gateway.pki.profiles import CertKind, ServiceKind
from gateway.pki.status import GOOD, RevocationError, Revoked, parse_reason, parse_serial
from gateway.pki.tsa import (
    TimestampError,
    build_timestamp_request,
    build_timestamp_response,
    message_imprint,
    parse_timestamp_request,
)
from gateway.pki.tsa_verify import verify_timestamp_response

VECTORS_FILE = Path(__file__).resolve().parents[1] / "vectors" / "envelope.json"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
"""The vectors' evaluation time; the OCSP and TSA seeds are made valid at it."""

Run = Callable[[bytes], None]


@dataclass(frozen=True)
class Target:
    """One parser under fuzzing: how to call it, what it may refuse with, its seeds."""

    name: str
    checks: str
    """What the target calls and which property it checks (docs/reliability.md)."""
    refusals: tuple[type[BaseException], ...]
    """The documented refusal: the only exceptions an input may cause."""
    seeds: Callable[[], list[bytes]]
    open: Callable[[], AbstractContextManager[Run]]


def refused(target: Target, run: Run, data: bytes) -> BaseException | None:
    """Call ``run`` on ``data``: its documented refusal is returned, anything else raised."""
    try:
        run(data)
    except target.refusals as exc:
        return exc
    return None


@contextmanager
def _plain(run: Run) -> Iterator[Run]:
    yield run


def _text(data: bytes) -> str:
    """Bytes as an HTTP header or request line reaches the code: non-UTF-8 bytes arrive
    as surrogate escapes."""
    return data.decode("utf-8", "surrogateescape")


@functools.cache
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return data


# ---------------------------------------------------------------------------- identifiers

_ID_TYPES = (MemberId, SubsystemId, ServiceId, NodeId, GroupId)


def run_ids(data: bytes) -> None:
    """Every identifier parser on one text; whatever parses prints back to itself."""
    text = _text(data)
    for kind in _ID_TYPES:
        try:
            parsed = kind.parse(text)
        except InvalidIdentifierError:
            continue
        assert kind.parse(str(parsed)) == parsed, (kind, text)
    client = parse_client(text)  # the refusal of this one is the target's
    assert parse_client(str(client)) == client, text


def _id_seeds() -> list[bytes]:
    return [
        b"DE-NRW/GOV/05974040",
        b"DE-NRW/GOV/05974040/gewerbeamt",
        b"DE-NRW/GOV/05974028/melderegister/personen",
        b"DE-NRW/GOV/05974040/ss1",
        b"DE-NRW/stadtwerke",
        b"DE-NRW/GOV/%27x%28%29/a%2B%2C.%3D",
        b" \tDE-NRW/COM/HRB4711 ",
    ]


# ------------------------------------------------------------------- the r1 path and query


def run_r1(data: bytes) -> None:
    """The consumer edge's request target, then the checks ``_read_call`` applies."""
    service, path, query = parse_r1(_text(data))
    assert ServiceId.parse(str(service)) == service
    check_path(path)
    check_query(query)


def _r1_seeds() -> list[bytes]:
    return [
        b"/r1/DE-NRW/GOV/05974028/melderegister/personen",
        b"/r1/DE-NRW/GOV/05974028/melderegister/personen?familienname=Schmidt&vornamen=Anna",
        b"/r1/DE-NRW/GOV/05974028/gewerberegister/betriebe/7/anzeigen?plz=59494",
        b"/r1/DE-NRW/GOV/05974028/melderegister/getOpenAPI?serviceCode=personen",
        b"/r1/DE-NRW/GOV/05974028/melderegister/personen/a%2F..%2Fb",
    ]


# ------------------------------------------------------------------------- canonical JSON


def run_canonical(data: bytes) -> None:
    """``parse_canonical``; what it accepts is exactly the canonical form of its value."""
    value = parse_canonical(data)
    assert canonical_json(value) == data


def _canonical_seeds() -> list[bytes]:
    cases = vectors()["canonical"]
    seeds = [bytes.fromhex(c["canonical_hex"]) for c in cases["valid"]]
    return seeds + [bytes.fromhex(c["bytes_hex"]) for c in cases["invalid"]]


# ------------------------------------------------------------ the envelope and its headers


def run_headers(data: bytes) -> None:
    """Both signed header parsers on the header bytes; a parsed header prints back to the
    same bytes (one spelling per header)."""
    parsed: list[RequestHeader | ResponseHeader] = []
    for kind in (RequestHeader, ResponseHeader):
        try:
            parsed.append(kind.from_bytes(data))
        except EnvelopeError:
            continue
    for header in parsed:
        assert header.to_bytes() == data
    if not parsed:
        raise EnvelopeError("malformed", "neither a request nor a response header")


def _header_seeds() -> list[bytes]:
    headers = vectors()["headers"]
    seeds = [c["header_utf8"].encode() for c in (*headers["request"], *headers["response"])]
    return seeds + [bytes.fromhex(c["header_hex"]) for c in headers["invalid"]]


@functools.cache
def _verifier() -> SignatureVerifier:
    root = x509.load_pem_x509_certificate(vectors()["trust"]["ca_cert_pem"].encode())
    return SignatureVerifier([root])


def run_open_request(data: bytes) -> None:
    """``open_request`` as the provider's node calls it: ``X-Gw-Envelope``, a newline,
    ``X-Gw-Signature``; the vectors' root is trusted."""
    envelope, _, signature = _text(data).partition("\n")
    open_request(
        envelope,
        signature,
        verifier=_verifier(),
        now=NOW,
        window=timedelta(seconds=300),
        admit=lambda header: None,
        vouch=lambda verified: verified,
    )


def _message_seeds() -> list[bytes]:
    return [
        f"{m['envelope']}\n{m['signature']}".encode()
        for m in vectors()["messages"]
        if m["kind"] == "request"
    ]


# ----------------------------------------------------------------------------------- JWS


def run_jws(data: bytes) -> None:
    """A compact JWS with detached payload: its chain, then its signature over the
    vectors' request header (so a seed verifies)."""
    text = _text(data)
    parse_jws_chain(text.partition(".")[0])
    _verifier().verify(text, _jws_payload(), NOW)


@functools.cache
def _jws_payload() -> bytes:
    message = next(m for m in vectors()["messages"] if m["expect"].get("valid"))
    return decode_segment(message["envelope"])


def _jws_seeds() -> list[bytes]:
    return [m["signature"].encode() for m in vectors()["messages"]]


# ---------------------------------------------------------------------------------- OCSP


@dataclass(frozen=True)
class _Pki:
    ca: x509.Certificate
    member_signature: str
    """A member's registration signature (``sign_detached``) over ``CLIENT_REQUEST``."""
    leaf: x509.Certificate
    responses: tuple[bytes, ...]
    requests: tuple[bytes, ...]
    tsa: x509.Certificate
    timestamp_responses: tuple[bytes, ...]
    timestamp_requests: tuple[bytes, ...]


IMPRINT = message_imprint(b"tree head 42 of DE-NRW/GOV/05974040/ss1")
CLIENT_REQUEST = client_document(
    "DE-NRW",
    NodeId("DE-NRW", "GOV", "05974040", "ss1"),
    SubsystemId("DE-NRW", "GOV", "05974040", "gewerbeamt"),
    NOW,
)


@functools.cache
def _pki() -> _Pki:
    issued = NOW - timedelta(days=1)
    ca_key = generate_key()
    ca = create_root_ca("Fuzz CA DE-NRW", ca_key, issued)
    node = NodeId("DE-NRW", "GOV", "05974040", "ss1")
    leaf = issue_certificate(
        make_csr(generate_key(), CertKind.AUTH, node), CertKind.AUTH, ca_key, ca, issued
    )
    responder_key = generate_key()
    responder = issue_service_certificate(
        make_service_csr(responder_key, "DE-NRW OCSP responder"),
        ServiceKind.OCSP,
        ca_key,
        ca,
        issued,
        30,
    )
    cert_id = cert_id_for(leaf, ca)
    good = build_ocsp_response(
        cert_id, GOOD, NOW, NOW + timedelta(hours=1), responder, responder_key, ca
    )
    by_ca = build_ocsp_response(
        cert_id,
        Revoked(NOW - timedelta(hours=1), x509.ReasonFlags.key_compromise),
        NOW,
        None,
        ca,
        ca_key,
        ca,
        responder_id=ocsp.OCSPResponderEncoding.NAME,
    )
    error = build_error_response(ocsp.OCSPResponseStatus.TRY_LATER)
    requests = (
        build_ocsp_request(leaf, ca),
        build_ocsp_request(leaf, ca, hashes.SHA1()),
    )
    tsa_key = generate_key()
    tsa = issue_service_certificate(
        make_service_csr(tsa_key, "DE-NRW time-stamping authority"),
        ServiceKind.TSA,
        ca_key,
        ca,
        issued,
        30,
    )
    ts_requests = (
        build_timestamp_request(IMPRINT, nonce=42),
        build_timestamp_request(IMPRINT, cert_req=False),
    )
    ts_responses = tuple(
        build_timestamp_response(r, tsa, tsa_key, [ca], NOW, serial)
        for serial, r in enumerate(ts_requests, start=1)
    )
    sign_key = generate_key()
    member = MemberId("DE-NRW", "GOV", "05974040")
    sign_cert = issue_certificate(
        make_csr(sign_key, CertKind.SIGN, member), CertKind.SIGN, ca_key, ca, issued
    )
    signature = sign_detached(canonical_json(CLIENT_REQUEST), sign_key, [sign_cert, ca])
    return _Pki(ca, signature, leaf, (good, by_ca, error), requests, tsa, ts_responses, ts_requests)


def run_ocsp(data: bytes) -> None:
    """``verify_ocsp_response`` of the leaf's status, as a node checks a peer's."""
    p = _pki()
    verify_ocsp_response(data, p.leaf, p.ca, NOW)


def run_ocsp_request(data: bytes) -> None:
    """``parse_ocsp_request``, as the OCSP responder reads a query."""
    parse_ocsp_request(data)


def run_timestamp(data: bytes) -> None:
    """``verify_timestamp_response`` against the one trusted TSA certificate."""
    p = _pki()
    verify_timestamp_response(data, p.tsa, IMPRINT, now=NOW, issuer=p.ca)


def run_timestamp_request(data: bytes) -> None:
    """``parse_timestamp_request``, as the TSA reads a query."""
    parse_timestamp_request(data)


def run_registration(data: bytes) -> None:
    """``verify_client_request`` with the input as the member's signature, as the
    central authority checks a registration request (the JWS and its ``x5c``)."""
    verify_client_request(CLIENT_REQUEST, _text(data), "DE-NRW", [_pki().ca], NOW)


def run_revocation_input(data: bytes) -> None:
    """The serial or else the reason an operator types to revoke (``gateway pki revoke``)."""
    text = _text(data)
    try:
        parse_serial(text)
    except RevocationError:
        parse_reason(text)


# --------------------------------------------------------- TUF, configuration and anchors

INSTANCE = "DE-NRW"


@functools.cache
def _globalconf() -> bytes:
    p = _pki()
    member = MemberEntry(MemberId(INSTANCE, "GOV", "05974040"), "Stadt Soest", ())
    sub = SubsystemId(INSTANCE, "GOV", "05974040", "gewerbeamt")
    member = MemberEntry(member.id, member.name, (sub,))
    node = NodeEntry(
        NodeId(INSTANCE, "GOV", "05974040", "ss1"),
        "https://127.0.0.1:8443",
        ("ab" * 32,),
        (member.id, sub),
    )
    conf = GlobalConf(
        INSTANCE,
        7,
        "2025-06-01T00:00:00Z",
        (member,),
        (node,),
        {GroupId(INSTANCE, "cities"): (sub,)},
        (CaEntry(p.ca, ("http://127.0.0.1:1/ocsp",)),),
        (TsaEntry("tsa", "http://127.0.0.1:1/tsa", p.tsa),),
    )
    return conf.to_bytes()


def run_globalconf(data: bytes) -> None:
    """``GlobalConf.from_bytes``, then what a node derives from it (its directory)."""
    GlobalConf.from_bytes(data).directory()


def run_anchor(data: bytes) -> None:
    """``parse_anchor`` (the file ``load_anchor`` reads) and the root's fingerprint."""
    parse_anchor(data).fingerprint()


@dataclass(frozen=True)
class _Repository:
    anchor: bytes
    files: dict[str, bytes]
    """Every file the repository serves, by its last URL segment."""


@functools.cache
def _repository() -> _Repository:
    from gateway.conf.tufdev import DevRepository

    with tempfile.TemporaryDirectory(prefix="fuzz-tuf-") as tmp:
        repo = DevRepository(Path(tmp), INSTANCE, expiry=timedelta(days=3650))
        repo.publish(_globalconf())
        files = {
            f.name: f.read_bytes()
            for folder in (repo.metadata_dir, repo.targets_dir)
            for f in folder.iterdir()
        }
        # Never contacted: the target's fetcher serves the files by name.
        anchor_doc = {
            **repo.anchor().to_json(),
            "metadata_url": "http://127.0.0.1:9/metadata/",
            "targets_url": "http://127.0.0.1:9/targets/",
        }
        anchor = json.dumps(anchor_doc).encode()
    return _Repository(anchor, files)


_TUF_FILES = ("root", "timestamp", "snapshot", "targets", "globalconf")


def _tuf_file(files: dict[str, bytes], role: str) -> str:
    return next(n for n in sorted(files) if n.split(".")[-2] == role)


def _tuf_refusals() -> tuple[type[BaseException], ...]:
    from tuf.api import exceptions as tuf_errors

    # What GlobalConfSource.bootstrap treats as a refused repository.
    return (tuf_errors.RepositoryError, tuf_errors.DownloadError, GlobalConfError, OSError)


@contextmanager
def _open_tuf() -> Iterator[Run]:
    """A node's TUF client over a repository whose one file the input replaces.

    The first byte picks the file (1.root.json as the anchor's root, timestamp,
    snapshot, targets or the globalconf.json target), the rest is its content; the
    client starts from an empty state each time, as a new node does.
    """
    from tuf.api import exceptions as tuf_errors
    from tuf.ngclient.fetcher import FetcherInterface

    repo = _repository()
    anchor = parse_anchor(repo.anchor)

    class Served(FetcherInterface):
        def __init__(self, files: dict[str, bytes]) -> None:
            self.files = files

        def _fetch(self, url: str) -> Iterator[bytes]:
            name = url.rsplit("/", 1)[-1]
            if name not in self.files:
                raise tuf_errors.DownloadHTTPError(f"{name} not found", 404)
            return iter([self.files[name]])

    with tempfile.TemporaryDirectory(prefix="fuzz-tuf-state-") as tmp:
        state = Path(tmp) / "state"

        def run(data: bytes) -> None:
            if not data:
                raise GlobalConfError("empty input")
            role = _TUF_FILES[data[0] % len(_TUF_FILES)]
            files = dict(repo.files)
            files[_tuf_file(files, role)] = data[1:]
            shutil.rmtree(state, ignore_errors=True)
            client = ConfigClient(anchor, state, fetcher=Served(files))
            fetched = client.fetch()
            GlobalConf.from_bytes(fetched.data)

        yield run


def _tuf_seeds() -> list[bytes]:
    files = _repository().files
    return [bytes([i]) + files[_tuf_file(files, r)] for i, r in enumerate(_TUF_FILES)]


# --------------------------------------------------------------------------- audit bundles


@functools.cache
def _bundle() -> bytes:
    from gateway.audit.export import Selection, export_bundle
    from gateway.sandbox.bench.audit import START, build_log

    with tempfile.TemporaryDirectory(prefix="fuzz-bundle-") as tmp:
        log = build_log(Path(tmp) / "log", 3, head_every=2)
        out = Path(tmp) / "bundle.jsonl"
        export_bundle(log.db, out, Selection(all=True), now=START + timedelta(days=1))
        return out.read_bytes()


def run_bundle(data: bytes) -> None:
    """``read_bundle`` on the lines of a file, as ``gateway audit verify`` splits it,
    and ``parse_entry_line`` on each line, as its worker processes do."""
    lines = data.splitlines(keepends=True)
    try:
        read_bundle(lines)
    finally:
        for number, line in enumerate(lines[1:], start=2):
            try:
                parse_entry_line(line, number)
            except BundleFormatError:
                continue


def _bundle_seeds() -> list[bytes]:
    bundle = _bundle()
    lines = bundle.splitlines(keepends=True)
    return [bundle, lines[0] + lines[-1]]


# ------------------------------------------------------------------------ OpenAPI documents


def run_openapi(data: bytes) -> None:
    """``parse_openapi`` on a registry's service description."""
    try:
        parse_openapi(data)
    except GatewayError as exc:
        assert exc.code.value.startswith("client.service_description."), exc.code
        raise


def _openapi_seeds() -> list[bytes]:
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "Melderegister", "version": "2.1"},
        "paths": {
            "/personen": {"get": {}, "parameters": [], "summary": "x"},
            "/gewerbeanzeigen/{aktenzeichen}": {"get": {}, "delete": {}},
            "/suche*/[alt]?/{id}": {"put": {}},
            "/extern": {"$ref": "#/components/pathItems/x"},
        },
    }
    return [json.dumps(doc).encode(), json.dumps({"swagger": "2.0"}).encode()]


# ----------------------------------------------------------------- the registries' queries

_REGISTRY_PATHS = (
    ("melderegister", "/personen"),
    ("melderegister", "/datenuebermittlung/personen"),
    ("gewerberegister", "/betriebe"),
    ("ihk", "/benachrichtigungen"),
)


@contextmanager
def _open_registries() -> Iterator[Run]:
    """The sample registries as FastAPI apps: the first byte picks an endpoint, the rest
    is its query string (``=`` and ``&`` kept, every other byte percent-encoded, cut to
    the ``MAX_QUERY`` characters a node forwards).

    A server error propagates from the test client as an exception, so a crash here is
    a 500 the registry would have answered; an answer must be a documented refusal.
    """
    with warnings.catch_warnings():
        # Starlette warns when it finds httpx instead of httpx2 (tests/unit/test_melderegister.py).
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    from registries.gewerberegister.app import create_app as gewerberegister
    from registries.ihk.app import create_app as ihk
    from registries.melderegister.app import create_app as melderegister

    with tempfile.TemporaryDirectory(prefix="fuzz-registries-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        clients = {
            "melderegister": stack.enter_context(
                TestClient(melderegister(root / "melderegister.db"))
            ),
            "gewerberegister": stack.enter_context(
                TestClient(gewerberegister(root / "gewerberegister.db"))
            ),
            "ihk": stack.enter_context(TestClient(ihk(root / "ihk.db"))),
        }

        def run(data: bytes) -> None:
            if not data:
                return
            registry, path = _REGISTRY_PATHS[data[0] % len(_REGISTRY_PATHS)]
            # A node forwards at most MAX_QUERY characters of query (check_query).
            query = quote_from_bytes(data[1:], safe="=&")[:MAX_QUERY]
            answer = clients[registry].get(f"{path}?{query}")
            assert answer.status_code in {200, 404, 409, 422}, (answer.status_code, answer.text)
            assert answer.headers["content-type"].startswith("application/"), answer.headers

        yield run


def _registry_seeds() -> list[bytes]:
    return [
        b"\x00familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14",
        b"\x01familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14",
        b"\x02name=B%C3%A4ckerei&plz=59494&ort=Soest",
        b"\x03aktenzeichen=GA-2026%2F0815",
    ]


# ------------------------------------------------------------------------------ the list

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "ids",
            "every identifier parser and parse_client; parse(str(x)) == x",
            (InvalidIdentifierError,),
            _id_seeds,
            lambda: _plain(run_ids),
        ),
        Target(
            "r1",
            "the consumer edge's /r1/ request target (parse_r1), check_path, check_query",
            (GatewayError, EnvelopeError),
            _r1_seeds,
            lambda: _plain(run_r1),
        ),
        Target(
            "canonical",
            "parse_canonical; canonical_json(parse_canonical(b)) == b",
            (NotCanonicalError,),
            _canonical_seeds,
            lambda: _plain(run_canonical),
        ),
        Target(
            "headers",
            "RequestHeader/ResponseHeader.from_bytes; to_bytes() gives the same bytes",
            (EnvelopeError,),
            _header_seeds,
            lambda: _plain(run_headers),
        ),
        Target(
            "open_request",
            "open_request on X-Gw-Envelope and X-Gw-Signature (all receiver checks)",
            (ProtocolError,),
            _message_seeds,
            lambda: _plain(run_open_request),
        ),
        Target(
            "jws",
            "parse_jws_chain and SignatureVerifier.verify of a detached JWS",
            (EnvelopeError,),
            _jws_seeds,
            lambda: _plain(run_jws),
        ),
        Target(
            "ocsp",
            "verify_ocsp_response of a peer's OCSP response",
            (OcspError,),
            lambda: list(_pki().responses),
            lambda: _plain(run_ocsp),
        ),
        Target(
            "ocsp_request",
            "parse_ocsp_request, the OCSP responder's input",
            (OcspError,),
            lambda: list(_pki().requests),
            lambda: _plain(run_ocsp_request),
        ),
        Target(
            "timestamp",
            "verify_timestamp_response of a TSA's answer (RFC 3161)",
            (TimestampError,),
            lambda: list(_pki().timestamp_responses),
            lambda: _plain(run_timestamp),
        ),
        Target(
            "timestamp_request",
            "parse_timestamp_request, the TSA's input",
            (TimestampError,),
            lambda: list(_pki().timestamp_requests),
            lambda: _plain(run_timestamp_request),
        ),
        Target(
            "registration",
            "verify_client_request of the central authority on a member's signature",
            (CentralError,),
            lambda: [_pki().member_signature.encode()],
            lambda: _plain(run_registration),
        ),
        Target(
            "revocation_input",
            "parse_serial and parse_reason of gateway pki revoke",
            (RevocationError,),
            lambda: [b"0x1f:2a", b"keyCompromise", b"key_compromise", b"7"],
            lambda: _plain(run_revocation_input),
        ),
        Target(
            "globalconf",
            "GlobalConf.from_bytes and its directory",
            (GlobalConfError,),
            lambda: [_globalconf()],
            lambda: _plain(run_globalconf),
        ),
        Target(
            "tuf",
            "the node's TUF client (ConfigClient.fetch) over damaged root, timestamp, "
            "snapshot, targets or globalconf.json",
            _tuf_refusals(),
            _tuf_seeds,
            _open_tuf,
        ),
        Target(
            "anchor",
            "parse_anchor (load_anchor's reading) and the root fingerprint",
            (ConfigurationAnchorError,),
            lambda: [_repository().anchor],
            lambda: _plain(run_anchor),
        ),
        Target(
            "bundle",
            "read_bundle and parse_entry_line of an audit bundle",
            (BundleFormatError,),
            _bundle_seeds,
            lambda: _plain(run_bundle),
        ),
        Target(
            "openapi",
            "parse_openapi; refusals carry a client.service_description.* code",
            (GatewayError,),
            _openapi_seeds,
            lambda: _plain(run_openapi),
        ),
        Target(
            "registries",
            "the registries' query parameters over FastAPI (200, 404, 409 or 422, JSON)",
            (),
            _registry_seeds,
            _open_registries,
        ),
    )
}
