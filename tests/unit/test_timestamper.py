"""Batched timestamping against an in-process TSA, with a clock the tests move.

The TSA signs with the real RFC 3161 library (``gateway.pki.tsa``) and a real TSA
certificate from the development CA; a mode switch makes it fail in the ways a real one
can. The message log is a real SQLite file. Nothing here waits for wall-clock intervals:
the clock jumps and the timestamper is woken to re-evaluate its schedule.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.conf.directory import StaticDirectory, TrustParameters, TsaInfo
from gateway.core.errors import Code, GatewayError
from gateway.core.logtree import (
    ProofError,
    ProofFailure,
    entry_leaf,
    tree_head_document,
)
from gateway.core.merkle import leaf_hash, tree_hash
from gateway.keys.files import load_certificate, load_private_key
from gateway.messagelog import (
    Kind,
    LogRecord,
    MessageLog,
    Role,
    SignedHeadRecord,
    read_entries,
)
from gateway.messagelog.proofs import (
    NotProvableError,
    entry_proof,
    prove_entry,
    read_tree_heads,
    timestamp_status,
)
from gateway.messagelog.timestamper import TSA_REPLY_TYPE, HeadNotSignable, Timestamper
from gateway.pki.profiles import ServiceKind
from gateway.pki.tsa import build_rejection, build_timestamp_response
from gateway.pki.tsa_verify import verify_timestamp_token
from gateway.sandbox.localnet import free_port
from gateway.trust.ca_store import init_ca, issue_service

NODE = "DE-NRW/GOV/05974028/ss1"
TSA_NAME = "Test TSA DE-NRW"
ISSUED = datetime(2025, 1, 1, tzinfo=UTC)
START = datetime(2025, 6, 1, 8, 0, 0, tzinfo=UTC)
INTERVAL = 60


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Pki:
    ca: x509.Certificate
    tsa_cert: x509.Certificate
    tsa_key: ec.EllipticCurvePrivateKey
    other_cert: x509.Certificate
    other_key: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    init_ca(root / "ca", "Test CA", ISSUED)
    for name in ("tsa", "other"):
        (root / name).mkdir()
        issue_service(root / "ca", ServiceKind.TSA, root / name, ISSUED, days=3650)

    def key(name: str) -> ec.EllipticCurvePrivateKey:
        loaded = load_private_key(root / name / "tsa.key")
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        return loaded

    return Pki(
        load_certificate(root / "ca" / "ca.pem"),
        load_certificate(root / "tsa" / "tsa.pem"),
        key("tsa"),
        load_certificate(root / "other" / "tsa.pem"),
        key("other"),
    )


class FakeTsa:
    """A TSA over HTTP whose ``mode`` decides how it answers."""

    def __init__(self, pki: Pki, clock: FakeClock) -> None:
        self.pki = pki
        self.clock = clock
        self.mode = "ok"
        self.calls = 0
        self.offset = timedelta(0)
        """The TSA's clock minus the node's: a node clock off by minutes, seen by the TSA."""
        self._serials = itertools.count(1)

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        query = await request.read()
        if self.mode == "down":
            return web.Response(status=503, text="maintenance\n")
        if self.mode == "garbage":
            return web.Response(body=b"not a reply", content_type=TSA_REPLY_TYPE)
        if self.mode == "rejecting":
            reply = build_rejection("system_failure", "the HSM is offline")
            return web.Response(body=reply, content_type=TSA_REPLY_TYPE)
        other = self.mode == "other_tsa"
        cert = self.pki.other_cert if other else self.pki.tsa_cert
        key = self.pki.other_key if other else self.pki.tsa_key
        when = (
            self.clock.now() + self.offset - timedelta(hours=1 if self.mode == "backdated" else 0)
        )
        reply = build_timestamp_response(query, cert, key, (), when, next(self._serials))
        return web.Response(body=reply, content_type=TSA_REPLY_TYPE)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        app = web.Application()
        app.router.add_post("/tsa", self.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield f"http://127.0.0.1:{port}/tsa"
        finally:
            await runner.cleanup()


def record(kind: str = "request", body: bytes = b'{"q": 1}') -> LogRecord:
    return LogRecord(
        role=Role.PROVIDER,
        kind=Kind(kind),
        message_id=str(uuid.uuid4()),
        xroad_id=f"DE-NRW-{uuid.uuid4()}",
        client="DE-NRW/GOV/05974040/gewerbeamt",
        service="DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
        created="2025-06-01T08:00:00.000Z",
        header=b'{"alg":"ES256","x":"\xc3\xa4"}',
        body=body,
        signature="eyJhbGciOiJFUzI1NiJ9..c2ln",
        cert_ref=hashlib.sha256(b"cert").hexdigest(),
    )


def directory(pki: Pki, url: str) -> StaticDirectory:
    return StaticDirectory(
        "DE-NRW",
        [pki.ca],
        [],
        [],
        {},
        tsas=[TsaInfo(TSA_NAME, url, pki.tsa_cert)],
        parameters=TrustParameters(3600, INTERVAL),
    )


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait for the timestamper's task to get somewhere (a deadline, not a timing claim)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.005)


@dataclass
class Rig:
    clock: FakeClock
    tsa: FakeTsa
    log: MessageLog
    stamper: Timestamper
    path: Path | str


@asynccontextmanager
async def rig(
    pki: Pki,
    path: Path | str,
    *,
    batch_size: int = 10_000,
    tolerated: float = 3600,
    url: str | None = None,
    sign_head: Callable[[bytes], SignedHeadRecord | None] | None = None,
) -> AsyncIterator[Rig]:
    clock = FakeClock(START)
    tsa = FakeTsa(pki, clock)
    async with tsa.serving() as tsa_url:
        log = MessageLog(path, clock=clock.now)
        tsas = directory(pki, url or tsa_url)
        stamper = Timestamper(
            log,
            lambda: tsas,
            NODE,
            clock,
            batch_size=batch_size,
            tolerated_outage=timedelta(seconds=tolerated),
            timeout_seconds=5,
            sign_head=sign_head,
        )
        log.start()
        try:
            await stamper.start()
            try:
                yield Rig(clock, tsa, log, stamper, path)
            finally:
                await stamper.stop()
        finally:
            await log.close()


def stored_leaves(path: Path | str) -> list[bytes]:
    return [e.leaf_hash or b"" for e in read_entries(path)]


def tamper(path: Path, sql: str, *params: object) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(sql, params)


# ---------------------------------------------------------------- schedule


def test_tree_head_is_stamped_after_the_interval_and_verifies(
    pki: Pki, log_location: Path | str
) -> None:
    async def scenario() -> None:
        async with rig(pki, log_location) as r:
            await r.log.append([record(), record("response")])
            await r.log.append([record()])
            await asyncio.sleep(0.05)
            assert r.tsa.calls == 0, "stamped before the interval was up"
            assert r.log.backlog().pending == 3

            r.clock.advance(INTERVAL + 1)
            r.stamper.wake()
            await until(lambda: r.log.backlog().stamped_size == 3, "the first tree head")
            assert r.tsa.calls == 1
            assert not r.stamper.failing
            backlog = r.log.backlog()
            assert backlog.pending == 0 and backlog.oldest_pending is None

            # Nothing new: the next interval asks the TSA for nothing.
            r.clock.advance(INTERVAL + 1)
            r.stamper.wake()
            await asyncio.sleep(0.05)
            assert r.tsa.calls == 1

    asyncio.run(scenario())
    (head,) = read_tree_heads(log_location)
    root = tree_hash(stored_leaves(log_location))
    assert (head.tree_size, head.root_hash, head.tsa_name) == (3, root, TSA_NAME)
    assert head.document == tree_head_document(NODE, 3, root)
    assert head.tsa_cert_ref == hashlib.sha256(pki.tsa_cert.public_bytes(Encoding.DER)).hexdigest()
    stamp = verify_timestamp_token(
        head.token, pki.tsa_cert, hashlib.sha256(head.document).digest(), issuer=pki.ca
    )
    assert stamp.gen_time == START + timedelta(seconds=INTERVAL + 1)
    assert head.gen_time == "2025-06-01T08:01:01Z"


def test_a_full_batch_is_stamped_before_the_interval(pki: Pki, log_location: Path | str) -> None:
    async def scenario() -> None:
        async with rig(pki, log_location, batch_size=5) as r:
            await r.log.append([record() for _ in range(4)])
            await asyncio.sleep(0.05)
            assert r.tsa.calls == 0, "stamped before the batch was full"
            await r.log.append([record()])
            await until(lambda: r.log.backlog().stamped_size == 5, "the batch's tree head")
            assert r.tsa.calls == 1
            # The signal re-arms after each tree head.
            await r.log.append([record() for _ in range(5)])
            await until(lambda: r.log.backlog().stamped_size == 10, "the second batch")

    asyncio.run(scenario())
    assert [h.tree_size for h in read_tree_heads(log_location)] == [5, 10]


def test_a_backlog_found_at_start_is_stamped_at_once(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "log.db"

    async def fill() -> None:
        async with MessageLog(path, clock=lambda: START) as log:
            await log.append([record(), record()])

    asyncio.run(fill())

    async def scenario() -> None:
        async with rig(pki, path) as r:
            await until(lambda: r.log.backlog().stamped_size == 2, "the backlog's tree head")

    asyncio.run(scenario())


def test_no_tree_head_is_stored_while_it_cannot_be_signed(pki: Pki, tmp_path: Path) -> None:
    """Without the OCSP evidence for its signature (e.g. just after a restart) the node
    stores no tree head at all, rather than one every audit would refuse; the entries
    stay pending and the next attempt that can sign covers them all."""
    missing = "this node has no good OCSP status for its signing certificate yet"
    signable = False

    def sign_head(document: bytes) -> SignedHeadRecord | None:
        if not signable:
            raise HeadNotSignable(missing)
        return None  # stored unsigned, as by a node without its member's key

    async def scenario() -> None:
        nonlocal signable
        async with rig(pki, tmp_path / "log.db", sign_head=sign_head) as r:
            await r.log.append([record(), record("response")])
            assert not await r.stamper.stamp_once()
            assert r.stamper.failing
            assert r.stamper.last_error == f"the tree head cannot be signed: {missing}"
            assert r.log.backlog().stamped_size == 0 and r.log.backlog().pending == 2
            signable = True
            assert await r.stamper.stamp_once()
            assert not r.stamper.failing
            assert r.log.backlog().stamped_size == 2

    asyncio.run(scenario())
    assert [h.tree_size for h in read_tree_heads(tmp_path / "log.db")] == [2]


# ---------------------------------------------------------------- outage


def test_outage_refusal_and_recovery_in_one_tree_head(pki: Pki, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(pki, tmp_path / "log.db", tolerated=3600) as r:
            r.tsa.mode = "down"
            await r.log.append([record(), record("response")])
            r.clock.advance(INTERVAL + 1)
            r.stamper.wake()
            await until(lambda: r.stamper.attempts >= 1, "a failed attempt")
            assert r.stamper.failing
            assert "HTTP 503" in r.stamper.last_error
            assert r.log.backlog().pending == 2
            r.stamper.check(provider=False)  # still within the tolerated outage
            r.stamper.check(provider=True)

            await r.log.append([record(), record("response")])
            r.clock.advance(3600)
            r.stamper.wake()
            await until(lambda: r.stamper.attempts >= 2, "a second failed attempt")
            with pytest.raises(GatewayError) as consumer:
                r.stamper.check(provider=False)
            with pytest.raises(GatewayError) as provider:
                r.stamper.check(provider=True)
            assert consumer.value.code is Code.CP_TIMESTAMPING_FAILED
            assert provider.value.code is Code.SP_TIMESTAMPING_FAILED
            assert consumer.value.status == provider.value.status == 500
            message = consumer.value.message
            assert TSA_NAME in message and "HTTP 503" in message
            assert "last successful time stamp never" in message
            assert "4 log entries wait since 2025-06-01T08:00:00Z" in message

            r.tsa.mode = "ok"
            r.clock.advance(INTERVAL)  # the backoff never exceeds one interval
            r.stamper.wake()
            await until(lambda: not r.stamper.failing, "recovery")
            r.stamper.check(provider=False)
            r.stamper.check(provider=True)
            assert r.log.backlog().pending == 0

    asyncio.run(scenario())
    heads = read_tree_heads(tmp_path / "log.db")
    assert [h.tree_size for h in heads] == [4], "the backlog must go into one tree head"


def test_no_refusal_without_pending_entries_or_with_tolerance_zero(
    pki: Pki, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with rig(pki, tmp_path / "log.db", tolerated=0) as r:
            r.tsa.mode = "down"
            await r.log.append([record()])
            r.clock.advance(10 * 3600)
            r.stamper.wake()
            await until(lambda: r.stamper.failing, "a failed attempt")
            r.stamper.check(provider=False)  # 0 disables refusing, as in X-Road

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("down", "HTTP 503"),
        ("garbage", "malformed"),
        ("rejecting", "rejected"),
        ("other_tsa", "untrusted_tsa"),
        ("backdated", "lies before the query"),
        ("unreachable", "unreachable"),
    ],
)
def test_bad_answers_store_nothing(pki: Pki, tmp_path: Path, mode: str, reason: str) -> None:
    path = tmp_path / "log.db"

    async def scenario() -> None:
        url = f"http://127.0.0.1:{free_port()}/tsa" if mode == "unreachable" else None
        async with rig(pki, path, url=url) as r:
            r.tsa.mode = mode
            await r.log.append([record()])
            r.clock.advance(INTERVAL + 1)
            r.stamper.wake()
            await until(lambda: r.stamper.attempts >= 1, "an attempt")
            assert r.stamper.failing
            assert reason in r.stamper.last_error, r.stamper.last_error
            assert r.log.backlog().pending == 1

    asyncio.run(scenario())
    assert read_tree_heads(path) == []


# ---------------------------------------------------------------- proofs


def stamp_five(pki: Pki, path: Path | str) -> None:
    """Five entries, the first four covered by a tree head, the fifth pending."""

    async def scenario() -> None:
        async with rig(pki, path) as r:
            await r.log.append([record(), record("response", body=b"\x00\xff" * 500)])
            await r.log.append([record(), record("response")])
            r.clock.advance(INTERVAL + 1)
            r.stamper.wake()
            await until(lambda: r.log.backlog().stamped_size == 4, "a tree head")
            await r.log.append([record()])

    asyncio.run(scenario())


@pytest.fixture
def stamped_log(pki: Pki, tmp_path: Path) -> Iterator[Path]:
    """A SQLite log of five entries, the first four covered by a tree head."""
    path = tmp_path / "log.db"
    stamp_five(pki, path)
    yield path


def test_every_covered_entry_is_proven(pki: Pki, log_location: Path | str) -> None:
    stamp_five(pki, log_location)
    stamped_log = log_location
    for entry_id in range(1, 5):
        proof, proven = prove_entry(stamped_log, entry_id, pki.tsa_cert, issuer=pki.ca)
        assert proven.leaf_index == entry_id - 1
        assert proven.tree_size == 4 and proven.node == NODE
        assert proven.gen_time == START + timedelta(seconds=INTERVAL + 1)
        assert leaf_hash(entry_leaf(proof.entry)) == stored_leaves(stamped_log)[entry_id - 1]
    with pytest.raises(NotProvableError, match="not covered"):
        entry_proof(stamped_log, 5)
    with pytest.raises(NotProvableError, match="no entry 6"):
        entry_proof(stamped_log, 6)
    status = timestamp_status(stamped_log)
    assert (status.tree_size, status.stamped_size, status.pending) == (5, 4, 1)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("UPDATE message_log SET body = x'00' WHERE id = 2", ProofFailure.NOT_INCLUDED),
        ("UPDATE message_log SET client = 'x' WHERE id = 2", ProofFailure.NOT_INCLUDED),
        ("UPDATE message_log SET logged_at = '2020-01-01' WHERE id = 2", ProofFailure.NOT_INCLUDED),
        # A sibling's stored leaf, which the path is read from (docs/adr/0043): the path
        # no longer reaches the stamped root.
        (
            "UPDATE merkle_subtree SET hash = zeroblob(32) WHERE level = 0 AND position = 0",
            ProofFailure.NOT_INCLUDED,
        ),
        # Another root, with a document to match: the TSA never signed that document.
        (
            "UPDATE tree_head SET document = CAST(replace(CAST(document AS TEXT),"
            " lower(hex(root_hash)), hex(zeroblob(32))) AS BLOB), root_hash = zeroblob(32)",
            ProofFailure.NOT_INCLUDED,
        ),
        (
            "UPDATE tree_head SET document = CAST(replace(CAST(document AS TEXT),"
            " '\"tree_size\":4', '\"tree_size\":3') AS BLOB)",
            ProofFailure.DOCUMENT_MISMATCH,
        ),
        (
            "UPDATE tree_head SET document ="
            " CAST(replace(CAST(document AS TEXT), 'ss1', 'ss2') AS BLOB)",
            ProofFailure.TIMESTAMP,
        ),
        # The signature's last byte changed for certain: a byte set to 0x00 would leave a
        # signature that already ends in 0x00 (one in 256) untouched.
        (
            "UPDATE tree_head SET token = CAST(substr(token, 1, length(token) - 1)"
            " || CASE WHEN substr(token, -1) = x'00' THEN x'01' ELSE x'00' END AS BLOB)",
            ProofFailure.TIMESTAMP,
        ),
        ("UPDATE tree_head SET document = x'7b7d'", ProofFailure.MALFORMED),
    ],
)
def test_a_tampered_log_is_not_proven(
    pki: Pki, stamped_log: Path, sql: str, reason: ProofFailure
) -> None:
    prove_entry(stamped_log, 2, pki.tsa_cert)
    tamper(stamped_log, sql)
    with pytest.raises(ProofError) as refused:
        prove_entry(stamped_log, 2, pki.tsa_cert)
    assert refused.value.reason is reason, refused.value


def test_a_token_is_only_trusted_from_the_pinned_tsa(pki: Pki, stamped_log: Path) -> None:
    with pytest.raises(ProofError) as refused:
        prove_entry(stamped_log, 1, pki.other_cert)
    assert refused.value.reason is ProofFailure.TIMESTAMP
    assert "untrusted_tsa" in refused.value.detail


@pytest.mark.parametrize(
    "ahead",
    [
        120,  # the token is not stored (genTime before the query): its entry stays pending
        -30,  # the token is stored: nothing is left to stamp, so a probe must measure again
    ],
)
def test_a_clock_off_from_the_tsa_refuses_exchanges_until_a_token_shows_it_true(
    pki: Pki, tmp_path: Path, ahead: int
) -> None:
    async def scenario() -> None:
        async with rig(pki, tmp_path / "log.db") as r:
            await r.log.append([record()])
            r.clock.advance(INTERVAL + 1)
            r.stamper.wake()
            await until(lambda: r.log.backlog().pending == 0, "the first tree head")
            assert r.stamper.clock_skew == timedelta(0)
            r.stamper.check(provider=False)

            # The node's clock runs ahead of (or behind) the TSA's.
            r.tsa.offset = timedelta(seconds=-ahead)
            await r.log.append([record()])
            r.clock.advance(INTERVAL + 1)
            r.stamper.wake()
            await until(lambda: r.stamper.attempts >= 2, "a second attempt")
            assert r.stamper.skewed
            assert r.stamper.clock_skew == timedelta(seconds=ahead)
            with pytest.raises(GatewayError) as consumer:
                r.stamper.check(provider=False)
            with pytest.raises(GatewayError) as provider:
                r.stamper.check(provider=True)
            assert consumer.value.code is Code.CP_CLOCK_SKEW
            assert provider.value.code is Code.SP_CLOCK_SKEW
            assert f"{ahead:+.3f} s" in consumer.value.message

            # The clock set right: with nothing new to stamp, a probe measures it again.
            r.tsa.offset = timedelta(0)
            r.clock.advance(INTERVAL + 1)
            r.stamper.wake()
            await until(lambda: not r.stamper.skewed, "a token showing the clock true")
            assert r.stamper.clock_skew == timedelta(0)
            r.stamper.check(provider=False)
            r.stamper.check(provider=True)

    asyncio.run(scenario())
