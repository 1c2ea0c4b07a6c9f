"""The soak: the harness for minutes, at half the measured maximum rate, 1 MiB bodies
mixed in, a random fault every 30 to 60 s, every process sampled as it goes.

The maximum is measured first (unpaced closed loop, no faults); the soak then paces its
workers to half of it. Every ``SAMPLE_SECONDS`` each process of the federation is
sampled from ``/proc``: resident memory, open files, open sockets, and each node's log
size on disk. The end is the same checks as every harness run (``checker.py``) plus the
soak's own pass criteria: memory flat after warm-up and every broken part ready again
within ``RECOVERY_LIMIT`` seconds of being healed. Written under ``out``: the history,
``report.json``, ``samples.json``, ``soak.svg`` (the plot) and ``soak.json`` (summary).
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.sandbox.faults.history import ClosedLoop, History
from gateway.sandbox.faults.plot import Series, svg_panels
from gateway.sandbox.faults.run import FULL, Harness
from gateway.sandbox.faults.schedule import Schedule, random_schedule

SAMPLE_SECONDS = 5.0
CALIBRATE_SECONDS = 15.0
WORKERS = 8
BIG_EVERY = 25
"""One request in 25 of each worker carries a 1 MiB body."""
RECOVERY_LIMIT = 60.0
"""The recovery time docs/reliability.md promises: a healed part answers its readiness
check within this many seconds."""
MEMORY_GROWTH_LIMIT = 1.25
"""Flat: the median RSS of a process's last quarter at most this times that of its
second quarter (the first quarter is warm-up)."""
SOAK_FAULTS = tuple(name for name in (s.name for s in FULL.faults) if name != "kill-consumer")
"""The soak's random faults: all of the full scenario's but the consumer's kill, whose
unanswered requests would end the closed loop's connections, not test the nodes."""


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    process: str
    pid: int
    rss_kib: int
    open_files: int
    sockets: int
    log_bytes: int | None


