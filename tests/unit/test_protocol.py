"""Opening a signed request or response: every check, its reason, and their order.

``gateway.core.protocol`` is where the order of docs/protocol.md sections 9 and 10
lives; these tests pin it with real keys and certificates, and the node's one table
from reasons to error codes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from gateway.core.encoding import b64url, format_time
from gateway.core.envelope import RequestHeader, ResponseHeader, body_sha256, request_hash
from gateway.core.errors import ERROR_TABLE, Code
from gateway.core.ids import MemberId
from gateway.core.jws import VerifiedSignature
from gateway.core.protocol import (
    OpenedRequest,
    OpenedResponse,
    ProtocolError,
    Reason,
    open_request,
    open_response,
)
from gateway.node.wire import REFUSALS, refusal
from tests.unit.test_envelope import (
    BODY,
    CONSUMER,
    NOW,
    PROVIDER,
    WINDOW,
    _request,
    _signer,
    _verifier,
)

OTHER = MemberId("EE", "GOV", "70000099")
RESPONSE_BODY = b'{"found":1}'


class Trace:
    """Records the caller's hooks as ``open_request``/``open_response`` call them."""

    def __init__(self, *, refuse: str | None = None) -> None:
        self.calls: list[str] = []
        self.refuse = refuse

    def admit(self, header: RequestHeader) -> None:
        self.calls.append("admit")
        if self.refuse == "admit":
            raise LookupError("refused by admit")

    def vouch(self, verified: VerifiedSignature) -> str:
        self.calls.append("vouch")
        if self.refuse == "vouch":
            raise LookupError("refused by vouch")
        return f"status of {verified.cert_ref}"


def _open_request(
    header: RequestHeader | None = None,
    *,
    signer: MemberId = CONSUMER,
    envelope: str | None = None,
    signature: str | None = None,
    trace: Trace | None = None,
    now: Any = NOW,
) -> OpenedRequest[str]:
    data = (header or _request()).to_bytes()
    trace = trace or Trace()
    return open_request(
        b64url(data) if envelope is None else envelope,
        _signer(signer).sign(data) if signature is None else signature,
        verifier=_verifier(),
        now=now,
        window=WINDOW,
        admit=trace.admit,
        vouch=trace.vouch,
    )


def _reason(run: Any) -> Reason:
    with pytest.raises(ProtocolError) as caught:
        run()
    return caught.value.reason


# --------------------------------------------------------------------------- requests


def test_a_good_request_opens() -> None:
    trace = Trace()
    opened = _open_request(trace=trace)
    assert opened.header == _request()
    assert opened.header_bytes == _request().to_bytes()
    assert opened.signature.signer == CONSUMER
    assert opened.created == NOW
    assert opened.status == f"status of {opened.signature.cert_ref}"
    assert trace.calls == ["admit", "vouch"]
    opened.check_body(BODY)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"envelope": ""}, Reason.MALFORMED),
        ({"envelope": "not base64url!"}, Reason.MALFORMED),
        ({"envelope": b64url(b'{"v":1}')}, Reason.MALFORMED),
        ({"signature": "a.b.c"}, Reason.SIGNATURE),
        ({"signer": PROVIDER}, Reason.SIGNER),
        ({"now": NOW + WINDOW + timedelta(seconds=1)}, Reason.EXPIRED),
    ],
)
def test_each_request_check_has_its_reason(changes: dict[str, Any], reason: Reason) -> None:
    assert _reason(lambda: _open_request(**changes)) == reason


@pytest.mark.parametrize("missing", ["envelope", "signature"])
def test_a_request_without_envelope_or_signature_is_malformed(missing: str) -> None:
    data = _request().to_bytes()
    parts: dict[str, str | None] = {
        "envelope": b64url(data),
        "signature": _signer().sign(data),
        missing: None,
    }
    trace = Trace()
    with pytest.raises(ProtocolError) as caught:
        open_request(
            parts["envelope"],
            parts["signature"],
            verifier=_verifier(),
            now=NOW,
            window=WINDOW,
            admit=trace.admit,
            vouch=trace.vouch,
        )
    assert caught.value.reason == Reason.MALFORMED
    assert trace.calls == []


def test_a_request_signed_under_an_untrusted_root_is_a_certificate_refusal() -> None:
    data = _request().to_bytes()
    untrusted = _signer(CONSUMER, "Other Root").sign(data)
    assert _reason(lambda: _open_request(signature=untrusted)) == Reason.CERTIFICATE


def test_the_body_is_checked_against_digest_and_length() -> None:
    opened = _open_request()
    assert _reason(lambda: opened.check_body(BODY + b" ")) == Reason.BODY
    short = _open_request(_request(body_length=len(BODY) + 1))
    assert _reason(lambda: short.check_body(BODY)) == Reason.BODY


def test_admit_runs_after_decoding_and_before_the_signature() -> None:
    """The sender is checked before any signature work (section 9, steps 3 to 6)."""
    trace = Trace(refuse="admit")
    with pytest.raises(LookupError):
        _open_request(signature="a.b.c", trace=trace)
    assert trace.calls == ["admit"]
    undecodable = Trace()
    assert _reason(lambda: _open_request(envelope="!", trace=undecodable)) == Reason.MALFORMED
    assert undecodable.calls == []


def test_vouch_runs_after_the_signer_and_before_the_time_window() -> None:
    """Steps 7, 7a, 8: a wrong signer never reaches the OCSP check; an expired
    message from the right signer does, and that check's refusal comes first."""
    mismatch = Trace()
    assert _reason(lambda: _open_request(signer=OTHER, trace=mismatch)) == Reason.SIGNER
    assert mismatch.calls == ["admit"]
    late = NOW + WINDOW + timedelta(seconds=1)
    expired = Trace()
    assert _reason(lambda: _open_request(now=late, trace=expired)) == Reason.EXPIRED
    assert expired.calls == ["admit", "vouch"]
    refusing = Trace(refuse="vouch")
    with pytest.raises(LookupError):
        _open_request(now=late, trace=refusing)
    assert refusing.calls == ["admit", "vouch"]


