"""``gateway node status``: one screen of a running node's diagnostics and recent traffic.

Built only from what the node's admin listener serves (``/metrics`` and
``/api/v1/operational``), so the screen shows what Prometheus and the dashboard see, and
the command needs no access to the node's files beyond its ``node.toml`` and an API key
(its ``admin.key`` by default). Rendering is pure
(text, records and ``now`` in, lines out) so it is tested without a clock.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def _gauges(metrics: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The samples of every family in ``metrics``, by sample name."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def _one(samples: Mapping[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    found = samples.get(name)
    return found[0][1] if found else math.nan


def _seconds(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def render(
    node: str,
    metrics: str,
    records: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    minutes: float,
) -> list[str]:
    """The screen: diagnostics from ``metrics``, then the traffic of ``records`` (the
    operational records of the last ``minutes`` before ``now``)."""
    samples = _gauges(metrics)
    serial = _one(samples, "gateway_globalconf_serial")
    lines = [
        f"node {node} at {now.isoformat(timespec='seconds')}",
        "",
        "global configuration: "
        + ("fixed directory" if math.isnan(serial) else f"serial {serial:.0f}")
        + f", fetched {_seconds(_one(samples, 'gateway_globalconf_age_seconds'))} ago",
        f"message log: {_one(samples, 'gateway_messagelog_queue_depth'):.0f} waiting for the "
        f"writer, {_one(samples, 'gateway_timestamp_backlog_entries'):.0f} entries to "
        f"timestamp, last tree head {_seconds(_one(samples, 'gateway_tree_head_age_seconds'))} old",
        f"witness alerts: {_one(samples, 'gateway_witness_alerts'):.0f}; maintenance mode: "
        + ("on" if _one(samples, "gateway_maintenance_mode") == 1 else "off"),
    ]
    ages = {labels["certificate"]: v for labels, v in samples.get("gateway_ocsp_age_seconds", [])}
    for labels, days in samples.get("gateway_certificate_expiry_days", []):
        name = labels["certificate"]
        lines.append(
            f"{name}: expires in {days:.0f} days, OCSP status "
            f"{_seconds(ages.get(name, math.nan))} old"
        )
    outcomes: Counter[tuple[str, str]] = Counter()
    pairs: Counter[tuple[str, str, str, str]] = Counter()
    for record in records:
        code = record["error_code"] or "ok"
        outcomes[(record["side"], code)] += 1
        pairs[(record["side"], record["client"], record["service"], code)] += 1
    total = sum(outcomes.values())
    lines += ["", f"traffic, last {minutes:g} min: {total} exchanges"]
    for (side, code), count in sorted(outcomes.items()):
        lines.append(f"  {side:<8} {code:<50} {count:>6}")
    if pairs:
        lines += ["", "by client and service:"]
        for (side, client, service, code), count in pairs.most_common(20):
            lines.append(f"  {side:<8} {client or '-'} -> {service or '-'}  {code}: {count}")
    return lines
