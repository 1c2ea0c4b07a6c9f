"""``gateway bench``: the exchange path against its baselines, in one run, on one machine.

Scenarios, all driven by the same load generator in its own process:

- ``direct``: the registry stub called directly (baseline a);
- ``relay``: two plain reverse proxies with mutual TLS between them (baseline b);
- ``gateway``: consumer node -> provider node -> registry, each exchange signed,
  verified and durably logged on both nodes, exactly as in production.

Scenarios are interleaved per concurrency level and repeated; figures are medians of the
repeats. Afterwards every exchange the load generator counted as a success is looked up
in both message logs.
"""

from __future__ import annotations

import json
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from gateway.messagelog import read_entries
from gateway.sandbox.bench.procs import usage
from gateway.sandbox.cities import BENCH_SERVICE, LIPPSTADT, SOEST
from gateway.sandbox.cities import TRADE_OFFICE as CLIENT
from gateway.sandbox.localnet import (
    LocalNet,
    ServiceSpec,
    free_port,
    wait_http,
)


@dataclass
class Scenario:
    name: str
    url: str
    headers: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]


@dataclass
class Topology:
    net: LocalNet
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for proc in self.extra:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.extra:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.net.stop()


def _spawn(module: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", module, *args], stdout=out, stderr=subprocess.STDOUT
        )


def start_topology(root: Path) -> Topology:
    net = LocalNet.create(root, [SOEST, LIPPSTADT], datetime.now(UTC))
    stub_port = free_port()
    stub_url = f"http://127.0.0.1:{stub_port}"
    net.add_service(
        ServiceSpec(
            id=BENCH_SERVICE,
            url=f"{stub_url}/echo",
            openapi_url=None,
            allowed=(CLIENT,),
            methods=("POST",),
        )
    )
    # Signed global configuration from LocalNet's in-process publisher; refreshed at the
    # production default so configuration polling stays out of the measured CPU time.
    net.write_configs(globalconf_refresh_seconds=60)
    topo = Topology(net)
    stub = _spawn(
        "gateway.sandbox.bench.stub", ["--port", str(stub_port)], root / "logs" / "stub.log"
    )
    topo.extra.append(stub)
    wait_http(f"{stub_url}/health", stub)

    soest, lippstadt = net.nodes[SOEST.ags], net.nodes[LIPPSTADT.ags]
    back_port, front_port = free_port(), free_port()
    back = _spawn(
        "gateway.sandbox.bench.relay",
        [
            "--port", str(back_port), "--upstream", stub_url, "--tls-in",
            "--cert", str(lippstadt.auth_cert), "--key", str(lippstadt.directory / "auth.key"),
            "--ca", str(net.ca_cert),
        ],
        root / "logs" / "relay-back.log",
    )  # fmt: skip
    front = _spawn(
        "gateway.sandbox.bench.relay",
        [
            "--port", str(front_port), "--upstream", f"https://127.0.0.1:{back_port}",
            "--cert", str(soest.auth_cert), "--key", str(soest.directory / "auth.key"),
            "--ca", str(net.ca_cert),
        ],
        root / "logs" / "relay-front.log",
    )  # fmt: skip
    topo.extra += [back, front]
    wait_http(f"http://127.0.0.1:{front_port}/health", front)

    consumer = net.start_node(SOEST.ags)
    provider = net.start_node(LIPPSTADT.ags)
    topo.scenarios = {
        "direct": Scenario("direct", f"{stub_url}/echo", {}, {"registry": stub}),
        "relay": Scenario(
            "relay",
            f"http://127.0.0.1:{front_port}/echo",
            {},
            {"front": front, "back": back, "registry": stub},
        ),
        "gateway": Scenario(
            "gateway",
            f"{soest.consumer_url}/r1/{BENCH_SERVICE}",
            {"X-Road-Client": str(CLIENT)},
            {"consumer": consumer, "provider": provider, "registry": stub},
        ),
    }
    return topo


