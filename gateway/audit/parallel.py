"""Verify a bundle file on every core: entries are parsed and checked in chunks.

Per entry, reading its line, recomputing its leaf, checking its proof and header cost
about as much as its ES256 signature, so the whole per-entry pipeline runs in worker
processes, not just the signatures. The main process checks the manifest, references
and tree heads first (a few milliseconds per head), hands each worker the verified
state and the bundle's bytes once, sends it where each chunk's lines lie, and combines
the chunk outcomes in bundle order, so the verdict, and the first bad piece it names,
are the same as ``verify_bundle``'s.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from itertools import accumulate
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.audit.bundle import BundleFormatError, EntryItem
from gateway.audit.bundle_read import parse_entry_line, read_bundle
from gateway.audit.sealed import BundleSealError, is_sealed_bundle, open_bundle
from gateway.audit.verify import (
    AuditReport,
    AuditTrustAnchor,
    ChunkOutcome,
    EntryContext,
    finish,
    prepare,
    verify_chunk,
)

__all__ = ["CHUNK", "default_jobs", "verify_file"]

CHUNK = 2000
"""Entries per task: large enough that the per-task overhead vanishes, small enough
that both workers stay busy to the end."""

_context: EntryContext | None = None
_data: bytes = b""
"""The whole (opened) bundle: a worker takes its chunks' lines from it by offset."""


def _init(context: EntryContext, data: bytes) -> None:
    """Keep the verified state and the bundle's bytes for the worker's chunks. Both
    come as the pool's initargs, which a forked worker inherits without a copy
    through a pipe: sending every chunk's bytes (as large as the bundle) cost the
    main process and the workers about as much CPU as a worker's leaf checks."""
    global _context, _data
    _context, _data = context, data


def _parse(first_line: int, lines: list[bytes]) -> list[EntryItem] | BundleFormatError:
    entries = []
    for number, raw in enumerate(lines, start=first_line):
        try:
            entries.append(parse_entry_line(raw, number))
        except BundleFormatError as exc:
            return exc
    return entries


def _chunk(
    start: int, first_line: int, begin: int, end: int
) -> ChunkOutcome | tuple[int, str, int | None]:
    """One chunk, sent as where its lines lie in the bundle's bytes, split here, on
    the worker's core."""
    assert _context is not None
    parsed = _parse(first_line, _data[begin:end].splitlines(keepends=True))
    if isinstance(parsed, BundleFormatError):
        return (parsed.line, parsed.detail, parsed.entry_id)
    return verify_chunk(_context, None, start, parsed)


def _line_ends(data: bytes) -> tuple[int, list[int]]:
    """Where each of ``data.splitlines()``'s lines ends, and which is the first entry.

    The main process only needs the boundaries: the lines themselves are split in the
    worker that checks them. A file with no carriage return splits at its newlines
    alone, found without copying a line; any other is split as ``splitlines`` does."""
    if b"\r" in data:
        ends = list(accumulate(map(len, data.splitlines(keepends=True))))
    else:
        ends = []
        at = data.find(b"\n")
        while at != -1:
            ends.append(at + 1)
            at = data.find(b"\n", at + 1)
        if len(data) > (ends[-1] if ends else 0):
            ends.append(len(data))
    begin = 0
    for number, end in enumerate(ends):
        if data.find(b'"type":"entry"', begin, end) != -1:
            return number, ends
        begin = end
    return len(ends), ends


def default_jobs() -> int:
    """The CPUs this process may run on: one worker each."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def verify_file(
    path: Path,
    anchor: AuditTrustAnchor,
    *,
    jobs: int = 1,
    chunk: int = CHUNK,
    decrypt_key: X25519PrivateKey | None = None,
) -> AuditReport:
    """Verify the bundle at ``path``, opening a sealed one with ``decrypt_key`` (in
    memory only); raise ``BundleFormatError`` (a sealed bundle without or with a wrong
    key too) or ``AuditError``."""
    data = path.read_bytes()
    if is_sealed_bundle(data):
        if decrypt_key is None:
            raise BundleFormatError(1, "the bundle is sealed: give a recipient's --decrypt-key")
        try:
            data = open_bundle(data, decrypt_key)
        except BundleSealError as exc:
            raise BundleFormatError(1, str(exc)) from None
    first, ends = _line_ends(data)
    starts, n = [0, *ends], len(ends)
    head = read_bundle(data[starts[i] : starts[i + 1]] for i in range(first))
    context = prepare(head, anchor)
    tasks = []
    for start in range(0, n - first, chunk):
        begin, end = starts[first + start], starts[min(first + start + chunk, n)]
        tasks.append((start, first + start + 1, begin, end))
    results: list[ChunkOutcome | tuple[int, str, int | None]]
    if jobs <= 1 or len(tasks) <= 1:
        verifier = context.verifier()
        results = []
        for start, line, begin, end in tasks:
            parsed = _parse(line, data[begin:end].splitlines(keepends=True))
            if isinstance(parsed, BundleFormatError):
                raise parsed
            results.append(verify_chunk(context, verifier, start, parsed))
    else:
        with ProcessPoolExecutor(
            max_workers=jobs, initializer=_init, initargs=(context, data)
        ) as pool:
            futures = [pool.submit(_chunk, *task) for task in tasks]
            results = [f.result() for f in futures]
    outcomes: list[ChunkOutcome] = []
    for result in results:
        if isinstance(result, tuple):
            raise BundleFormatError(*result)
        outcomes.append(result)
    return finish(context, outcomes, anchor)
