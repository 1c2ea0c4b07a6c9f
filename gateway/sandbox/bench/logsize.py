"""``gateway log bench``: what proofs and the log's start-up cost as the log grows.

Fills a message log (SQLite, or PostgreSQL with ``--database-url``) through the
product's own writer to each size asked for, then measures, at that size:

- the log's start-up (``MessageLog`` opened and closed, as a node's start does: the
  frontier check, the subtrees' presence check, the timestamping state);
- the rest of a provider node's start that reads the log: its replay guard rebuilt from
  the ``seen_request`` rows of the last window (``preloaded_replay_guard``); the filler
  logs each request with its replay key, one exchange per append, as a provider does,
  at 100 exchanges per second of creation time, so a window holds 30,000 of them;
- inclusion and consistency proofs as ``gateway.messagelog.proofs`` builds them (from
  the stored subtrees, docs/adr/0043): median and worst time, peak Python memory
  (``tracemalloc``), rows read;
- the same proofs built the way they were before, from every leaf hash up to the tree
  size, for comparison (skipped above ``--all-leaves-max``).

CPU time (``time.process_time``) and wall time are both reported: the reads are local,
so the two are close; the wall figure includes the database's own work. The entries are
small unsigned records: the proof's cost depends on the number of leaves, not on what
the entries hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.core.encoding import format_time
from gateway.core.merkle import consistency_proof, inclusion_proof
from gateway.messagelog import (
    Kind,
    LogRecord,
    LogStore,
    MessageLog,
    Role,
    consistency,
    inclusion,
    open_store,
)
from gateway.node.startup import preloaded_replay_guard

__all__ = ["LogSizeResult", "run_log_bench"]

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
EXCHANGE_EVERY = timedelta(milliseconds=10)
"""Creation time between two synthetic exchanges: 100 per second."""
WINDOW = timedelta(seconds=300)
"""The provider's default message window, whose ids a start reads back."""
_BATCH = 2000
_CERT_REF = hashlib.sha256(b"bench-cert").hexdigest()


@dataclass(frozen=True)
class Timing:
    """One kind of proof at one size: medians and worst over the samples."""

    median_ms: float
    worst_ms: float
    cpu_median_ms: float
    peak_kib: float
    rows: int


@dataclass(frozen=True)
class LogSizeResult:
    entries: int
    fill_seconds: float
    startup_ms: float
    inclusion: Timing
    consistency: Timing
    inclusion_all_leaves: Timing | None
    consistency_all_leaves: Timing | None
    replay_preload_ms: float = 0.0
    """The replay guard rebuilt from the log's last window, as a provider's start does."""
    replay_preloaded: int = 0


