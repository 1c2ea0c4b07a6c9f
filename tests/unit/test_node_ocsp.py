"""A node's own OCSP statuses (``gateway.node.ocsp.OwnOcsp``) with an injected clock and
an in-process responder: fail closed at start, carry on through an outage until the
freshness window ends, say why, recover without a restart, and stop at revocation."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from cryptography import x509

from gateway.messagelog import MessageLog, StoredStatus, load_statuses
from gateway.messagelog.sqlite_writes import store_status
from gateway.node.ocsp import FetchError, OwnCertificate, OwnOcsp, OwnStatusUnavailable
from gateway.pki.ocsp import OcspFailure, build_ocsp_response, parse_ocsp_request
from gateway.pki.ocsp_cache import OcspCache
from gateway.pki.status import GOOD, UNKNOWN, CertStatus, Revoked
from tests.unit.test_ocsp_cache import NOW, F, forged, pki

URL = "http://ocsp.example/ocsp"
BACKUP = "http://ocsp-backup.example/ocsp"


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.value = now

    def now(self) -> datetime:
        return self.value


class Responder:
    """Answers like ``gateway trust serve``: thisUpdate now, nextUpdate now + F."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.down: set[str] = set()
        self.statuses: dict[int, CertStatus] = {}
        self.answer: bytes | None = None
        self.calls: list[str] = []

    async def __call__(self, url: str, request: bytes) -> bytes:
        self.calls.append(url)
        if url in self.down:
            raise FetchError("cannot be reached: ClientConnectorError connection refused")
        if self.answer is not None:
            return self.answer
        p = pki()
        cert_id = parse_ocsp_request(request)
        now = self.clock.now()
        return build_ocsp_response(
            cert_id,
            self.statuses.get(cert_id.serial_number, GOOD),
            now,
            now + F,
            p.responder,
            p.responder_key,
            p.ca,
        )


def own(cert: x509.Certificate, label: str, *urls: str) -> OwnCertificate:
    return OwnCertificate(label, cert, pki().ca, urls or (URL,))


@dataclass
class Setup:
    manager: OwnOcsp
    clock: Clock
    responder: Responder
    auth: OwnCertificate
    sign: OwnCertificate


def setup(refresh: timedelta = timedelta(seconds=1200), *urls: str) -> Setup:
    clock = Clock()
    responder = Responder(clock)
    auth = own(pki().other, "authentication certificate of DE-NRW/GOV/05974040/ss1", *urls)
    sign = own(pki().leaf, "signing certificate of DE-NRW/GOV/05974040", *urls)
    manager = OwnOcsp("node", [auth, sign], OcspCache(F), clock, refresh, fetch=responder)
    return Setup(manager, clock, responder, auth, sign)


def unavailable(manager: OwnOcsp, certificate: OwnCertificate, now: datetime) -> str:
    with pytest.raises(OwnStatusUnavailable) as info:
        manager.evidence(certificate.cert_ref, now)
    return str(info.value)


def test_first_fetch_fails_closed_and_recovers_without_restart() -> None:
    s = setup()
    s.responder.down.add(URL)
    assert not asyncio.run(s.manager.refresh(s.sign))
    message = unavailable(s.manager, s.sign, s.clock.now())
    assert "no good OCSP status" in message
    assert URL in message
    assert "cannot be reached" in message
    s.responder.down.clear()
    assert asyncio.run(s.manager.refresh(s.sign))
    evidence = s.manager.evidence(s.sign.cert_ref, s.clock.now())
    assert evidence.this_update == NOW
    assert s.sign.failures == 0 and s.sign.last_error is None


def test_outage_carries_on_within_the_window_then_says_why() -> None:
    s = setup()
    assert asyncio.run(s.manager.refresh(s.sign))
    good = s.manager.evidence(s.sign.cert_ref, s.clock.now())
    s.responder.down.add(URL)
    s.clock.value = NOW + F / 2
    assert not asyncio.run(s.manager.refresh(s.sign))
    s.clock.value = NOW + F
    assert s.manager.evidence(s.sign.cert_ref, s.clock.now()) is good  # last moment of the window
    s.clock.value = NOW + F + timedelta(seconds=1)
    message = unavailable(s.manager, s.sign, s.clock.now())
    assert "stale" in message
    assert f"fetched from {URL} at {NOW.isoformat(timespec='seconds')}" in message
    assert "freshness window is 3600 s" in message
    assert "cannot be reached" in message
    s.responder.down.clear()
    assert asyncio.run(s.manager.refresh(s.sign))
    assert s.manager.evidence(s.sign.cert_ref, s.clock.now()).this_update == s.clock.now()


