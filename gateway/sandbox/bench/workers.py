"""``gateway bench --workers N --database-url URL``: one node's throughput by log backend
and worker processes, as ratios, in one run on one machine.

Each configuration is a fresh pair of nodes (Soest consuming, Lippstadt providing the
stub registry) with both nodes' logs on the backend and both run with the worker count
measured: SQLite with 1 worker (the baseline every ratio divides by), SQLite with N
(refused: one writer per file, reported as such), PostgreSQL with 1 and with N workers
(each node its own database on the server ``URL`` names, dropped afterwards). Runs are
interleaved across the configurations and repeated; figures are medians. Every success
the load generator counted is looked up in both logs, as in the main scenarios.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.sandbox.cities import BENCH_SERVICE, LIPPSTADT, SOEST
from gateway.sandbox.cities import TRADE_OFFICE as CLIENT
from gateway.sandbox.localnet import LocalNet, ServiceSpec, free_port, wait_http

if TYPE_CHECKING:
    from gateway.sandbox.bench.topology import Scenario

__all__ = ["run_workers"]


@dataclass
class _Setup:
    name: str
    backend: str
    workers: int
    net: LocalNet | None = None
    stub: subprocess.Popen[bytes] | None = None
    refused: str = ""
    databases: tuple[str, ...] = ()


def _start(root: Path, setup: _Setup, database_url: str | None) -> None:
    from gateway.sandbox.demo_db import create_databases

    net = LocalNet.create(root, [SOEST, LIPPSTADT], datetime.now(UTC))
    port = free_port()
    net.add_service(
        ServiceSpec(
            id=BENCH_SERVICE,
            url=f"http://127.0.0.1:{port}/echo",
            openapi_url=None,
            allowed=(CLIENT,),
            methods=("POST",),
        )
    )
    if setup.backend == "postgresql":
        assert database_url is not None
        made = create_databases(database_url, net.nodes)
        for key, location in made.items():
            net.nodes[key].database_url = location
        setup.databases = tuple(made.values())
    net.write_configs(globalconf_refresh_seconds=60)
    setup.net = net
    with (root / "stub.log").open("ab") as log:  # the child keeps its own descriptor
        setup.stub = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", "gateway.sandbox.bench.stub", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_http(f"http://127.0.0.1:{port}/health", setup.stub)
    for ags in (LIPPSTADT.ags, SOEST.ags):
        net.start_node(ags, workers=setup.workers)


def _stop(setup: _Setup, database_url: str | None) -> None:
    if setup.net is not None:
        setup.net.stop()
    if setup.stub is not None:
        setup.stub.terminate()
        setup.stub.wait(timeout=10)
    if setup.databases and database_url is not None:
        from gateway.sandbox.demo_db import drop_databases

        drop_databases(database_url, setup.databases)


Drive = Callable[..., dict[str, Any]]
"""``runner.drive``: one load-generator run against a scenario."""
CheckLogs = Callable[[LocalNet, Sequence[Path]], dict[str, int]]
"""``runner.check_logs``: every counted success in both logs."""


def run_workers(
    root: Path,
    *,
    drive: Drive,
    check_logs: CheckLogs,
    workers: int,
    database_url: str | None,
    concurrency: int,
    duration: float,
    repeats: int,
    body_bytes: int,
) -> dict[str, Any]:
    """Measure each configuration; the section of the report (``workers``). ``drive``
    and ``check_logs`` are the runner's, handed in (the runner calls this module)."""
    setups = [_Setup(f"sqlite x{n}", "sqlite", n) for n in sorted({1, workers})]
    if database_url is not None:
        setups += [_Setup(f"postgresql x{n}", "postgresql", n) for n in sorted({1, workers})]
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in setups}
    ids_files: dict[str, list[Path]] = {s.name: [] for s in setups}
    try:
        for i, setup in enumerate(setups):
            if setup.backend == "sqlite" and setup.workers > 1:
                setup.refused = "refused: a SQLite log has one writer process (--workers)"
                continue
            _start(root / f"workers-{i}", setup, database_url)
        live = [s for s in setups if not s.refused]
        for setup in live:  # warm-up, not counted
            drive(_scenario(setup), concurrency=concurrency, duration=1.0, body_bytes=body_bytes)
        for r in range(repeats):
            for setup in live:
                ids = root / f"workers-ids-{setup.backend}-{setup.workers}-{r}.txt"
                ids_files[setup.name].append(ids)
                runs[setup.name].append(
                    drive(
                        _scenario(setup),
                        concurrency=concurrency,
                        duration=duration,
                        body_bytes=body_bytes,
                        ids_out=ids,
                    )
                )
        checks = {s.name: check_logs(s.net, ids_files[s.name]) for s in live if s.net}
    finally:
        for setup in setups:
            _stop(setup, database_url)
    base = statistics.median(r["exchanges_per_s"] for r in runs["sqlite x1"])
    section: dict[str, Any] = {
        "concurrency": concurrency,
        "workers": workers,
        "database": "given" if database_url else "not given: PostgreSQL not measured",
        "configurations": {},
    }
    for setup in setups:
        if setup.refused:
            section["configurations"][setup.name] = {"refused": setup.refused}
            continue
        rate = statistics.median(r["exchanges_per_s"] for r in runs[setup.name])
        section["configurations"][setup.name] = {
            "exchanges_per_s": round(rate, 1),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs[setup.name]), 3),
            "errors": sum(r["errors"] for r in runs[setup.name]),
            "ratio_to_sqlite_x1": round(rate / max(base, 1e-9), 3),
            "log_check": checks[setup.name],
        }
    _print(section)
    return section


def _scenario(setup: _Setup) -> Scenario:
    """The gateway scenario of one configuration: Soest's consumer port, no CPU figures
    (a parent and its workers are several processes)."""
    from gateway.sandbox.bench.topology import Scenario

    assert setup.net is not None
    soest = setup.net.nodes[SOEST.ags]
    return Scenario(
        setup.name,
        f"{soest.consumer_url}/r1/{BENCH_SERVICE}",
        {"X-Road-Client": str(CLIENT)},
        {},
    )


def _print(section: dict[str, Any]) -> None:
    print(
        f"\none node by log and worker processes (both nodes alike, concurrency "
        f"{section['concurrency']}; ratio to SQLite with 1 worker):"
    )
    for name, figures in section["configurations"].items():
        if "refused" in figures:
            print(f"  {name:<16} {figures['refused']}")
            continue
        print(
            f"  {name:<16} {figures['exchanges_per_s']:>9.1f}/s  p50 {figures['p50_ms']:.2f} ms"
            f"  ratio {figures['ratio_to_sqlite_x1']:.2f}  errors {figures['errors']}"
        )
    if section["database"] != "given":
        print("  (PostgreSQL not measured: gateway bench --database-url URL)")
