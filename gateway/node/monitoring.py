"""What an exchange costs the node to be watched: one counter, one histogram, one record.

Each exchange, on either side, is counted by client, service and outcome code and its
duration observed per side (``gateway_exchanges_total``,
``gateway_exchange_duration_seconds``): two in-memory operations on the hot path. The
gauges (log backlog, OCSP, configuration, witness alerts) are computed only when
Prometheus scrapes (``gateway.node.admin``), from state the node keeps anyway.

Each exchange also gets an operational monitoring record (``OpRecord``, kept in the
log's database):
a success's goes into the same commit as its log entries (the proxies pass it to
``MessageLog.append``), a refusal's is buffered here and written in batches, best
effort, once a second. Records older than the retention period are pruned by a
background task.

The metrics live in a :class:`~prometheus_client.CollectorRegistry` of this node's own,
never the process-wide default: several nodes may run in one process (the tests do).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.core.encoding import format_time
from gateway.core.errors import Code, GatewayError
from gateway.messagelog import MessageLog, MessageLogError, OpRecord
from gateway.node.clock import Clock

log = logging.getLogger("gateway.node.monitoring")

OK: Final = "ok"
"""The outcome code of an exchange that succeeded (refusals carry X-Road's code)."""
OTHER: Final = "other"
"""The label a client or service gets once :data:`MAX_LABEL_PAIRS` pairs are counted."""
UNKNOWN: Final = ""
"""A client or service not known yet when the exchange was refused."""
MAX_LABEL_PAIRS: Final = 2_000
"""Distinct (client, service) label pairs kept per node: a caller can name any client
and service in a refused request, and every pair would otherwise be a new time series."""
CODES: Final = frozenset(code.value for code in Code)
"""The outcome codes counted as themselves; any other (a peer's relayed refusal may say
anything) is counted as ``other``, so a peer cannot create series either."""
FLUSH_SECONDS: Final = 1.0
"""How often buffered refusal records are written."""
MAX_BUFFERED: Final = 10_000
"""Refusal records kept while the log cannot take them; older ones are dropped."""
PRUNE_SECONDS: Final = 3_600.0
"""How often records past the retention period are deleted."""
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Side(StrEnum):
    """Which side of an exchange the node played (X-Road's ``securityServerType``)."""

    CONSUMER = "consumer"
    PROVIDER = "provider"


@dataclass(slots=True)
class Exchange:
    """What one exchange has told the node so far; filled in as its checks pass."""

    side: Side
    started: datetime
    started_perf: float
    client: str = UNKNOWN
    service: str = UNKNOWN
    peer_node: str = ""
    message_id: str = ""
    xroad_id: str = ""
    request_size: int = 0

    def record(
        self,
        node: str,
        now: datetime,
        *,
        status: int,
        response_size: int,
        error_code: str = "",
    ) -> OpRecord:
        """The exchange's operational record, ending ``now``."""
        # Positionally, in OpRecord's field order: a frozen dataclass takes keywords at
        # a good part more CPU, and this runs once per exchange.
        return OpRecord(
            self.side.value,  # side
            node,
            self.peer_node,
            self.client,
            self.service,
            self.message_id,
            self.xroad_id,
            format_time(self.started),  # request_in
            format_time(now),  # response_out
            self.request_size,
            response_size,
            status,
            not error_code,  # succeeded
            error_code,
        )


class _Incrementable(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Observable(Protocol):
    def observe(self, amount: float) -> None: ...


class _CommitTimer:
    """``with`` block timer: a class rather than a generator context manager, which
    costs a generator, its frames and a wrapper object per exchange."""

    __slots__ = ("_histogram", "_started")

    def __init__(self, histogram: _Observable) -> None:
        self._histogram = histogram
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._histogram.observe(time.perf_counter() - self._started)


@dataclass(slots=True)
class _Buffer:
    records: list[OpRecord] = field(default_factory=list)
    dropped: int = 0


class Monitoring:
    """One node's counters, histograms and operational records."""

    def __init__(self, node: str, clock: Clock, log_: MessageLog, *, retention: timedelta) -> None:
        self.node = node
        self.clock = clock
        self.log = log_
        self.retention = retention
        self.registry = CollectorRegistry(auto_describe=True)
        self.exchanges = Counter(
            "gateway_exchanges",
            "Exchanges this node took part in, by side, client, service and outcome code "
            "(ok, or X-Road's error code).",
            ["side", "client", "service", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "gateway_exchange_duration_seconds",
            "Time from the request's arrival to the answer, per side.",
            ["side"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.log_commit = Histogram(
            "gateway_log_commit_duration_seconds",
            "Time an exchange waited for its log entries to be committed.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.failovers = Counter(
            "gateway_failovers",
            "Times an exchange went on to another node of the provider because no "
            "connection to this one could be made (nothing of the request was sent).",
            ["node"],
            registry=self.registry,
        )
        self._pairs: set[tuple[str, str]] = set()
        self._counted: dict[tuple[Side, str, str, str], _Incrementable] = {}
        """The counter's child per label set already seen: ``labels()`` takes a lock and
        builds a key per call; the set of children is bounded as the series are."""
        self._timed: dict[Side, _Observable] = {}
        self._buffer = _Buffer()
        self._tasks: list[asyncio.Task[None]] = []

    # -- the hot path -----------------------------------------------------------------

    def begin(self, side: Side) -> Exchange:
        return Exchange(side, self.clock.now(), time.perf_counter())

    def _labels(self, ex: Exchange) -> tuple[str, str]:
        pair = (ex.client, ex.service)
        if pair in self._pairs:
            return pair
        if len(self._pairs) < MAX_LABEL_PAIRS:
            self._pairs.add(pair)
            return pair
        return OTHER, OTHER

    def _count(self, ex: Exchange, code: str) -> None:
        client, service = self._labels(ex)
        side = ex.side
        key = (side, client, service, code)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self.exchanges.labels(side.value, client, service, code)
        counter.inc()
        timer = self._timed.get(side)
        if timer is None:
            timer = self._timed[side] = self.duration.labels(side.value)
        timer.observe(time.perf_counter() - ex.started_perf)

    def succeeded(self, ex: Exchange) -> None:
        """A success: its record went into the log's commit with its entries."""
        self._count(ex, OK)

    def refused(self, ex: Exchange, code: str, status: int, response_size: int = 0) -> None:
        """A refusal (this node's, or the provider's relayed): counted, and its record
        buffered for the next batch."""
        self._count(ex, code if code in CODES else OTHER)
        record = ex.record(
            self.node,
            self.clock.now(),
            status=status,
            response_size=response_size,
            error_code=code,
        )
        buffer = self._buffer
        if len(buffer.records) >= MAX_BUFFERED:
            buffer.records.pop(0)
            buffer.dropped += 1
        buffer.records.append(record)

    def refused_with(self, ex: Exchange, refusal: GatewayError) -> None:
        self.refused(ex, refusal.code.value, refusal.status)

    def record(self, ex: Exchange, *, status: int, response_size: int) -> OpRecord:
        """A success's record, for ``MessageLog.append(operational=...)``."""
        return ex.record(self.node, self.clock.now(), status=status, response_size=response_size)

    def timing_commit(self) -> _CommitTimer:
        """Observe how long the block (the exchange's log append) takes."""
        return _CommitTimer(self.log_commit)

    # -- background -------------------------------------------------------------------

    async def flush(self) -> int:
        """Write the buffered refusal records in one transaction; how many."""
        records, self._buffer.records = self._buffer.records, []
        if not records:
            return 0
        try:
            await self.log.record_operational(records)
        except MessageLogError as exc:
            log.warning("%s: %d operational records not written: %s", self.node, len(records), exc)
            return 0
        return len(records)

    async def prune(self, now: datetime) -> int:
        """Delete the records whose request came in before ``now`` minus the retention."""
        before = format_time(now - self.retention)
        return await self.log.prune_operational(before)

    async def _flushing(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def _pruning(self) -> None:
        while True:
            try:
                removed = await self.prune(self.clock.now())
                if removed:
                    log.info("%s: pruned %d operational records", self.node, removed)
            except MessageLogError as exc:
                log.warning("%s: operational records not pruned: %s", self.node, exc)
            await asyncio.sleep(PRUNE_SECONDS)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._flushing()),
            asyncio.create_task(self._pruning()),
        ]

    async def stop(self) -> None:
        """Stop the tasks and write what is buffered (before the log closes)."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.flush()


def query_bound(name: str, value: str) -> str:
    """A ``since``/``until`` bound as the log stores times (RFC 3339 UTC, milliseconds),
    from any RFC 3339 time with a zone; ``ValueError`` naming ``name`` otherwise."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(f"{name} must be an RFC 3339 time with a zone, e.g. 2026-01-01T00:00:00Z")
    return format_time(moment.astimezone(UTC))
