"""Retention that runs itself: archiving every few hours, deleting after the retention.

``gateway log archive`` is a command an operator has to remember; a node that holds
protocol data under the Bundesmeldegesetz (§ 40: kept twelve months, then deleted) must
not depend on that. So the node runs one pass every ``[retention] check_every_seconds``:

* when ``archive_every_hours`` have passed since the last bundle, the timestamped
  entries logged more than ``archive_after_days`` ago are written to a new bundle in
  ``archive_dir`` (``gateway.audit.archive``,
  the command's own function: same bundle, same checks) and their content is blanked;
* entries logged more than ``entries_keep_days`` ago lose their content, marked
  ``deleted``; the data-tracker rows of deleted entries logged more than
  ``tracker_keep_days`` ago are deleted (``LogStore.expire``);
* the replay keys (``seen_request``) of requests created more than twice the message
  window ago are deleted: the time check refuses such a message before its id is looked
  up, so they protect nothing, and they are not evidence (the log entries are). Without
  this the table would hold one row per exchange ever answered.

Leaf hashes and body digests always stay, so every later inclusion and consistency
proof verifies (docs/adr/0046-retention-that-runs-itself.md). A pass that fails is
logged and tried again at the next check; nothing is deleted half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.audit.archive import ArchiveError, archive_before, seal_bundle_file
from gateway.core.encoding import format_time
from gateway.keys.recipients import RecipientKeyError, load_recipient_public_key
from gateway.messagelog import Expired, LogStore, LogStoreError
from gateway.node.clock import Clock
from gateway.node.config import ConfigError, NodeConfig
from gateway.node.config_log import RetentionSection
from gateway.node.context import NodeContext

__all__ = ["BUNDLE_PATTERN", "RetentionJob", "RetentionPass", "Sealer", "archive_sealer"]

log = logging.getLogger("gateway.node.retention")

BUNDLE_PATTERN: Final = re.compile(r"^archive-(\d{8}T\d{6}Z)\.jsonl$")
"""The name of a bundle the node wrote: the time of its pass, so the last one is found
again after a restart without a record of its own."""
_STAMP: Final = "%Y%m%dT%H%M%SZ"
SEEN_KEPT_WINDOWS: Final = 2
"""Replay keys are kept for this many message windows after their creation time: one
window is all the time check admits, the second a margin for the clocks of a node
cluster's processes, which the retention pass and the time check may read apart."""

Sealer = Callable[[Path], None]
"""What happens to a bundle after it is written and before any entry is blanked: the
hook for encrypting archive bundles to the member's archive recipients
(``[retention] archive_recipients``). It may replace the file in place; if it raises,
nothing is pruned."""


@dataclass(frozen=True, slots=True)
class RetentionPass:
    """What one pass did."""

    bundle: Path | None
    """The bundle written, or None (not due, or nothing timestamped to archive)."""
    archived: int
    expired: Expired


