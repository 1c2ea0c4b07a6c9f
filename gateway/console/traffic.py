"""The node's traffic of the last hours, from its operational records, for a chart.

Pure: records and the time are passed in. Counting records into hours is the only thing
the console computes itself, and only for display; the records are the node's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class Hour:
    """One hour of exchanges: those answered and those refused or failed."""

    start: datetime
    succeeded: int
    failed: int

    @property
    def total(self) -> int:
        return self.succeeded + self.failed


@dataclass(frozen=True, slots=True)
class Traffic:
    hours: list[Hour]
    by_service: list[tuple[str, int, int]]
    """(service, succeeded, failed), busiest first."""
    errors: list[tuple[str, int]]
    """(error code, count), commonest first."""

    @property
    def peak(self) -> int:
        return max((h.total for h in self.hours), default=0)


def since(now: datetime, hours: int) -> datetime:
    """The start of the window: the beginning of the hour ``hours - 1`` hours before
    ``now``'s, so the last bar is the current hour."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)


def traffic(records: list[dict[str, Any]], now: datetime, hours: int = 6) -> Traffic:
    """The records (as ``GET /api/v1/operational`` lists them) counted per hour of the
    window ending at ``now``, per service and per error code; records outside the window
    or without a readable ``request_in`` are left out."""
    first = since(now, hours)
    ok: Counter[int] = Counter()
    bad: Counter[int] = Counter()
    services: dict[str, list[int]] = {}
    errors: Counter[str] = Counter()
    for record in records:
        try:
            at = datetime.fromisoformat(str(record["request_in"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            continue
        if at.tzinfo is None:
            continue
        index = int((at - first).total_seconds() // 3600)
        if not 0 <= index < hours:
            continue
        succeeded = bool(record.get("succeeded"))
        (ok if succeeded else bad)[index] += 1
        counts = services.setdefault(str(record.get("service", "")), [0, 0])
        counts[0 if succeeded else 1] += 1
        if not succeeded:
            errors[str(record.get("error_code") or "unknown")] += 1
    return Traffic(
        hours=[Hour(first + timedelta(hours=i), ok[i], bad[i]) for i in range(hours)],
        by_service=sorted(
            ((s, c[0], c[1]) for s, c in services.items()), key=lambda x: (-(x[1] + x[2]), x[0])
        ),
        errors=sorted(errors.items(), key=lambda x: (-x[1], x[0])),
    )
