"""The work no node can skip, measured in the bench's own process: one ES256 signature
and one verification per exchange per node.

A node's CPU per exchange is judged against the lean relay's CPU per proxy of the same
run (``targets.NODE_TO_RELAY_CPU``). Every exchange makes each node sign one message (the
consumer its request, the provider its response) and verify the other's, with the
node's own :class:`~gateway.core.jws.Signer` and
:class:`~gateway.core.jws.SignatureVerifier`. Their cost on this machine, next to the
relay's figure, says how much of the ratio the signatures alone take: where the
signatures alone exceed the target's multiple, no node that signs can meet it, and the
report says so rather than leave the reader to wonder whether the target is in reach.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.core.ids import MemberId
from gateway.core.jws import SignatureVerifier, Signer
from gateway.pki.ca import create_root_ca, issue_certificate, make_csr
from gateway.pki.keys import generate_key
from gateway.pki.profiles import CertKind

_OWNER = MemberId.parse("DE-NRW/GOV/05974028")
PAYLOAD_BYTES = 700
"""About the size of a signed request or response header of the bench's exchange."""


@dataclass(frozen=True)
class Floor:
    """CPU milliseconds of one signature and one verification, medians of ``runs``."""

    sign_ms: float
    verify_ms: float
    runs: int

    @property
    def per_node_ms(self) -> float:
        """What each node spends on signatures per exchange: one of each."""
        return self.sign_ms + self.verify_ms

    def as_dict(self) -> dict[str, float | int]:
        return {
            "sign_ms": round(self.sign_ms, 4),
            "verify_ms": round(self.verify_ms, 4),
            "per_node_ms": round(self.per_node_ms, 4),
            "runs": self.runs,
        }


def measure(*, iterations: int = 400, runs: int = 5, now: datetime | None = None) -> Floor:
    """Sign and verify ``iterations`` times per run with a fresh P-256 member key whose
    certificate a fresh root issued, exactly as a node's signer and verifier do, and
    take each run's thread CPU time per operation; medians over ``runs``."""
    now = now or datetime.now(UTC)
    ca_key, key = generate_key(), generate_key()
    ca = create_root_ca("Bench floor CA", ca_key, now - timedelta(days=1), days=60)
    csr = make_csr(key, CertKind.SIGN, _OWNER)
    cert = issue_certificate(csr, CertKind.SIGN, ca_key, ca, now - timedelta(hours=1), days=30)
    signer, verifier = Signer(_OWNER, key, [cert]), SignatureVerifier([ca])
    payload = b"{" + b"x" * (PAYLOAD_BYTES - 2) + b"}"
    signature = signer.sign(payload)
    verifier.verify(signature, payload, now)  # the chain check a node caches, done once
    signs: list[float] = []
    verifies: list[float] = []
    for _ in range(runs):
        start = time.thread_time()
        for _ in range(iterations):
            signer.sign(payload)
        signs.append((time.thread_time() - start) / iterations)
        start = time.thread_time()
        for _ in range(iterations):
            verifier.verify(signature, payload, now)
        verifies.append((time.thread_time() - start) / iterations)
    return Floor(statistics.median(signs) * 1000, statistics.median(verifies) * 1000, runs)


def render(floor: dict[str, float | int], levels: dict[str, dict[str, object]]) -> str:
    """One line per level: the signatures alone as a multiple of the relay's CPU per
    proxy, the least any signing node's ratio can be."""
    lines = [
        f"\nsignatures alone, per node per exchange: sign {floor['sign_ms']:.3f} ms + verify "
        f"{floor['verify_ms']:.3f} ms = {floor['per_node_ms']:.3f} ms (this process, thread CPU, "
        f"median of {floor['runs']} runs)"
    ]
    for key in sorted(levels, key=int):
        relay = levels[key].get("relay")
        cpu = relay.get("cpu_ms_per_exchange") if isinstance(relay, dict) else None
        if not isinstance(cpu, dict):
            continue
        per_proxy = (float(cpu["front"]) + float(cpu["back"])) / 2
        if per_proxy > 0:
            lines.append(
                f"  concurrency {key}: {float(floor['per_node_ms']) / per_proxy:.2f}x the lean "
                f"relay's {per_proxy:.3f} ms per proxy"
            )
    return "\n".join(lines)
