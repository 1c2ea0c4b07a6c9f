"""``gateway bench``: the exchange path against its baselines, in one run, on one machine.

Scenarios, all driven by the same load generator in its own process (``wrk`` when
installed, else :mod:`gateway.sandbox.bench.loadgen`):

- ``direct``: the registry stub called directly (baseline a);
- ``relay``: two lean Python reverse proxies with mutual TLS between them (baseline b,
  :mod:`gateway.sandbox.bench.relay`);
- ``nginx``: two nginx reverse proxies with mutual TLS between them (baseline c, when
  nginx is installed: :mod:`gateway.sandbox.bench.nginx`);
- ``gateway``: consumer node -> provider node -> registry, each exchange signed,
  verified and durably logged on both nodes, exactly as in production.

Each sample registry's CPU per request is measured on its own after the levels
(:mod:`gateway.sandbox.bench.registry`), and the performance targets are judged against
the baselines of the same run (:mod:`gateway.sandbox.bench.targets`).

Scenarios are interleaved per concurrency level and repeated; figures are medians of the
repeats. Afterwards every exchange the load generator counted as a success is looked up
in both message logs.
"""

from __future__ import annotations

import json
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from gateway.messagelog import read_entries
from gateway.sandbox.bench import floor as signature_floor
from gateway.sandbox.bench import large, wrk
from gateway.sandbox.bench import registry as sample_registry
from gateway.sandbox.bench.plot import plot_report
from gateway.sandbox.bench.procs import usage
from gateway.sandbox.bench.soak import run_soak
from gateway.sandbox.bench.tables import print_level, print_tail, ratios
from gateway.sandbox.bench.topology import Scenario, Topology, start_topology
from gateway.sandbox.cities import LIPPSTADT, SOEST
from gateway.sandbox.localnet import LocalNet


def drive(
    scenario: Scenario,
    *,
    concurrency: int,
    duration: float,
    body_bytes: int,
    count: int | None = None,
    ids_out: Path | None = None,
    use_wrk: bool = False,
    warm_up: float = 0.0,
) -> dict[str, Any]:
    """One load-generator run; returns its result plus CPU seconds per exchange per process.

    With ``use_wrk`` (and no fixed ``count``, which wrk cannot do) the load comes from
    wrk; its CPU is counted as the load generator's all the same. ``warm_up``: seconds
    of the same load just before, not counted (:data:`WARM_UP_SECONDS`).
    """
    warmed = 0
    if warm_up > 0:
        warmed = drive(
            scenario,
            concurrency=concurrency,
            duration=warm_up,
            body_bytes=body_bytes,
            use_wrk=use_wrk,
        )["ok"]
    before = {name: usage(p.pid).cpu_seconds for name, p in scenario.processes.items()}
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if use_wrk and count is None:
        result = _drive_wrk(scenario, concurrency, duration, body_bytes, ids_out)
    else:
        result = _drive_python(scenario, concurrency, duration, body_bytes, count, ids_out)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    ok = max(result["ok"], 1)
    cpu = {
        name: (usage(p.pid).cpu_seconds - before[name]) / ok
        for name, p in scenario.processes.items()
    }
    cpu["loadgen"] = (
        children_after.ru_utime
        + children_after.ru_stime
        - children_before.ru_utime
        - children_before.ru_stime
    ) / ok
    result["cpu_ms_per_exchange"] = {k: round(v * 1000, 4) for k, v in cpu.items()}
    result["warm_up_ok"] = warmed
    return result


WARM_UP_SECONDS = 1.0
"""Uncounted load of the same scenario right before each measured run (``gateway bench
--warm-up``; wrk counts whole seconds, so one is its least).

Scenarios take turns, so each waits idle while the others run. On a virtual machine
whose host deschedules idle vCPUs, the first request after such a pause wakes every
process on its path, each after a delay of its own (on the reference machine the first
request after 3 s idle took 25-32 ms direct, 52-54 ms through the relay pair and 106 ms
through the two nodes, 145-175 ms after 12 s, against 0.2-0.3, 0.5-0.9 and 4-6 ms from
the same client once warm), and the next dozen are still slower. Without it a run's p99
measures the host's wake-ups instead of the path (docs/performance.md, "Warm runs")."""


def _request_body(body_bytes: int) -> bytes:
    """The same JSON body ``loadgen`` sends: exactly ``body_bytes`` long (from 11 bytes up),
    so a 10 MiB body is within a node's default ``max_body_bytes`` of 10 MiB."""
    return json.dumps({"pad": "x" * max(0, body_bytes - len(json.dumps({"pad": ""})))}).encode()


