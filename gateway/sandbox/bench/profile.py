"""Sampling profiles of running nodes with py-spy, summarised where the time goes.

``gateway bench --profile DIR`` attaches py-spy to both nodes during one extra gateway
run, so the profile shows the same load the table measures. py-spy samples from outside
the process (no instrumentation overhead inside the node), and its collapsed-stack output
is the format flamegraph.pl and speedscope read, so the raw files are kept next to the
summary.

The summary groups samples into a few buckets named after the work a node does per
exchange (signing, verifying, logging, HTTP, ...), by the innermost frame that belongs
to a known bucket. Buckets are a reading aid, not a measurement of their own: the raw
stacks are the evidence.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# (bucket, substrings of a frame "function (file:line)"); first match from the innermost
# frame outwards wins, so specific buckets come before general ones.
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ES256 sign", ("sign (gateway/core/jws.py",)),
    ("ES256 verify + x5c", ("verify (gateway/core/jws.py", "_signer (gateway/core")),
    (
        "SQLite commit (writer thread)",
        ("gateway/messagelog/sqlite_commit", "_commit_batch (", "_run (gateway/messagelog/writer"),
    ),
    ("body digests", ("body_sha256 (", "check_body (")),
    ("canonical JSON / envelope", ("canonical.py", "envelope.py", "json/")),
    ("TLS (ssl module)", ("ssl.py", "sslproto.py")),
    ("aiohttp client", ("aiohttp/client", "aiohttp/connector", "node/transport.py")),
    ("aiohttp server", ("aiohttp/web", "aiohttp/http_", "aiohttp/base_protocol")),
    ("ids, headers, policy", ("core/ids.py", "core/headers.py", "core/policy.py")),
    ("gateway node logic", ("gateway/node/", "gateway/messagelog/")),
    ("asyncio / event loop", ("asyncio/", "uvloop")),
)


@dataclass(frozen=True)
class Profile:
    """Samples of one process, bucketed."""

    name: str
    samples: int
    buckets: dict[str, int]
    top_self: list[tuple[str, int]]
    raw: Path


def _executable() -> str | None:
    """py-spy from this interpreter's environment first (``make`` installs it there)."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file():
        return str(beside)
    return shutil.which("py-spy")


def available() -> bool:
    return _executable() is not None


def start(pid: int, out: Path, duration_s: int, rate: int = 250) -> subprocess.Popen[bytes]:
    """Start sampling ``pid``; py-spy stops by itself after ``duration_s``."""
    exe = _executable()
    if exe is None:
        raise RuntimeError("py-spy is not installed; `pip install py-spy` to profile")
    return subprocess.Popen(  # noqa: S603 - a fixed tool with our own arguments
        [
            exe, "record", "--pid", str(pid), "--duration", str(duration_s),
            "--rate", str(rate), "--format", "raw", "--output", str(out), "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def _frames(stack: str) -> list[str]:
    # Collapsed format: "thread;outer (file:line);...;inner (file:line) COUNT".
    return stack.split(";")


def bucket_of(frames: Iterable[str]) -> str:
    for frame in reversed(list(frames)):
        for bucket, needles in BUCKETS:
            if any(n in frame for n in needles):
                return bucket
    return "other"


def summarise(name: str, raw: Path) -> Profile:
    buckets: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total = 0
    for line in raw.read_text("utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        total += count
        buckets[bucket_of(frames)] += count
        self_time[frames[-1]] += count
    return Profile(name, total, dict(buckets.most_common()), self_time.most_common(12), raw)


def render(profiles: Iterable[Profile]) -> str:
    lines: list[str] = []
    for p in profiles:
        lines.append(f"{p.name}: {p.samples} samples ({p.raw.name})")
        for bucket, count in p.buckets.items():
            share = 100 * count / max(p.samples, 1)
            lines.append(f"  {share:5.1f} %  {bucket}")
        lines.append("  top self time:")
        for frame, count in p.top_self:
            share = 100 * count / max(p.samples, 1)
            lines.append(f"  {share:5.1f} %  {frame[:110]}")
    return "\n".join(lines)