def sample_process(pid: int) -> tuple[int, int, int] | None:
    """RSS (KiB), open file descriptors and sockets of ``pid``; None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text("ascii")
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    rss = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
    )
    sockets = 0
    for fd in fds:
        try:
            sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return rss, len(fds), sockets


def log_bytes(path: Path | str) -> int | None:
    if not isinstance(path, Path):
        return None  # a PostgreSQL log: its size is the database's, not a file's
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


class Sampler:
    def __init__(self, harness: Harness, t0: float) -> None:
        self.harness = harness
        self.t0 = t0
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sampler")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        net = self.harness.net
        logs = {f"node-{k}": f.log_location for k, f in net.nodes.items()}
        while not self._stop.wait(SAMPLE_SECONDS):
            t = round(time.monotonic() - self.t0, 1)
            procs = [(net.launch_of(p), p.pid) for p in list(net.processes) if p.poll() is None]
            for launch, pid in procs:
                got = sample_process(pid)
                if launch is None or got is None:
                    continue
                size = log_bytes(logs[launch.name]) if launch.name in logs else None
                self.samples.append(Sample(t, launch.name, pid, *got, size))


def memory_growth(samples: list[Sample]) -> dict[str, float]:
    """Per process (its longest-lived pid): last-quarter over second-quarter median RSS."""
    by_pid: dict[tuple[str, int], list[Sample]] = {}
    for s in samples:
        by_pid.setdefault((s.process, s.pid), []).append(s)
    longest: dict[str, list[Sample]] = {}
    for (name, _), series in by_pid.items():
        if len(series) > len(longest.get(name, [])):
            longest[name] = series
    out: dict[str, float] = {}
    for name, series in longest.items():
        n = len(series)
        if n < 8:
            continue
        second = statistics.median(s.rss_kib for s in series[n // 4 : n // 2])
        last = statistics.median(s.rss_kib for s in series[3 * n // 4 :])
        out[name] = round(last / second, 3) if second else 0.0
    return out


def soak(harness: Harness, minutes: float, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    history = History()
    t0 = time.monotonic()
    sampler = Sampler(harness, t0)
    sampler.start()
    calibrate = ClosedLoop(harness.target(), history, workers=WORKERS)
    calibrate.start(t0)
    time.sleep(CALIBRATE_SECONDS)
    calibrate.stop()
    measured = sum(1 for o in history.outcomes if o.ok) / CALIBRATE_SECONDS
    duration = minutes * 60
    started = time.monotonic() - t0
    catalogue = harness.injectors().catalogue()
    names = [name for name in SOAK_FAULTS if name in catalogue]
    specs = random_schedule(names, started + duration, first=started + 30)
    load = ClosedLoop(
        harness.target(), history, workers=WORKERS, big_every=BIG_EVERY, rate=measured / 2
    )
    schedule = Schedule(specs, catalogue)
    load.start(t0)
    schedule.start(t0)
    time.sleep(max(0.0, started + duration - (time.monotonic() - t0)))
    events = schedule.join(300)
    load.stop()
    sampler.stop()
    history.write(out / "history.jsonl")
    report = harness.check("soak", history.outcomes, events, out)
    report.duration_s = round(time.monotonic() - t0, 1)
    (out / "report.json").write_text(json.dumps(report.to_json(), indent=2), "utf-8")
    samples = sampler.samples
    (out / "samples.json").write_text(json.dumps([asdict(s) for s in samples]), "utf-8")
    growth = memory_growth(samples)
    slow = [e.name for e in events if e.recovery_s > RECOVERY_LIMIT]
    outcomes = history.outcomes
    soaked = [o for o in outcomes if o.started >= started]
    summary = {
        "minutes": minutes,
        "max_rate_per_s": round(measured, 1),
        "target_rate_per_s": round(measured / 2, 1),
        "achieved_rate_per_s": round(sum(1 for o in soaked if o.ok) / duration, 1),
        "requests": len(outcomes),
        "ok": report.findings.ok,
        "big_bodies_ok": sum(1 for o in outcomes if o.ok and o.body_bytes >= 1024 * 1024),
        "refused": dict(report.findings.refused),
        "no_answer": report.findings.no_answer,
        "problems": report.findings.problems[:20],
        "audited_entries": report.findings.audited,
        "faults": [asdict(c) for c in report.faults],
        "max_recovery_s": max((e.recovery_s for e in events), default=0.0),
        "memory_growth": growth,
        "peak_rss_mib": _peak(samples, "rss_kib", 1 / 1024),
        "peak_open_files": _peak(samples, "open_files", 1),
        "peak_sockets": _peak(samples, "sockets", 1),
        "log_mib_at_end": {
            s.process: round((s.log_bytes or 0) / 2**20, 1) for s in samples if s.log_bytes
        },
    }
    criteria = {
        "no_lost_entries_and_documented_codes": report.findings.passed,
        "memory_flat_after_warm_up": all(g <= MEMORY_GROWTH_LIMIT for g in growth.values()),
        "recovered_within_limit": not slow,
    }
    summary["criteria"] = criteria
    passed = all(criteria.values())
    summary["passed"] = passed
    (out / "soak.json").write_text(json.dumps(summary, indent=2), "utf-8")
    (out / "soak.svg").write_text(plot(samples, [e.started for e in events], minutes), "utf-8")
    return {"passed": passed, "summary": summary}


def _peak(samples: list[Sample], field: str, scale: float) -> dict[str, float]:
    peaks: dict[str, float] = {}
    for s in samples:
        value = float(getattr(s, field)) * scale
        peaks[s.process] = round(max(peaks.get(s.process, 0.0), value), 1)
    return peaks


def plot(samples: list[Sample], faults: list[float], minutes: float) -> str:
    panels: list[tuple[str, list[Series]]] = []
    for title, field, scale in (
        ("RSS (MiB)", "rss_kib", 1 / 1024),
        ("open files", "open_files", 1.0),
        ("sockets", "sockets", 1.0),
        ("log size (MiB)", "log_bytes", 1 / 2**20),
    ):
        series: dict[str, list[tuple[float, float]]] = {}
        for s in samples:
            value = getattr(s, field)
            if value is not None:
                series.setdefault(s.process, []).append((s.t, float(value) * scale))
        panels.append((title, [Series(name, points) for name, points in sorted(series.items())]))
    return svg_panels(f"soak, {minutes:g} minutes (vertical lines: faults)", panels, faults)
