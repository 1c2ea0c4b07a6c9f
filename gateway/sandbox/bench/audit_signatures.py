"""The audit target's baseline: the bundle's signatures alone, verified on the same cores.

The target is a ratio, not a rate: verifying a bundle offline must reach 0.6 of the rate
at which the same machine, in the same run, verifies just the ES256 signatures of that
bundle's entries with as many processes. So this pass takes the bundle file the verifier
read, extracts each entry's signing input, signer key and signature beforehand (not
timed), and then times only the verification of those signatures in ``jobs`` worker
processes, pool start included, as the verifier's own pool start is included in its
time. CPU time is the pass's own plus its reaped workers'.
"""

from __future__ import annotations

import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.audit.bundle_read import parse_entry_line
from gateway.audit.parallel import CHUNK
from gateway.audit.signatures import SignatureTask, check_signatures_serial
from gateway.core.encoding import b64url, b64url_decode
from gateway.core.jws import parse_jws_chain

__all__ = ["SignaturePass", "cpu_seconds", "signature_tasks", "time_signatures"]


@dataclass(frozen=True)
class SignaturePass:
    signatures: int
    seconds: float
    cpu_seconds: float
    jobs: int

    @property
    def per_second(self) -> float:
        return self.signatures / self.seconds


def cpu_seconds() -> float:
    """CPU (user + system) of this process and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def signature_tasks(bundle: Path) -> list[SignatureTask]:
    """One task per entry of a bundle the verifier accepted: what its signature covers."""
    keys: dict[str, bytes] = {}
    tasks: list[SignatureTask] = []
    for number, raw in enumerate(bundle.read_bytes().splitlines(), start=1):
        if b'"type":"entry"' not in raw:
            continue
        e = parse_entry_line(raw, number)
        segment, _, encoded = e.signature.split(".")
        point = keys.get(segment)
        if point is None:
            key = parse_jws_chain(segment)[0].public_key()
            assert isinstance(key, ec.EllipticCurvePublicKey)
            point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
            keys[segment] = point
        signing_input = f"{segment}.{b64url(e.header)}".encode("ascii")
        tasks.append(SignatureTask(len(tasks), point, signing_input, b64url_decode(encoded)))
    return tasks


def time_signatures(tasks: list[SignatureTask], jobs: int) -> SignaturePass:
    """Verify every task in ``jobs`` processes, in chunks of the verifier's size; a
    signature that fails here is a fault of the bench, since the verifier accepted it."""
    chunks = [tasks[i : i + CHUNK] for i in range(0, len(tasks), CHUNK)]
    cpu = cpu_seconds()
    started = time.perf_counter()
    if jobs <= 1:
        failures = [check_signatures_serial(chunk) for chunk in chunks]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            failures = list(pool.map(check_signatures_serial, chunks))
    seconds = time.perf_counter() - started
    bad = [f for f in failures if f is not None]
    if bad:
        raise RuntimeError(f"signature of entry position {bad[0]} does not verify")
    return SignaturePass(len(tasks), seconds, cpu_seconds() - cpu, jobs)