class _CountingStore:
    """The real store, counting the subtree rows its reads return."""

    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.rows = 0

    def subtrees(self, names: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        found = self.store.subtrees(names)
        self.rows += len(found)
        return found

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


@dataclass(frozen=True)
class _Proofs:
    """The proofs measured at one size, the i-th of each kind for ``picks[i]`` (a leaf
    index, an older tree size); each returns the rows it read."""

    store: LogStore
    size: int
    picks: list[tuple[int, int]]

    def inclusion(self, i: int) -> int:
        counting = _CountingStore(self.store)
        inclusion(counting, self.picks[i][0], self.size)  # type: ignore[arg-type]
        return counting.rows

    def consistency(self, i: int) -> int:
        counting = _CountingStore(self.store)
        consistency(counting, self.picks[i][1], self.size)  # type: ignore[arg-type]
        return counting.rows

    def inclusion_from_leaves(self, i: int) -> int:
        leaves = self.store.leaf_hashes(self.size)
        inclusion_proof(self.picks[i][0], self.size, leaves)
        return len(leaves)

    def consistency_from_leaves(self, i: int) -> int:
        leaves = self.store.leaf_hashes(self.size)
        consistency_proof(self.picks[i][1], self.size, leaves)
        return len(leaves)


def _record(n: int) -> LogRecord:
    return LogRecord(
        role=Role.PROVIDER,
        kind=Kind.REQUEST if n % 2 == 0 else Kind.RESPONSE,
        message_id=str(uuid.UUID(int=n // 2)),
        xroad_id=f"DE-NRW-bench-{n // 2}",
        client="DE-NRW/GOV/05974040/gewerbeamt",
        service="DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
        created=_created(n),
        header=b'{"h":1}',
        body=b'{"familienname":"Schmidt"}',
        signature="eyJ9..c2ln",
        cert_ref=_CERT_REF,
        ocsp_ref="",
    )


def _created(n: int) -> str:
    return format_time(NOW + (n // 2) * EXCHANGE_EVERY)


async def _fill(location: Path | str, start: int, end: int) -> None:
    """Log entries ``start`` to ``end`` (even numbers, a request and its response each)
    an exchange per append with the request's replay key, many appends in flight, so the
    writer's group commit batches them as it does under load."""
    log = MessageLog(location, clock=lambda: NOW)
    log.start()
    try:
        for first in range(start, end, _BATCH * 8):
            last = min(end, first + _BATCH * 8)
            await asyncio.gather(
                *(
                    log.append(
                        [_record(n), _record(n + 1)],
                        replay_key=(_record(n).client, _record(n).message_id, _created(n)),
                    )
                    for n in range(first, last, 2)
                )
            )
    finally:
        await log.close()


def _measure(samples: int, build: Callable[[int], int]) -> Timing:
    """Run ``build(i)`` ``samples`` times (it returns the rows it read)."""
    walls: list[float] = []
    cpus: list[float] = []
    peak = 0
    rows = 0
    for i in range(samples):
        tracemalloc.start()
        wall, cpu = time.perf_counter(), time.process_time()
        rows = max(rows, build(i))
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return Timing(
        statistics.median(walls) * 1000,
        max(walls) * 1000,
        statistics.median(cpus) * 1000,
        peak / 1024,
        rows,
    )


def _startup_ms(location: Path | str) -> float:
    began = time.perf_counter()
    log = MessageLog(location, clock=lambda: NOW)
    asyncio.run(log.close())
    return (time.perf_counter() - began) * 1000


def _replay_preload(location: Path | str, size: int) -> tuple[float, int]:
    """Time to rebuild the replay guard at the last exchange's time; ids it holds."""
    now = NOW + ((size - 1) // 2) * EXCHANGE_EVERY
    began = time.perf_counter()
    log = MessageLog(location, clock=lambda: now)
    guard = preloaded_replay_guard(log, WINDOW, now)
    asyncio.run(log.close())
    return (time.perf_counter() - began) * 1000, len(guard)


def run_log_bench(
    location: Path | str,
    sizes: list[int],
    *,
    samples: int = 50,
    all_leaves_max: int = 1_000_000,
    seed: int = 7,
    progress: Callable[[str], None] = print,
) -> list[LogSizeResult]:
    """Grow the log at ``location`` (a new SQLite file or an empty PostgreSQL database)
    to each of ``sizes`` in turn and measure there."""
    rng = random.Random(seed)  # noqa: S311 (which leaves to prove, not a secret)
    results: list[LogSizeResult] = []
    filled = 0
    for size in sorted(sizes):
        began = time.perf_counter()
        asyncio.run(_fill(location, filled, size))
        fill_seconds = time.perf_counter() - began
        filled = size
        progress(f"{size} entries written in {fill_seconds:.1f} s")
        startup = statistics.median(_startup_ms(location) for _ in range(3))
        preloads = [_replay_preload(location, size) for _ in range(3)]
        picks = [(rng.randrange(size), rng.randrange(1, size)) for _ in range(samples)]
        store = open_store(location)

        proofs = _Proofs(store, size, picks)
        old = size <= all_leaves_max
        results.append(
            LogSizeResult(
                size,
                fill_seconds,
                startup,
                _measure(samples, proofs.inclusion),
                _measure(samples, proofs.consistency),
                _measure(3, proofs.inclusion_from_leaves) if old else None,
                _measure(3, proofs.consistency_from_leaves) if old else None,
                statistics.median(ms for ms, _ in preloads),
                preloads[0][1],
            )
        )
        progress(format_result(results[-1]))
    return results


def format_result(r: LogSizeResult) -> str:
    """One size's figures, as docs/performance.md quotes them."""

    def show(name: str, t: Timing | None) -> str:
        if t is None:
            return f"  {name}: not measured"
        return (
            f"  {name}: median {t.median_ms:.2f} ms (CPU {t.cpu_median_ms:.2f} ms), "
            f"worst {t.worst_ms:.2f} ms, peak {t.peak_kib:.0f} KiB, {t.rows} rows read"
        )

    return "\n".join(
        [
            f"{r.entries} entries: log start-up {r.startup_ms:.1f} ms, replay guard "
            f"rebuilt in {r.replay_preload_ms:.1f} ms ({r.replay_preloaded} ids)",
            show("inclusion proof, stored subtrees", r.inclusion),
            show("consistency proof, stored subtrees", r.consistency),
            show("inclusion proof, all leaf hashes", r.inclusion_all_leaves),
            show("consistency proof, all leaf hashes", r.consistency_all_leaves),
        ]
    )