class RetentionJob:
    """The background task of one node; ``run_once`` is the pass, blocking."""

    def __init__(
        self,
        node: str,
        clock: Clock,
        store: LogStore,
        section: RetentionSection,
        archive_dir: Path,
        registry: CollectorRegistry,
        *,
        seal: Sealer | None = None,
        replay_window: timedelta | None = None,
    ) -> None:
        self.node = node
        self.clock = clock
        self.store = store
        self.section = section
        self.archive_dir = archive_dir
        self.seal = seal
        self.replay_window = replay_window
        """The node's message window; None: the replay keys are kept."""
        self.last_run = Gauge(
            "gateway_retention_last_run_timestamp_seconds",
            "When the last retention pass of this node finished without error (Unix time).",
            registry=registry,
        )
        self.deleted = Counter(
            "gateway_retention_deleted_entries",
            "Entries whose content this node's retention deleted (leaf hash kept).",
            registry=registry,
        )
        self.last_bundle = Gauge(
            "gateway_archive_last_bundle_timestamp_seconds",
            "When this node wrote its latest archive bundle (Unix time; 0: none yet).",
            registry=registry,
        )
        found = self.latest_bundle_time()
        if found is not None:
            self.last_bundle.set(found.timestamp())
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_node(cls, context: NodeContext, config: NodeConfig) -> RetentionJob:
        """The job of a node, its metrics in the node's registry; the bundles by default
        in ``archive/`` beside node.toml (where its API keys file is)."""
        monitoring = context.monitoring
        section = config.retention
        return cls(
            monitoring.node,
            monitoring.clock,
            context.log.store,
            section,
            section.archive_dir or config.node.api_keys.parent / "archive",
            monitoring.registry,
            seal=archive_sealer(section.archive_recipients),
            replay_window=timedelta(seconds=config.node.message_window_seconds),
        )

    def latest_bundle_time(self) -> datetime | None:
        """The time of the newest bundle in ``archive_dir`` this node wrote, if any."""
        if not self.archive_dir.is_dir():
            return None
        stamps = [
            datetime.strptime(m.group(1), _STAMP).replace(tzinfo=UTC)
            for p in self.archive_dir.iterdir()
            if (m := BUNDLE_PATTERN.match(p.name))
        ]
        return max(stamps, default=None)

    def _archive_due(self, now: datetime) -> bool:
        every = self.section.archive_every_hours
        if every <= 0:
            return False
        last = self.latest_bundle_time()
        return last is None or now - last >= timedelta(hours=every)

    def run_once(self, now: datetime) -> RetentionPass:
        """Archive if due, then delete what is past its retention."""
        bundle, archived = None, 0
        if self._archive_due(now):
            self.archive_dir.mkdir(parents=True, exist_ok=True)
            out = self.archive_dir / f"archive-{now.astimezone(UTC).strftime(_STAMP)}.jsonl"
            before = now - timedelta(days=self.section.archive_after_days)
            result = archive_before(self.store, before, out, now=now, seal=self.seal)
            if result.entries:
                bundle, archived = out, result.entries
                self.last_bundle.set(now.timestamp())
        section = self.section
        window = self.replay_window
        expired = self.store.expire(
            format_time(now - timedelta(days=section.entries_keep_days)),
            format_time(now - timedelta(days=section.tracker_keep_days)),
            None if window is None else format_time(now - SEEN_KEPT_WINDOWS * window),
        )
        self.deleted.inc(expired.entries)
        self.last_run.set(now.timestamp())
        return RetentionPass(bundle, archived, expired)

    async def _running(self) -> None:
        while True:
            try:
                done = await asyncio.to_thread(self.run_once, self.clock.now())
                expired = done.expired
                if done.archived or expired.entries or expired.tracker_rows or expired.seen_rows:
                    log.info(
                        "%s: retention: %d entries archived to %s, content of %d deleted,"
                        " %d data-tracker rows deleted, %d replay keys past the window",
                        self.node,
                        done.archived,
                        done.bundle,
                        expired.entries,
                        expired.tracker_rows,
                        expired.seen_rows,
                    )
            except (ArchiveError, LogStoreError, OSError) as exc:
                log.warning("%s: retention pass failed, tried again later: %s", self.node, exc)
            await asyncio.sleep(self.section.check_every_seconds)

    def start(self) -> None:
        """Start the passes (again after a stop); a second start while running is none."""
        if self._task is None:
            self._task = asyncio.create_task(self._running())

    async def stop(self) -> None:
        """Stop between passes (a pass in its worker thread finishes its transaction)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def archive_sealer(recipients: Sequence[Path]) -> Sealer | None:
    """The hook that seals each bundle to the member's archive recipients
    (``[retention] archive_recipients``), or None without any; a recipient key that does
    not load stops the node's start rather than archiving in the clear."""
    if not recipients:
        return None
    try:
        keys = [load_recipient_public_key(path) for path in recipients]
    except RecipientKeyError as exc:
        raise ConfigError(f"[retention] archive_recipients: {exc}") from None
    return functools.partial(seal_bundle_file, recipients=keys)