# --------------------------------------------------------------------------- responses


def _response_to(request: RequestHeader, **changes: Any) -> ResponseHeader:
    header = ResponseHeader(
        message_id=request.message_id,
        xroad_id=request.xroad_id,
        client=request.client,
        service=request.service,
        request_hash=request_hash(request.to_bytes()),
        status=200,
        headers=(("content-type", "application/json"),),
        created=format_time(NOW + timedelta(seconds=1)),
        body_sha256=body_sha256(RESPONSE_BODY),
        body_length=len(RESPONSE_BODY),
    )
    return replace(header, **changes)


def _open_response(
    response: ResponseHeader | None = None,
    *,
    body: bytes = RESPONSE_BODY,
    signer: MemberId = PROVIDER,
    request: RequestHeader | None = None,
    trace: Trace | None = None,
    now: Any = NOW,
) -> OpenedResponse[str]:
    sent = request or _request()
    data = (response or _response_to(sent)).to_bytes()
    trace = trace or Trace()
    return open_response(
        b64url(data),
        _signer(signer).sign(data),
        body,
        request=sent,
        request_bytes=sent.to_bytes(),
        verifier=_verifier(),
        now=now,
        window=WINDOW,
        vouch=trace.vouch,
    )


def test_a_good_response_opens() -> None:
    trace = Trace()
    opened = _open_response(trace=trace)
    assert opened.header == _response_to(_request())
    assert opened.header_bytes == _response_to(_request()).to_bytes()
    assert opened.signature.signer == PROVIDER
    assert opened.status == f"status of {opened.signature.cert_ref}"
    assert trace.calls == ["vouch"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"signer": CONSUMER}, Reason.SIGNER),
        ({"body": RESPONSE_BODY + b"x"}, Reason.BODY),
        (
            {"response": _response_to(_request(), message_id=_request().message_id[:-1] + "0")},
            Reason.INCONSISTENT,
        ),
        ({"response": _response_to(_request(), request_hash="x")}, Reason.INCONSISTENT),
        ({"response": _response_to(_request(), xroad_id="EE-other")}, Reason.INCONSISTENT),
        ({"now": NOW + WINDOW + timedelta(seconds=2)}, Reason.EXPIRED),
    ],
)
def test_each_response_check_has_its_reason(changes: dict[str, Any], reason: Reason) -> None:
    assert _reason(lambda: _open_response(**changes)) == reason


def test_a_response_that_is_a_request_is_malformed() -> None:
    data = _request().to_bytes()
    with pytest.raises(ProtocolError) as caught:
        open_response(
            b64url(data),
            _signer(PROVIDER).sign(data),
            BODY,
            request=_request(),
            request_bytes=data,
            verifier=_verifier(),
            now=NOW,
            window=WINDOW,
            vouch=Trace().vouch,
        )
    assert caught.value.reason == Reason.MALFORMED


def test_response_checks_run_in_the_documented_order() -> None:
    """Section 10, step 4: signer, then vouch, then body, then consistency, then time."""
    mismatch = Trace()
    assert _reason(lambda: _open_response(signer=CONSUMER, trace=mismatch)) == Reason.SIGNER
    assert mismatch.calls == []
    refusing = Trace(refuse="vouch")
    with pytest.raises(LookupError):
        _open_response(body=b"", trace=refusing)
    late = NOW + WINDOW + timedelta(seconds=2)
    other = _response_to(_request(), request_hash="x")
    assert _reason(lambda: _open_response(other, body=b"", now=late)) == Reason.BODY
    assert _reason(lambda: _open_response(other, now=late)) == Reason.INCONSISTENT


# --------------------------------------------------------------------------- the node's table


def test_every_reason_has_a_code_on_each_side() -> None:
    assert set(REFUSALS) == set(Reason)
    for provider_code, consumer_code in REFUSALS.values():
        assert provider_code.value.startswith("server.serverproxy.")
        assert consumer_code.value.startswith("server.clientproxy.")
        assert provider_code in ERROR_TABLE and consumer_code in ERROR_TABLE


@pytest.mark.parametrize(
    ("reason", "provider", "consumer"),
    [
        (Reason.MALFORMED, Code.SP_INVALID_MESSAGE, Code.CP_INVALID_MESSAGE),
        (Reason.SIGNATURE, Code.SP_INVALID_SIGNATURE, Code.CP_INVALID_SIGNATURE),
        (Reason.CERTIFICATE, Code.SP_INVALID_CERTIFICATE, Code.CP_INVALID_CERTIFICATE),
        (Reason.SIGNER, Code.SP_SIGNER_MISMATCH, Code.CP_INVALID_SIGNATURE),
        (Reason.BODY, Code.SP_INVALID_SIGNATURE, Code.CP_INVALID_SIGNATURE),
        (Reason.EXPIRED, Code.SP_MESSAGE_EXPIRED, Code.CP_INCONSISTENT_RESPONSE),
        (Reason.INCONSISTENT, Code.SP_INVALID_MESSAGE, Code.CP_INCONSISTENT_RESPONSE),
    ],
)
def test_the_codes_protocol_md_documents(reason: Reason, provider: Code, consumer: Code) -> None:
    exc = ProtocolError(reason, "why")
    assert refusal(exc, provider=True).code == provider
    assert refusal(exc, provider=False).code == consumer
    assert refusal(exc, provider=True).message == "why"
