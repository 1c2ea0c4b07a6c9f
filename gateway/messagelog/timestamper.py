"""Batched timestamping of the message log, off the request path.

X-Road timestamps its message log asynchronously: every ``timestamping_interval_seconds``
(60 by default) it gets one RFC 3161 time stamp over a hash tree of the records logged
since the last one, so the TSA's load grows with the number of nodes, not of messages.
Here the hash tree is the log's RFC 9162 Merkle tree: each time stamp covers a tree
head, the canonical document naming this node, a tree size and its root
(``gateway.core.logtree``), which proves every entry up to that size (inclusion proof).

An exchange never waits for the TSA. When the TSA cannot be reached, or answers with
something that does not verify against its pinned certificate, entries stay pending and
the next attempt (with backoff, at the latest after one interval) covers all of them in
one tree head. Only when timestamping has kept failing for longer than the tolerated
outage (X-Road's acceptable-timestamp-failure-period, 4 h by default), measured from
the oldest entry still waiting, does the node refuse new exchanges with
``*.timestamping_failed``; it resumes by itself once a tree head is stored again.

Each token also measures the node's clock against the TSA's (``clock_skew``): while the
last one measured is further off than ``max_clock_skew``, the node refuses new exchanges
with ``*.clock_skew``, since the entries it logs would carry times its tree heads
contradict; a later token within bounds lifts the refusal.

Every time decision uses the node's injected clock, so tests can move time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final

import aiohttp
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.conf.directory import Directory, TsaInfo
from gateway.core.clockskew import clock_skew
from gateway.core.encoding import format_time
from gateway.core.errors import Code, GatewayError
from gateway.core.logtree import tree_head_document
from gateway.core.treehead import sth_document
from gateway.messagelog.records import (
    MessageLogError,
    SignedHeadRecord,
    TimestampBacklog,
    TreeHeadRecord,
    TreeSnapshot,
)
from gateway.messagelog.store import LogWriter
from gateway.node.clock import Clock
from gateway.node.transport import read_limited
from gateway.pki.tsa import DEFAULT_SKEW, TimestampError, build_timestamp_request, message_imprint
from gateway.pki.tsa_verify import timestamp_token_of, verify_timestamp_response

__all__ = ["TSA_QUERY_TYPE", "TSA_REPLY_TYPE", "HeadNotSignable", "Timestamper"]

log = logging.getLogger(__name__)

TSA_QUERY_TYPE: Final = "application/timestamp-query"
TSA_REPLY_TYPE: Final = "application/timestamp-reply"
MAX_REPLY_BYTES: Final = 64 * 1024
"""A reply is a token of a few KiB; anything far larger is not one."""
FIRST_RETRY: Final = timedelta(seconds=2)
"""The first retry after a failure; doubled per failure, capped at the interval."""


class HeadNotSignable(Exception):
    """The node cannot sign a tree head with everything a verifier needs (its member's
    OCSP evidence, above all); the message says why. The head is then not stored at
    all: the entries stay pending and the next attempt covers them."""


class _TsaFailure(Exception):
    """One TSA did not give a usable time stamp; the message says why, for operators."""


def _rfc3339(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return format_time(moment, "seconds")


class Timestamper:
    """Gets the log's tree head timestamped periodically and decides when to refuse.

    ``start()`` runs the schedule as an asyncio task; ``check()`` is called first by
    every exchange handler and is cheap unless timestamping is failing.
    """

    def __init__(
        self,
        log: LogWriter,
        directory: Callable[[], Directory],
        node_id: str,
        clock: Clock,
        *,
        batch_size: int = 10_000,
        tolerated_outage: timedelta = timedelta(hours=4),
        timeout_seconds: float = 20.0,
        max_clock_skew: timedelta = timedelta(seconds=2),
        sign_head: Callable[[bytes], SignedHeadRecord | None] | None = None,
        sync: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._log = log
        self._directory = directory
        """Returns the directory in force, read per attempt: the TSA list and the
        interval follow the global configuration applied last."""
        self._node_id = node_id
        self._clock = clock
        self._batch_size = batch_size
        self._tolerated = tolerated_outage
        self._timeout = timeout_seconds
        self._max_skew = max_clock_skew
        self._skew: timedelta | None = None
        """The node's time minus the genTime of the last verified token; None before one."""
        self._measurements = 0
        self._sign_head = sign_head
        self._sync = sync
        """Takes up what the other processes of a cluster committed before each attempt
        (``MessageLog.follow``), so the leader stamps the shared log's tree."""
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._failing_since: datetime | None = None
        self._last_error = ""
        self._refusing = False
        self.attempts = 0
        """Attempts completed (successful or not), counted once the outcome is recorded,
        so whoever sees the count grow also sees that attempt's outcome (``failing``,
        ``last_error``); for tests and monitoring."""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the schedule; an existing backlog is stamped at once."""
        if self._task is not None:
            raise RuntimeError("the timestamper is already started")
        loop = asyncio.get_running_loop()
        wakeup = asyncio.Event()
        self._wakeup = wakeup

        def full() -> None:  # writer thread: enough entries are pending
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(wakeup.set)

        self._log.notify_when_pending(self._batch_size, full)
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name=f"timestamper:{self._node_id}")

    async def stop(self) -> None:
        """Stop the schedule; pending entries are stamped by the next run."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def wake(self) -> None:
        """Re-evaluate the schedule now (after the clock moved, in tests)."""
        if self._wakeup is not None:
            self._wakeup.set()

    # ------------------------------------------------------------------ refusal

    @property
    def failing(self) -> bool:
        """True from a failed attempt until the next tree head is stored."""
        return self._failing_since is not None

    @property
    def last_error(self) -> str:
        return self._last_error

    @property
    def clock_skew(self) -> timedelta | None:
        """The skew the last verified token showed (node minus TSA); None before one."""
        return self._skew

    @property
    def skewed(self) -> bool:
        """True while the last measured skew exceeds ``max_clock_skew``."""
        return self._skew is not None and abs(self._skew) > self._max_skew

    def check(self, *, provider: bool) -> None:
        """Refuse a new exchange if the clock is skewed or timestamping has failed too long.

        Measured from the oldest entry not yet covered by a tree head, and only while
        the TSA keeps failing: an idle node or a TSA that just came back refuses nothing.
        A tolerated outage of 0 disables refusing (as in X-Road).
        """
        if self.skewed:
            assert self._skew is not None
            raise GatewayError(
                Code.SP_CLOCK_SKEW if provider else Code.CP_CLOCK_SKEW,
                f"the node's clock is {self._skew.total_seconds():+.3f} s from the TSA's "
                f"genTime at the last time stamp, more than the allowed "
                f"{self._max_skew.total_seconds():g} s (max_clock_skew_seconds)",
            )
        # A follower of a node cluster (not running, its log following the database)
        # does not see the leader's failures, only the shared backlog's age: that alone
        # decides, so no process keeps accepting what the leader cannot stamp.
        follower = self._task is None and self._sync is not None
        if (self._failing_since is None and not follower) or not self._tolerated:
            return
        backlog = self._log.backlog()
        oldest = backlog.oldest_pending
        now = self._clock.now()
        if oldest is None or now - oldest <= self._tolerated:
            return
        # The last error names every TSA tried and what each answered.
        failure = (
            f"has failed since {_rfc3339(self._failing_since)}: {self._last_error}"
            if self._failing_since is not None
            else "is behind in the node cluster's leader"
        )
        message = (
            f"timestamping of the message log {failure}; last successful time "
            f"stamp {_rfc3339(backlog.last_stamp)}; {backlog.pending} log entries wait since "
            f"{_rfc3339(oldest)}, longer than the tolerated "
            f"{int(self._tolerated.total_seconds())} s"
        )
        if not self._refusing:
            self._refusing = True
            log.error("node %s refuses exchanges: %s", self._node_id, message)
        raise GatewayError(
            Code.SP_TIMESTAMPING_FAILED if provider else Code.CP_TIMESTAMPING_FAILED, message
        )

    # ------------------------------------------------------------------ schedule

    def _interval(self) -> timedelta:
        return timedelta(seconds=self._directory().parameters().timestamping_interval_seconds)

    async def _run(self) -> None:
        assert self._wakeup is not None
        retry = FIRST_RETRY
        now = self._clock.now()
        next_due = now if self._log.backlog().pending else now + self._interval()
        while True:
            interval = self._interval()
            now = self._clock.now()
            if next_due - now > interval:  # the clock went back: do not wait for it
                next_due = now + interval
            # A full batch is stamped early, but never sooner than the backoff allows.
            full = self._failing_since is None and (self._log.backlog().pending >= self._batch_size)
            if now < next_due and not full:
                self._wakeup.clear()
                delay = min(next_due - now, interval).total_seconds()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), delay)
                continue
            try:
                ok = await self.stamp_once()
            except Exception:  # never let the schedule die; the next attempt may work
                log.exception("timestamper of node %s: unexpected error", self._node_id)
                ok = False
            now = self._clock.now()
            if ok:
                retry = FIRST_RETRY
                next_due = now + interval
            else:
                next_due = now + min(retry, interval)
                retry = min(retry * 2, interval)

    async def stamp_once(self) -> bool:
        """One attempt: timestamp the current tree head and store it.

        True if there was nothing to stamp or a tree head was stored; False (with the
        reason logged and kept in ``last_error``) if every TSA failed.
        """
        if self._sync is not None:
            try:
                await self._sync()
            except MessageLogError as exc:
                self.attempts += 1
                return self._failed(self._log.backlog().pending, f"cannot read the log: {exc}")
        snapshot = self._log.tree_snapshot()
        backlog = self._log.backlog()
        if snapshot.tree_size <= backlog.stamped_size:
            if self.skewed:
                await self._probe(snapshot)
            return True
        try:
            return await self._attempt(snapshot, backlog)
        finally:
            self.attempts += 1

    async def _probe(self, snapshot: TreeSnapshot) -> None:
        """Measure the clock again with a token that is not stored.

        A skewed node refuses exchanges, so it logs nothing new to stamp; without this a
        clock set right would never be seen and the refusal would never lift.
        """
        document = tree_head_document(self._node_id, snapshot.tree_size, snapshot.root_hash)
        imprint = message_imprint(document, "sha256")
        for tsa in self._directory().timestamping_services():
            measured = self._measurements
            try:
                await self._request(tsa, imprint)
            except _TsaFailure as exc:
                if self._measurements == measured:  # no verified token: try the next TSA
                    log.info("node %s: clock probe at %s: %s", self._node_id, tsa.name, exc)
                    continue
            return

    async def _attempt(self, snapshot: TreeSnapshot, backlog: TimestampBacklog) -> bool:
        document = tree_head_document(self._node_id, snapshot.tree_size, snapshot.root_hash)
        imprint = message_imprint(document, "sha256")
        tsas = list(self._directory().timestamping_services())
        if not tsas:
            return self._failed(backlog.pending, "no TSA is configured in the directory")
        reasons = []
        for tsa in tsas:  # in the directory's order, as X-Road tries them
            try:
                token, gen_time = await self._request(tsa, imprint)
            except _TsaFailure as exc:
                reasons.append(f"{tsa.name} ({tsa.url}): {exc}")
                continue
            signed = None
            if self._sign_head is not None:
                # The signed tree head carries the TSA's genTime, so its time is the
                # TSA's word, and is stored with the head in one transaction. A head
                # that could only be signed without the evidence an auditor checks is
                # not stored: it would fail every later audit of this log.
                try:
                    signed = self._sign_head(
                        sth_document(
                            self._node_id, snapshot.tree_size, snapshot.root_hash, gen_time
                        )
                    )
                except HeadNotSignable as exc:
                    return self._failed(backlog.pending, f"the tree head cannot be signed: {exc}")
            head = TreeHeadRecord(
                tree_size=snapshot.tree_size,
                root_hash=snapshot.root_hash,
                last_entry_id=snapshot.last_entry_id,
                document=document,
                gen_time=gen_time,
                token=token,
                tsa_name=tsa.name,
                tsa_cert_der=tsa.cert.public_bytes(Encoding.DER),
                signed=signed,
            )
            try:
                await self._log.append_tree_head(head)
            except MessageLogError as exc:
                return self._failed(backlog.pending, f"could not store the tree head: {exc}")
            self._succeeded(snapshot.tree_size, snapshot.tree_size - backlog.stamped_size, tsa)
            return True
        return self._failed(backlog.pending, "; ".join(reasons))

    def _failed(self, pending: int, reason: str) -> bool:
        if self._failing_since is None:
            self._failing_since = self._clock.now()
        self._last_error = reason
        log.warning(
            "node %s: timestamping failed, %d log entries stay pending and are retried: %s",
            self._node_id,
            pending,
            reason,
        )
        return False

    def _succeeded(self, size: int, covered: int, tsa: TsaInfo) -> None:
        if self._failing_since is not None:
            log.warning(
                "node %s: timestamping works again (%s); the tree head of size %d covers "
                "the backlog of %d entries%s",
                self._node_id,
                tsa.name,
                size,
                covered,
                "; exchanges are accepted again" if self._refusing else "",
            )
        else:
            log.info(
                "node %s: tree head of size %d timestamped by %s", self._node_id, size, tsa.name
            )
        self._failing_since = None
        self._last_error = ""
        self._refusing = False

    async def _request(self, tsa: TsaInfo, imprint: bytes) -> tuple[bytes, datetime]:
        """Ask one TSA; return the token and its genTime once it verifies, or raise."""
        assert self._session is not None
        nonce = secrets.randbits(64)
        query = build_timestamp_request(imprint, hash_algorithm="sha256", nonce=nonce)
        asked_at = self._clock.now()
        try:
            async with self._session.post(
                tsa.url,
                data=query,
                headers={"Content-Type": TSA_QUERY_TYPE},
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                if response.status != 200:
                    raise _TsaFailure(f"answered HTTP {response.status}")
                if response.content_type != TSA_REPLY_TYPE:
                    raise _TsaFailure(f"answered {response.content_type}, not {TSA_REPLY_TYPE}")
                reply = await read_limited(response.content, MAX_REPLY_BYTES)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _TsaFailure(f"unreachable: {type(exc).__name__}: {exc}") from None
        if reply is None:
            raise _TsaFailure(f"the reply exceeds {MAX_REPLY_BYTES} bytes")
        now = self._clock.now()
        try:
            # Checked against the certificate the directory pins, never one the reply
            # carries; the nonce ties the reply to this query.
            stamp = verify_timestamp_response(
                reply, tsa.cert, imprint, "sha256", now=now, expected_nonce=nonce
            )
            token = timestamp_token_of(reply)
        except TimestampError as exc:
            raise _TsaFailure(f"the reply does not verify: {exc}") from None
        self._measure_skew(asked_at, now, stamp.gen_time, tsa)
        earliest = asked_at - DEFAULT_SKEW
        if stamp.gen_time < earliest:
            # A genTime before the query would claim the entries existed earlier than
            # they can have: refuse rather than store a false proof of time.
            raise _TsaFailure(
                f"genTime {_rfc3339(stamp.gen_time)} lies before the query was sent "
                f"({_rfc3339(asked_at)})"
            )
        return token, stamp.gen_time

    def _measure_skew(
        self, asked_at: datetime, answered_at: datetime, gen_time: datetime, tsa: TsaInfo
    ) -> None:
        """Keep the skew this verified token shows; warn once when it crosses the bound."""
        was_skewed = self.skewed
        self._skew = clock_skew(asked_at, answered_at, gen_time)
        self._measurements += 1
        if self.skewed and not was_skewed:
            log.warning(
                "node %s: clock is %+.3f s from %s's genTime, more than the allowed %g s; "
                "exchanges are refused until a later time stamp shows the clock within bounds",
                self._node_id,
                self._skew.total_seconds(),
                tsa.name,
                self._max_skew.total_seconds(),
            )
        elif was_skewed and not self.skewed:
            log.warning(
                "node %s: clock is back within %g s of %s's genTime (%+.3f s); "
                "exchanges are accepted again",
                self._node_id,
                self._max_skew.total_seconds(),
                tsa.name,
                self._skew.total_seconds(),
            )
