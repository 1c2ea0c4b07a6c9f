"""CPU per lookup of each sample registry the demo serves, measured on its own process.

The demo federation serves four sample registries through the gateway: Lippstadt's and
Iserlohn's Melderegister (the § 38 query), the IHK's inbox (a new Gewerbeanzeige, posted
by Soest's trade office) and, in its Estonian chapter, the e-Business Register (a
company's registry card). If a request there costs more CPU than an exchange through both
nodes, the federation's rate is the sample's, not the gateway's. So the bench starts each
as the demo does (its own process, its own SQLite file, uvicorn under the connection
guard), sends it the demo's request directly (no node in front) and divides the CPU time
its process spent, read from ``/proc/<pid>/stat`` before and after each run, by the
requests answered. Every request is a real one: the Melderegister's SQL query, the
projection, the answer and the protocol row committed to disk before the answer goes
out; each IHK notification a new one (its own Aktenzeichen), stored and committed before
its 201.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gateway.sandbox.bench.procs import usage
from gateway.sandbox.localnet import free_port, wait_http

QUERY = "/personen?familienname=Schmidt&vornamen=Anna&geburtsdatum=1988-03-14"
"""Anna Schmidt, the demo's citizen: a hit in both cities' registers (in Iserlohn's with
her Wegzugsanschrift), so the answer carries a person."""


@dataclass(frozen=True, slots=True)
class Probe:
    """One sample registry and the request the demo sends it.

    ``body`` is the JSON of a POST with ``{n}`` where each request puts its own number
    (so every request is a new one), or None for a GET; ``status`` is the answer that
    counts as a success.
    """

    key: str
    title: str
    module: str
    args: tuple[str, ...]
    path: str
    body: str | None = None
    status: int = 200

    @property
    def method(self) -> str:
        return "GET" if self.body is None else "POST"


_MELDUNG: Final = (
    '{"aktenzeichen":"GEW-{n}","anzeigeart":"anmeldung","gemeindeSchluessel":"05974040",'
    '"gewerbebetriebID":"0b6f8a52-3f0c-4a8e-9d55-2f1c7a3e9b10","datumMeldung":"2026-11-24",'
    '"gueltigAb":"2026-12-01","grund":"neugruendung","betriebsinhaber":'
    '{"art":"natuerlichePerson","familienname":"Demir","vorname":"Ay\\u015fe",'
    '"doktorgrad":null,"geburtsdatum":"1985-02-17","anschrift":{"strasse":"Mendener Stra'
    '\\u00dfe","hausNrVon":"8","plz":"58636","ort":"Iserlohn"}},"geschaeftsbezeichnung":'
    '"Demir \\u00c4nderungsschneiderei","betriebsstaette":{"anschrift":{"strasse":"Markt",'
    '"hausNrVon":"9","plz":"59494","ort":"Soest"},"niederlassungArt":"hauptniederlassung"},'
    '"taetigkeit":{"beschreibung":"\\u00c4nderungsschneiderei","taetigkeitSchluessel":'
    '"95290"},"betriebArt":"handwerk","anzahlVollzeitBeschaeftigte":0,'
    '"anzahlTeilzeitBeschaeftigte":1}'
)
"""A Gewerbeanzeige as Soest's Gewerberegister sends it; ``{n}`` is ``YYYY-N``: the
driver puts its run's number and the request's (the pattern is ``GEW-[0-9]{4}-[0-9]+``)."""

PROBES: Final = (
    Probe(
        "melderegister-lippstadt", "Melderegister Lippstadt", "registries.melderegister",
        ("--city", "lippstadt"), QUERY,
    ),
    Probe(
        "melderegister-iserlohn", "Melderegister Iserlohn", "registries.melderegister",
        ("--city", "iserlohn"), QUERY,
    ),
    Probe("ihk", "IHK inbox", "registries.ihk", (), "/benachrichtigungen", _MELDUNG, 201),
    Probe(
        "ariregister", "Äriregister (EE-TEST)", "registries.ariregister", (),
        "/ettevotted/16543210",
    ),
)  # fmt: skip
"""The registries the demo serves through the gateway, with the demo's request to each."""

Driver = Callable[[Probe, str, int, float], dict[str, Any] | None]
"""Runs a probe's load on a base URL at a concurrency for a duration; returns the load
result, or None when the load generator cannot send that probe's requests."""


def start(root: Path, probe: Probe = PROBES[0]) -> tuple[subprocess.Popen[bytes], str]:
    """``probe``'s registry on a fresh database; its process and base URL."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (root / f"{probe.key}.log").open("ab")
    with log:
        proc = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [
                sys.executable, "-m", probe.module,
                "--db", str(root / f"{probe.key}.db"), "--port", str(port), *probe.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", proc)
    return proc, url


def measure(
    root: Path,
    drive: Driver,
    *,
    levels: Sequence[int],
    duration: float,
    repeats: int,
    probes: Sequence[Probe] = PROBES,
) -> dict[str, Any]:
    """Each probe's CPU ms per request and requests/s at each concurrency level, medians
    of ``repeats``; one registry process at a time."""
    report: dict[str, Any] = {"registries": {}}
    for probe in probes:
        report["registries"][probe.key] = _measure_one(
            root, probe, drive, levels=levels, duration=duration, repeats=repeats
        )
    return report


def _measure_one(
    root: Path,
    probe: Probe,
    drive: Driver,
    *,
    levels: Sequence[int],
    duration: float,
    repeats: int,
) -> dict[str, Any]:
    proc, url = start(root, probe)
    report: dict[str, Any] = {
        "title": probe.title,
        "request": f"{probe.method} {probe.path}",
        "levels": {},
    }
    try:
        # warm-up: imports, caches, the first page of the WAL
        if drive(probe, url, 1, 1.0) is None:
            report["skipped"] = "the load generator cannot send a new body per request"
            return report
        for concurrency in levels:
            cpu: list[float] = []
            rates: list[float] = []
            errors = 0
            first_error = None
            for _ in range(repeats):
                before = usage(proc.pid).cpu_seconds
                result = drive(probe, url, concurrency, duration)
                spent = usage(proc.pid).cpu_seconds - before
                assert result is not None
                cpu.append(spent * 1000 / max(result["ok"], 1))
                rates.append(result["exchanges_per_s"])
                errors += result["errors"]
                first_error = first_error or result.get("first_error")
            report["levels"][str(concurrency)] = {
                "cpu_ms_per_lookup": round(statistics.median(cpu), 4),
                "cpu_ms_per_lookup_runs": [round(c, 4) for c in cpu],
                "lookups_per_s": round(statistics.median(rates), 1),
                "errors": errors,
                "first_error": first_error,
            }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return report


def render(report: dict[str, Any]) -> str:
    lines = ["\nsample registries, each called directly (CPU of its process per request)"]
    for sample in report["registries"].values():
        lines.append(f"  {sample['title']}: {sample['request']}")
        if "skipped" in sample:
            lines.append(f"    skipped: {sample['skipped']}")
        for concurrency, level in sample["levels"].items():
            lines.append(
                f"    concurrency {concurrency:>3}: {level['cpu_ms_per_lookup']:.3f} ms CPU "
                f"(runs {level['cpu_ms_per_lookup_runs']}), {level['lookups_per_s']:.0f}/s, "
                f"{level['errors']} errors"
            )
    return "\n".join(lines)
