"""The checks after a run: the recorded history against every node's log.

Jepsen's method applied to the gateway: the load recorded what every caller was told
(``history.py``); here each answer is held against what the nodes wrote down, and each
log against itself. A finding is a sentence naming the request or entry; a run passes
with none. The checks:

- every 2xx has its request and response in the consumer node's log and in the log of
  one provider node (the one that answered it), under its ``X-Road-Request-Id``;
- every non-2xx carries a documented code (``gateway.core.errors.Code``); a refusal by
  the provider's node (``server.serverproxy.*``) carries the request id, since a message
  was created; a registry failure (``server.serverproxy.service_failed.*``) has its
  request in a provider node's log, which explains it; an exchange a provider logged
  whole but the consumer did not (the consumer lost it) was never answered with a 2xx;
  a provider logs a request alone only for an exchange it refused;
- a request with no HTTP answer at all falls inside a fault window of the consumer node;
- no leaf gaps or duplicates, no exchange logged twice on one node;
- ``gateway audit export --all`` and ``gateway audit verify`` pass for every node;
- no witness reports a split view; ``check-subjects`` finds no mismatch.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.audit.subjects import check_subjects
from gateway.core.errors import Code
from gateway.messagelog import Kind, Role, StoredEntry, read_entries, read_witness_alerts
from gateway.sandbox.faults.history import Outcome
from gateway.sandbox.faults.schedule import FaultEvent

DOCUMENTED = frozenset(c.value for c in Code)


@dataclass
class Findings:
    """What the checks found, and the counts a report shows beside them."""

    problems: list[str] = field(default_factory=list)
    ok: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    no_answer: int = 0
    explained_by_provider: int = 0
    """Refusals whose request a provider node logged (the registry failed it), and
    exchanges a provider logged whole that the consumer never logged (it lost them)."""
    audited: dict[str, int] = field(default_factory=dict)
    """Per node: the entries ``gateway audit verify`` accepted."""

    @property
    def passed(self) -> bool:
        return not self.problems


def exchanges(entries: Iterable[StoredEntry], role: Role) -> dict[str, set[Kind]]:
    """Per message id, the kinds (request, response) a node logged in ``role``."""
    out: dict[str, set[Kind]] = {}
    for e in entries:
        if e.role == role:
            out.setdefault(e.message_id, set()).add(e.kind)
    return out


def check_history(
    history: Sequence[Outcome],
    consumer: Sequence[StoredEntry],
    providers: Mapping[str, Sequence[StoredEntry]],
    consumer_faults: Sequence[FaultEvent],
    findings: Findings,
) -> None:
    """The history against the logs (the first three checks of the module's list)."""
    both = {Kind.REQUEST, Kind.RESPONSE}
    logged = exchanges(consumer, Role.CONSUMER)
    served = {name: exchanges(entries, Role.PROVIDER) for name, entries in providers.items()}
    answered: set[str] = set()
    for o in history:
        if o.request_id:
            answered.add(o.request_id)
        if o.ok:
            findings.ok += 1
            _check_ok(o, logged, served, findings)
        elif o.status is None:
            findings.no_answer += 1
            if not any(
                f.started - 1 <= o.ended and o.started <= f.ready + 1 for f in consumer_faults
            ):
                findings.problems.append(
                    f"request {o.seq}: no answer outside a consumer fault ({o.error})"
                )
        else:
            findings.refused[o.code or "(none)"] += 1
            if o.code not in DOCUMENTED:
                findings.problems.append(
                    f"request {o.seq}: status {o.status} with undocumented code {o.code!r}"
                )
            elif o.code.startswith("server.serverproxy.") and not o.request_id:
                findings.problems.append(
                    f"request {o.seq}: provider refusal {o.code} without X-Road-Request-Id"
                )
    provider_ids = {m for ids in served.values() for m in ids}
    for o in history:
        if o.ok or not o.request_id or o.code is None:
            continue
        if o.request_id in provider_ids:
            findings.explained_by_provider += 1
        elif o.code.startswith("server.serverproxy.service_failed"):
            findings.problems.append(
                f"request {o.seq}: {o.code} but no provider node logged {o.request_id}"
            )
    for name, ids in served.items():
        for message_id, kinds in ids.items():
            if kinds == both and logged.get(message_id) != both:
                findings.explained_by_provider += 1
            elif kinds != both and kinds != {Kind.REQUEST}:
                findings.problems.append(f"{name}: exchange {message_id} logged only {kinds}")
    ok_ids = {o.request_id for o in history if o.ok}
    for message_id, kinds in logged.items():
        if kinds == both and message_id not in ok_ids and message_id in answered:
            findings.problems.append(f"consumer logged {message_id} whole but answered a refusal")


def _check_ok(
    o: Outcome,
    logged: Mapping[str, set[Kind]],
    served: Mapping[str, Mapping[str, set[Kind]]],
    findings: Findings,
) -> None:
    both = {Kind.REQUEST, Kind.RESPONSE}
    if not o.request_id:
        findings.problems.append(f"request {o.seq}: 2xx without X-Road-Request-Id")
        return
    if logged.get(o.request_id) != both:
        findings.problems.append(
            f"request {o.seq}: 2xx {o.request_id} not logged whole by consumer"
        )
    holders = [name for name, ids in served.items() if ids.get(o.request_id) == both]
    if len(holders) != 1:
        findings.problems.append(
            f"request {o.seq}: 2xx {o.request_id} logged whole by {len(holders)} provider nodes"
        )


def check_leaves(name: str, entries: Sequence[StoredEntry], findings: Findings) -> None:
    """Leaves 0..n-1, each once; no (message, role, kind) logged twice."""
    leaves = sorted(e.leaf_index for e in entries if e.leaf_index is not None)
    if len(leaves) != len(entries):
        findings.problems.append(f"{name}: {len(entries) - len(leaves)} entries without a leaf")
    if leaves != list(range(len(leaves))):
        dupes = [i for i, n in Counter(leaves).items() if n > 1]
        findings.problems.append(
            f"{name}: leaf indexes not 0..{len(leaves) - 1} (duplicates {dupes[:5]})"
        )
    keys = Counter((e.message_id, e.role, e.kind) for e in entries if e.kind != Kind.ADMIN)
    twice = [k for k, n in keys.items() if n > 1]
    if twice:
        findings.problems.append(f"{name}: {len(twice)} log entries twice, e.g. {twice[0]}")


def check_node_log(name: str, db: Path | str, findings: Findings) -> list[StoredEntry]:
    """The log checks of one node that need no process: leaves, witnesses, subjects."""
    entries = read_entries(db)
    check_leaves(name, entries, findings)
    split = [a for a in read_witness_alerts(db) if a.code == Code.WITNESS_SPLIT_VIEW.value]
    if split:
        findings.problems.append(f"{name}: witness reports a split view of {split[0].peer}")
    report = check_subjects(db)
    if report.mismatches:
        findings.problems.append(f"{name}: check-subjects: {len(report.mismatches)} mismatches")
    return entries


def audit_node(
    name: str, db: Path | str, ca_cert: Path, tsa_cert: Path, out: Path, findings: Findings
) -> None:
    """``gateway audit export --all`` then ``gateway audit verify`` of the bundle."""
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / f"{name}.jsonl"
    anchor = out / "anchor.pem"
    anchor.write_bytes(ca_cert.read_bytes() + tsa_cert.read_bytes())
    exported = _gateway(
        "audit", "export", "--db", str(db), "--out", str(bundle), "--all",
        "--tsa-cert", str(tsa_cert), "--ca", str(ca_cert),
    )  # fmt: skip
    if exported.returncode != 0:
        findings.problems.append(f"{name}: audit export failed: {exported.stderr.strip()}")
        return
    verified = _gateway("audit", "verify", str(bundle), "--anchor", str(anchor))
    if verified.returncode != 0:
        findings.problems.append(f"{name}: audit verify failed: {verified.stderr.strip()}")
        return
    first = verified.stdout.splitlines()[1].split() if verified.stdout.count("\n") > 1 else []
    findings.audited[name] = int(first[0]) if first and first[0].isdigit() else -1


def _gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