def test_second_responder_is_asked_when_the_first_is_down() -> None:
    s = setup(timedelta(seconds=1200), URL, BACKUP)
    s.responder.down.add(URL)
    assert asyncio.run(s.manager.refresh(s.auth))
    assert s.responder.calls == [URL, BACKUP]
    assert s.auth.fetched_from == BACKUP


def test_revoked_own_certificate_stops_that_certificate_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = setup()
    asyncio.run(s.manager.refresh(s.auth))
    asyncio.run(s.manager.refresh(s.sign))
    revoked_at = NOW - timedelta(minutes=1)
    s.responder.statuses[pki().leaf.serial_number] = Revoked(
        revoked_at, x509.ReasonFlags.key_compromise
    )
    s.clock.value = NOW + timedelta(seconds=1200)
    with caplog.at_level(logging.ERROR, logger="gateway.node.ocsp"):
        assert asyncio.run(s.manager.refresh(s.sign))
    message = unavailable(s.manager, s.sign, s.clock.now())
    assert "revoked" in message and "keyCompromise" in message and URL in message
    assert any("REVOKED" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    # The still-fresh earlier response is not used any more, but the other certificate is.
    s.manager.evidence(s.auth.cert_ref, s.clock.now())
    # A responder that says "good" again (a certificateHold lifted) is believed.
    del s.responder.statuses[pki().leaf.serial_number]
    assert asyncio.run(s.manager.refresh(s.sign))
    s.manager.evidence(s.sign.cert_ref, s.clock.now())


def test_a_forged_answer_is_not_used_and_the_previous_status_is_kept() -> None:
    s = setup()
    asyncio.run(s.manager.refresh(s.sign))
    good = s.manager.evidence(s.sign.cert_ref, s.clock.now())
    s.responder.answer = forged()
    s.clock.value = NOW + timedelta(seconds=1200)
    assert not asyncio.run(s.manager.refresh(s.sign))
    assert "unauthorised_responder" in (s.sign.last_error or "")
    assert s.manager.evidence(s.sign.cert_ref, s.clock.now()) is good


def test_refresh_must_be_shorter_than_the_window() -> None:
    clock = Clock()
    for refresh in (F, F + timedelta(seconds=1), timedelta(0)):
        with pytest.raises(ValueError, match="refresh interval"):
            OwnOcsp("n", [], OcspCache(F), clock, refresh, fetch=Responder(clock))


def test_retry_delay_backs_off_up_to_a_quarter_of_the_refresh_interval() -> None:
    manager = setup().manager
    assert [manager.retry_delay(n) for n in range(1, 7)] == [60, 120, 240, 300, 300, 300]
    fast = setup(timedelta(seconds=1)).manager
    assert [fast.retry_delay(n) for n in range(1, 4)] == [0.1, 0.2, 0.25]


def test_next_fetch_comes_before_an_aged_response_goes_stale() -> None:
    s = setup()
    asyncio.run(s.manager.refresh(s.sign))
    assert s.manager.next_delay(s.sign, True, NOW) == 1200
    # A response that was already 50 minutes old when fetched: refetch in 5 minutes.
    assert s.manager.next_delay(s.sign, True, NOW + timedelta(minutes=50)) == 300
    s.sign.failures = 2
    assert s.manager.next_delay(s.sign, False, NOW) == 120


def test_background_refresh_recovers_after_a_failed_start() -> None:
    async def scenario() -> None:
        s = setup(timedelta(seconds=0.2))
        s.responder.down.add(URL)
        await s.manager.start()
        try:
            with pytest.raises(OwnStatusUnavailable):
                s.manager.evidence(s.auth.cert_ref, s.clock.now())
            s.responder.down.clear()
            for _ in range(500):  # the loop retries every 0.02-0.05 s; allow plenty
                if s.auth.evidence is not None and s.sign.evidence is not None:
                    break
                await asyncio.sleep(0.01)
            s.manager.evidence(s.auth.cert_ref, s.clock.now())
            s.manager.evidence(s.sign.cert_ref, s.clock.now())
        finally:
            await s.manager.stop()

    asyncio.run(scenario())


def kept_run(path: Path, clock: Clock, responder: Responder) -> None:
    """One run of a node whose good answers go to the message log at ``path``."""

    async def run() -> None:
        log = MessageLog(path, clock=clock.now)
        log.start()

        async def persist(ref: str, status: StoredStatus | None) -> None:
            await log.write(partial(store_status, ref=ref, status=status))

        try:
            auth = own(pki().other, "authentication certificate")
            sign = own(pki().leaf, "signing certificate")
            manager = OwnOcsp(
                "node", [auth, sign], OcspCache(F), clock, timedelta(seconds=1200),
                fetch=responder, persist=persist,
            )  # fmt: skip
            await manager.refresh(auth)
            await manager.refresh(sign)
        finally:
            await log.close()

    asyncio.run(run())


def restarted(
    path: Path, clock: Clock, responder: Responder, at: datetime
) -> tuple[OwnOcsp, OwnCertificate, OwnCertificate]:
    """A new ``OwnOcsp`` on the same log at ``at``: restore, then the first fetch round."""
    clock.value = at
    auth = own(pki().other, "authentication certificate")
    sign = own(pki().leaf, "signing certificate")
    manager = OwnOcsp(
        "node", [auth, sign], OcspCache(F), clock, timedelta(seconds=1200), fetch=responder
    )
    manager.restore(load_statuses(path), at)

    async def first_round() -> None:
        await manager.start()
        await manager.stop()

    asyncio.run(first_round())
    return manager, auth, sign


def test_answers_kept_in_the_log_are_reused_after_a_restart_while_fresh(tmp_path: Path) -> None:
    """Good answers go to the message log; a restarted node (a new ``OwnOcsp`` on the
    same file) takes them back while fresh, with the responder down, and not once stale."""
    path = tmp_path / "messagelog.sqlite"
    clock = Clock()
    responder = Responder(clock)
    kept_run(path, clock, responder)
    responder.down.add(URL)

    manager, auth, sign = restarted(path, clock, responder, NOW + F / 2)
    for certificate in (auth, sign):
        evidence = manager.evidence(certificate.cert_ref, clock.now())
        assert evidence.this_update == NOW
        assert certificate.fetched_at == NOW and certificate.fetched_from == URL

    manager, auth, sign = restarted(path, clock, responder, NOW + F + timedelta(seconds=1))
    for certificate in (auth, sign):
        assert "no good OCSP status" in unavailable(manager, certificate, clock.now())


def test_a_revocation_forgets_the_kept_answer(tmp_path: Path) -> None:
    """Once a responder said *revoked*, no restart brings back the good answer before it."""
    path = tmp_path / "messagelog.sqlite"
    clock = Clock()
    responder = Responder(clock)
    kept_run(path, clock, responder)
    clock.value = NOW + timedelta(seconds=60)
    responder.statuses[pki().leaf.serial_number] = Revoked(
        NOW + timedelta(seconds=30), x509.ReasonFlags.key_compromise
    )
    kept_run(path, clock, responder)
    responder.down.add(URL)

    manager, auth, sign = restarted(path, clock, responder, NOW + timedelta(seconds=120))
    assert manager.evidence(auth.cert_ref, clock.now()).this_update == NOW + timedelta(seconds=60)
    assert "no good OCSP status" in unavailable(manager, sign, clock.now())


def test_a_certificate_added_at_run_time_is_kept_fresh_and_the_one_it_replaces_retired() -> None:
    clock = Clock()
    responder = Responder(clock)
    old = own(pki().other, "signing certificate (old)")
    new = own(pki().leaf, "signing certificate (new)")
    manager = OwnOcsp("node", [old], OcspCache(F), clock, timedelta(seconds=1200), fetch=responder)

    async def run() -> None:
        await manager.start()
        try:
            assert await manager.add(new)
            await manager.retire(old.cert_ref)
            assert manager.certificates == [new]
            assert set(manager._tasks) == {new.cert_ref}  # only the new one is refreshed
        finally:
            await manager.stop()

    asyncio.run(run())
    assert manager.evidence(new.cert_ref, clock.now()).this_update == NOW
    # An exchange that took the old certificate just before still finds its status.
    assert manager.evidence(old.cert_ref, clock.now()).this_update == NOW
    assert "not one of this node's" in unavailable(manager, own(pki().ca, "x"), clock.now())


def test_an_unknown_answer_is_remembered_until_a_good_one() -> None:
    s = setup()
    s.responder.statuses[s.sign.cert.serial_number] = UNKNOWN
    assert not asyncio.run(s.manager.refresh(s.sign))
    assert s.sign.refused is OcspFailure.UNKNOWN
    del s.responder.statuses[s.sign.cert.serial_number]
    assert asyncio.run(s.manager.refresh(s.sign))
    assert s.sign.refused is None