def _drive_wrk(
    scenario: Scenario,
    concurrency: int,
    duration: float,
    body_bytes: int,
    ids_out: Path | None,
) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", **scenario.headers}
    workdir = Path(tempfile.mkdtemp(prefix="wrk-"))
    try:
        return wrk.run(
            scenario.url,
            concurrency=concurrency,
            duration=duration,
            headers=headers,
            body=_request_body(body_bytes),
            method="POST",
            workdir=workdir,
            ids_out=ids_out,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _drive_python(
    scenario: Scenario,
    concurrency: int,
    duration: float,
    body_bytes: int,
    count: int | None,
    ids_out: Path | None,
) -> dict[str, Any]:
    args = [
        sys.executable, "-m", "gateway.sandbox.bench.loadgen", "--url", scenario.url,
        "--concurrency", str(concurrency), "--duration", str(duration),
        "--body-bytes", str(body_bytes),
    ]  # fmt: skip
    if count is not None:
        args += ["--count", str(count)]
    if ids_out is not None:
        args += ["--ids-out", str(ids_out)]
    for name, value in scenario.headers.items():
        args += ["--header", f"{name}: {value}"]
    done = subprocess.run(args, capture_output=True, check=True, timeout=duration + 600)  # noqa: S603
    result: dict[str, Any] = json.loads(done.stdout)
    result.pop("pid", None)
    result["loadgen"] = "python"
    return result


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over repeated runs; counts are summed."""
    keys = ("exchanges_per_s", "p50_ms", "p95_ms", "p99_ms")
    merged: dict[str, Any] = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    merged["ok"] = sum(r["ok"] for r in runs)
    merged["errors"] = sum(r["errors"] for r in runs)
    merged["warm_up_ok"] = sum(r["warm_up_ok"] for r in runs)
    merged["runs"] = [round(r["exchanges_per_s"], 1) for r in runs]
    merged["first_error"] = next((r["first_error"] for r in runs if r["first_error"]), None)
    names = runs[0]["cpu_ms_per_exchange"].keys()
    merged["cpu_ms_per_exchange"] = {
        n: round(statistics.median(r["cpu_ms_per_exchange"][n] for r in runs), 4) for n in names
    }
    return merged


def check_logs(net: LocalNet, ids_files: Sequence[Path]) -> dict[str, int]:
    """Every success the load generator counted must be in both logs, request and response."""
    wanted: set[str] = set()
    for path in ids_files:
        text = path.read_text("ascii")
        wanted.update(line for line in text.splitlines() if line)
    report = {"successes_counted": len(wanted)}
    for label, ags in (("consumer", SOEST.ags), ("provider", LIPPSTADT.ags)):
        db = net.nodes[ags].log_location
        logged: dict[str, set[str]] = {}
        for entry in read_entries(db):
            if entry.role == label:
                logged.setdefault(entry.message_id, set()).add(str(entry.kind))
        missing = [m for m in wanted if logged.get(m) != {"request", "response"}]
        report[f"{label}_missing"] = len(missing)
    return report


def machine_facts() -> dict[str, Any]:
    import os

    versions: dict[str, str | None] = {}
    for dist in ("aiohttp", "cryptography", "pyjwt", "uvloop"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), ""
            )
    except OSError:
        model = ""
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "libraries": versions,
    }


def run_bench(
    *,
    levels: Sequence[int] = (1, 16, 64),
    duration: float = 5.0,
    repeats: int = 3,
    body_bytes: int = 1024,
    large_bodies: Sequence[int] = (1048576, 10485760),
    large_concurrency: int = 4,
    soak: int = 100_000,
    out_dir: Path | None = None,
    state_dir: Path | None = None,
    profile_dir: Path | None = None,
    loadgen: str = "auto",
    with_nginx: bool = True,
    registry_levels: Sequence[int] = (1, 16),
    plot_path: Path | None = None,
    workers: int | None = None,
    database_url: str | None = None,
    warm_up: float = WARM_UP_SECONDS,
) -> dict[str, Any]:
    """Run everything, print the table, write the JSON; return the report.

    With ``profile_dir``, one extra gateway run at the highest level is sampled with
    py-spy on both nodes; it is not part of the figures above it. ``loadgen`` is
    ``wrk``, ``python`` or ``auto`` (wrk when installed); ``with_nginx`` starts the nginx
    pair when nginx is installed; ``registry_levels`` are the concurrency levels of the
    sample registry's measurement (none: skipped). ``large_bodies`` run at
    ``large_concurrency`` (:mod:`gateway.sandbox.bench.large`); the figure of throughput
    and p99 against concurrency is written beside the JSON and, with ``plot_path``, there
    too. With ``workers`` or ``database_url``, a last section compares one node by log
    backend and worker processes (``bench/workers.py``), on nodes of its own. Each
    measured run of the levels and the large bodies follows ``warm_up`` seconds of the
    same load, not counted (:data:`WARM_UP_SECONDS`; 0 for none).
    """
    use_wrk = _use_wrk(loadgen)
    tmp = None
    if state_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gateway-bench-")
        state_dir = Path(tmp.name)
    topo = start_topology(state_dir, with_nginx=with_nginx)
    for note in topo.notes:
        print(note)
    ids_files: list[Path] = []
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "settings": {
            "levels": list(levels),
            "duration_s": duration,
            "repeats": repeats,
            "warm_up_s": warm_up,
            "body_bytes": body_bytes,
            "sqlite_synchronous": "FULL",
            "signature": "ES256 (P-256)",
            "loadgen": "wrk" if use_wrk else "python",
            "scenarios": list(topo.scenarios),
        },
        "notes": topo.notes,
        "levels": {},
    }
    try:
        n = 0
        for concurrency in levels:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in topo.scenarios}
            for _ in range(repeats):
                for name, scenario in topo.scenarios.items():
                    ids = None
                    if name == "gateway":
                        n += 1
                        ids = state_dir / f"ids-{n}.txt"
                        ids_files.append(ids)
                    runs[name].append(
                        drive(
                            scenario,
                            concurrency=concurrency,
                            duration=duration,
                            body_bytes=body_bytes,
                            ids_out=ids,
                            use_wrk=use_wrk,
                            warm_up=warm_up,
                        )
                    )
            level = {name: _median_run(r) for name, r in runs.items()}
            level["ratios"] = ratios(level, runs)
            if concurrency == 1:
                level["added_latency_ms"] = {
                    "p50": round(gateway_p(level, "p50_ms"), 3),
                    "p99": round(gateway_p(level, "p99_ms"), 3),
                }
            report["levels"][str(concurrency)] = level
            print_level(concurrency, level)

        # In this process, after the levels: what each node's signatures alone cost
        # on this machine, beside the relay's CPU per proxy (bench/floor.py).
        report["floor"] = signature_floor.measure().as_dict()
        print(signature_floor.render(report["floor"], report["levels"]))

        if registry_levels:
            report["registry"] = sample_registry.measure(
                state_dir / "registries",
                _get_driver(use_wrk, state_dir),
                levels=registry_levels,
                duration=duration,
                repeats=repeats,
            )
            print(sample_registry.render(report["registry"]))

        if profile_dir is not None:
            report["profile"] = _profile(topo, profile_dir, max(levels), duration, body_bytes)

        if soak:

            def soak_ids() -> Path:
                ids_files.append(state_dir / f"ids-soak-{len(ids_files)}.txt")
                return ids_files[-1]

            report["soak"] = run_soak(
                topo.scenarios["gateway"],
                soak,
                drive=drive,
                body_bytes=body_bytes,
                use_wrk=use_wrk,
                ids_file=soak_ids,
            )
        processes = topo.scenarios["gateway"].processes
        # Read after the 1 KiB soak and before the large bodies: the RSS target is about
        # a long run of ordinary exchanges, and the allocator keeps the high-water mark
        # of megabyte bodies mapped afterwards, which is reported separately.
        report["memory_mb"] = _memory(processes)
        if large_bodies:
            states = state_dir

            def next_ids() -> Path:
                ids_files.append(states / f"ids-large-{len(ids_files)}.txt")
                return ids_files[-1]

            report["large_bodies"] = large.measure(
                topo.scenarios,
                large_bodies,
                drive=drive,
                concurrency=large_concurrency,
                duration=duration,
                repeats=repeats,
                use_wrk=use_wrk,
                ids_file=next_ids,
                warm_up=warm_up,
            )
            print(large.render(report["large_bodies"]))

        if large_bodies:
            report["memory_after_large_bodies_mb"] = _memory(processes)
        report["log_check"] = check_logs(topo.net, ids_files)
        print_tail(report)
        if workers is not None or database_url is not None:
            from gateway.sandbox.bench.workers import run_workers

            topo.stop()  # the section starts nodes of its own; these would only add noise
            report["workers"] = run_workers(
                state_dir,
                drive=drive,
                check_logs=check_logs,
                workers=workers or 2,
                database_url=database_url,
                concurrency=max(levels),
                duration=duration,
                repeats=repeats,
                body_bytes=body_bytes,
            )
    finally:
        topo.stop()
        if tmp is not None:
            tmp.cleanup()
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = out_dir / f"bench-{stamp}.json"
        path.write_text(json.dumps(report, indent=2), "utf-8")
        print(f"\nwrote {path}")
        figure = out_dir / f"bench-{stamp}.svg"
        figure.write_text(plot_report(report), "utf-8")
        print(f"wrote {figure}")
    if plot_path is not None:
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        plot_path.write_text(plot_report(report), "utf-8")
        print(f"wrote {plot_path}")
    return report


def _use_wrk(loadgen: str) -> bool:
    if loadgen not in ("auto", "wrk", "python"):
        raise ValueError(f"loadgen must be auto, wrk or python, not {loadgen!r}")
    if loadgen == "wrk" and wrk.executable() is None:
        raise RuntimeError("--loadgen wrk: wrk is not installed (Debian: apt-get install wrk)")
    return loadgen == "wrk" or (loadgen == "auto" and wrk.executable() is not None)


def _get_driver(use_wrk: bool, state_dir: Path) -> sample_registry.Driver:
    """A sample registry's load with the run's load generator: its GET, or with wrk its
    POST of a new body each time (the Python generator sends one body over and over, so
    it drives GETs only)."""
    runs = 0

    def run(
        probe: sample_registry.Probe, base: str, concurrency: int, duration: float
    ) -> dict[str, Any] | None:
        nonlocal runs
        url = base + probe.path
        if use_wrk:
            runs += 1
            numbered = None
            headers: dict[str, str] = {}
            if probe.body is not None:  # each request a new one: this run's and its number
                before, after = probe.body.split("{n}", 1)
                numbered = (f"{before}{runs:04d}-".encode(), after.encode())
                headers = {"Content-Type": "application/json"}
            return wrk.run(
                url,
                concurrency=concurrency,
                duration=duration,
                headers=headers,
                body=b"",
                method=probe.method,
                workdir=state_dir / "wrk-registry",
                numbered=numbered,
                ok_status=probe.status,
            )
        if probe.body is not None:
            return None
        args = [
            sys.executable, "-m", "gateway.sandbox.bench.loadgen", "--url", url,
            "--concurrency", str(concurrency), "--duration", str(duration), "--method", "GET",
        ]  # fmt: skip
        done = subprocess.run(args, capture_output=True, check=True, timeout=duration + 600)  # noqa: S603
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    return run


def _profile(
    topo: Topology, out: Path, concurrency: int, duration: float, body_bytes: int
) -> dict[str, Any]:
    from gateway.sandbox.bench import profile

    out.mkdir(parents=True, exist_ok=True)
    scenario = topo.scenarios["gateway"]
    seconds = max(int(duration), 3)
    samplers = {
        name: (profile.start(scenario.processes[name].pid, out / f"{name}.txt", seconds))
        for name in ("consumer", "provider")
    }
    drive(scenario, concurrency=concurrency, duration=seconds + 1, body_bytes=body_bytes)
    results: dict[str, Any] = {}
    summaries = []
    for name, proc in samplers.items():
        _, err = proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"py-spy failed on the {name} node: {err.decode(errors='replace')}")
        summary = profile.summarise(name, out / f"{name}.txt")
        summaries.append(summary)
        results[name] = {"samples": summary.samples, "buckets": summary.buckets}
    text = profile.render(summaries)
    (out / "summary.txt").write_text(text + "\n", "utf-8")
    print(f"\nprofile at concurrency {concurrency} (py-spy, {seconds} s; raw stacks in {out})")
    print(text)
    return results


def _memory(processes: dict[str, subprocess.Popen[bytes]]) -> dict[str, Any]:
    memory = {}
    for name, p in processes.items():
        u = usage(p.pid)
        memory[name] = {
            "rss": round(u.rss_bytes / 2**20, 1),
            "peak_rss": round(u.peak_rss_bytes / 2**20, 1),
        }
    return memory


def gateway_p(level: dict[str, Any], key: str) -> float:
    return float(level["gateway"][key]) - float(level["direct"][key])