def drive(
    scenario: Scenario,
    *,
    concurrency: int,
    duration: float,
    body_bytes: int,
    count: int | None = None,
    ids_out: Path | None = None,
) -> dict[str, Any]:
    """One load-generator run; returns its result plus CPU seconds per exchange per process."""
    before = {name: usage(p.pid).cpu_seconds for name, p in scenario.processes.items()}
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, Any] = json.loads(done.stdout)
    result.pop("pid", None)
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
    return result


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over repeated runs; counts are summed."""
    keys = ("exchanges_per_s", "p50_ms", "p95_ms", "p99_ms")
    merged: dict[str, Any] = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    merged["ok"] = sum(r["ok"] for r in runs)
    merged["errors"] = sum(r["errors"] for r in runs)
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
        wanted.update(text.split("\n") if text else [])
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
    large_bodies: Sequence[int] = (65536, 1048576),
    soak: int = 100_000,
    out_dir: Path | None = None,
    state_dir: Path | None = None,
    profile_dir: Path | None = None,
    workers: int | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Run everything, print the table, write the JSON; return the report.

    With ``profile_dir``, one extra gateway run at the highest level is sampled with
    py-spy on both nodes; it is not part of the figures above it. With ``workers`` or
    ``database_url``, a last section compares one node by log backend and worker
    processes (``bench/workers.py``), on nodes of its own.
    """
    tmp = None
    if state_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gateway-bench-")
        state_dir = Path(tmp.name)
    topo = start_topology(state_dir)
    ids_files: list[Path] = []
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "settings": {
            "levels": list(levels),
            "duration_s": duration,
            "repeats": repeats,
            "body_bytes": body_bytes,
            "sqlite_synchronous": "FULL",
            "signature": "ES256 (P-256)",
        },
        "levels": {},
    }
    try:
        n = 0
        for concurrency in levels:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in topo.scenarios}
            for scenario in topo.scenarios.values():  # warm-up, not counted
                drive(scenario, concurrency=concurrency, duration=1.0, body_bytes=body_bytes)
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
                        )
                    )
            level = {name: _median_run(r) for name, r in runs.items()}
            gateway = level["gateway"]["exchanges_per_s"]
            level["ratios"] = {
                "gateway_to_direct": round(gateway / level["direct"]["exchanges_per_s"], 3),
                "gateway_to_relay": round(gateway / level["relay"]["exchanges_per_s"], 3),
                "gateway_to_relay_per_run": [
                    round(g["exchanges_per_s"] / r["exchanges_per_s"], 3)
                    for g, r in zip(runs["gateway"], runs["relay"], strict=True)
                ],
            }
            if concurrency == 1:
                level["added_latency_ms"] = {
                    "p50": round(gateway_p(level, "p50_ms"), 3),
                    "p99": round(gateway_p(level, "p99_ms"), 3),
                }
            report["levels"][str(concurrency)] = level
            _print_level(concurrency, level)

        if profile_dir is not None:
            report["profile"] = _profile(topo, profile_dir, max(levels), duration, body_bytes)

        if soak:
            n += 1
            ids = state_dir / f"ids-{n}.txt"
            ids_files.append(ids)
            started = time.perf_counter()
            soak_run = drive(
                topo.scenarios["gateway"],
                concurrency=64,
                duration=0,
                body_bytes=body_bytes,
                count=soak,
                ids_out=ids,
            )
            soak_run["wall_s"] = round(time.perf_counter() - started, 1)
            report["soak"] = soak_run
        processes = topo.scenarios["gateway"].processes
        # Read after the 1 KiB soak and before the large bodies: the RSS target is about
        # a long run of ordinary exchanges, and the allocator keeps the high-water mark
        # of megabyte bodies mapped afterwards, which is reported separately.
        report["memory_mb"] = _memory(processes)
        report["large_bodies"] = {}
        for size in large_bodies:
            sized: dict[str, Any] = {}
            for name in ("relay", "gateway"):
                ids = None
                if name == "gateway":
                    n += 1
                    ids = state_dir / f"ids-{n}.txt"
                    ids_files.append(ids)
                sized[name] = drive(
                    topo.scenarios[name],
                    concurrency=16,
                    duration=duration,
                    body_bytes=size,
                    ids_out=ids,
                )
            sized["ratio_gateway_to_relay"] = round(
                sized["gateway"]["exchanges_per_s"] / max(sized["relay"]["exchanges_per_s"], 1e-9),
                3,
            )
            report["large_bodies"][str(size)] = sized
            _print_sized(size, sized)

        if large_bodies:
            report["memory_after_large_bodies_mb"] = _memory(processes)
        report["log_check"] = check_logs(topo.net, ids_files)
        _print_tail(report)
        if workers is not None or database_url is not None:
            from gateway.sandbox.bench.workers import run_workers

            topo.stop()  # the section starts nodes of its own; these would only add noise
            report["workers"] = run_workers(
                state_dir,
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
    return report


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


def _print_level(concurrency: int, level: dict[str, Any]) -> None:
    print(f"\nconcurrency {concurrency}")
    print(
        f"  {'scenario':<9} {'ex/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  "
        "CPU ms per exchange"
    )
    for name in ("direct", "relay", "gateway"):
        r = level[name]
        cpu = "  ".join(f"{k} {v:.3f}" for k, v in r["cpu_ms_per_exchange"].items())
        print(
            f"  {name:<9} {r['exchanges_per_s']:>8.0f} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f}  {cpu}"
        )
        if r["errors"]:
            print(f"            {r['errors']} errors, first: {r['first_error']}")
    ratios = level["ratios"]
    per_run = ratios["gateway_to_relay_per_run"]
    print(
        f"  gateway/direct {ratios['gateway_to_direct']:.3f}   "
        f"gateway/relay {ratios['gateway_to_relay']:.3f} (per run {per_run})"
    )
    if "added_latency_ms" in level:
        added = level["added_latency_ms"]
        print(f"  added latency over direct: p50 {added['p50']:.2f} ms, p99 {added['p99']:.2f} ms")


def _print_sized(size: int, sized: dict[str, Any]) -> None:
    print(f"\nbody {size // 1024} KiB, concurrency 16")
    for name in ("relay", "gateway"):
        r = sized[name]
        print(
            f"  {name:<9} {r['exchanges_per_s']:>8.0f} ex/s  p50 {r['p50_ms']:.2f} ms  "
            f"p99 {r['p99_ms']:.2f} ms  errors {r['errors']}"
        )


def _print_tail(report: dict[str, Any]) -> None:
    if "soak" in report:
        soak = report["soak"]
        print(
            f"\nsoak: {soak['ok']} exchanges at concurrency 64 in {soak['wall_s']} s "
            f"({soak['exchanges_per_s']:.0f} ex/s), {soak['errors']} errors"
        )
    after_soak = "the soak" if "soak" in report else "the levels"
    for key, when in (
        ("memory_mb", after_soak),
        ("memory_after_large_bodies_mb", "the large bodies"),
    ):
        if key in report:
            print(f"memory after {when}:")
            for name, mem in report[key].items():
                print(f"  {name:<9} RSS {mem['rss']} MB, peak {mem['peak_rss']} MB")
    check = report["log_check"]
    print(
        f"\nlog check: {check['successes_counted']} successes counted; missing in consumer log "
        f"{check['consumer_missing']}, in provider log {check['provider_missing']}"
    )
