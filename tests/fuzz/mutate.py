"""Damaging a valid input: the edits both fuzzers start from.

A parser's deep paths are reached only by inputs that are almost valid, so besides
arbitrary bytes each target gets its seeds with a few bytes flipped, inserted, deleted
or duplicated, cut short, or nested deeply. Hypothesis draws the edits (and shrinks a
failing input to few of them); ``make fuzz`` without atheris draws them at random.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from hypothesis import strategies as st

# One edit: (kind, position, length, byte); positions wrap around the input's length.
Edit = tuple[int, int, int, int]
_EDIT_KINDS = 7


def apply_edits(seed: bytes, edits: Sequence[Edit]) -> bytes:
    data = bytearray(seed)
    for kind, position, length, value in edits:
        at = position % (len(data) + 1)
        if kind == 0 and data:  # flip some bits of one byte
            data[at % len(data)] ^= value or 1
        elif kind == 1:  # insert bytes
            data[at:at] = bytes([value]) * (length % 8 + 1)
        elif kind == 2:  # delete a run
            del data[at : at + length % 16 + 1]
        elif kind == 3:  # cut short
            del data[at:]
        elif kind == 4:  # duplicate a run (a repeated field, a doubled bracket)
            data[at:at] = data[at : at + length % 64 + 1]
        elif kind == 5 and data:  # set one byte to a value parsers treat specially
            data[at % len(data)] = b'\x00\xff"{}[]\\/.%?\n='[value % 14]
        elif kind == 6:  # deep nesting, which recursive parsers may not survive
            data[at:at] = (b"[", b'{"a":', b"\x30\x80", b"%5B")[value % 4] * (4000 + length * 64)
    return bytes(data)


_edit = st.tuples(
    st.integers(0, _EDIT_KINDS - 1),
    st.integers(0, 1 << 20),
    st.integers(0, 255),
    st.integers(0, 255),
)


def inputs(seeds: Sequence[bytes], max_size: int = 512) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, or a seed with one to four edits (the seeds themselves too)."""
    mutated = st.builds(
        apply_edits, st.sampled_from(list(seeds)), st.lists(_edit, min_size=0, max_size=4)
    )
    return st.one_of(st.binary(max_size=max_size), mutated, mutated)


def random_input(seeds: Sequence[bytes], rng: random.Random) -> bytes:
    """The same distribution without hypothesis, for a plain loop."""
    if rng.random() < 0.2:
        return rng.randbytes(rng.randrange(512))
    edits = [
        (rng.randrange(_EDIT_KINDS), rng.randrange(1 << 20), rng.randrange(256), rng.randrange(256))
        for _ in range(rng.randrange(1, 5))
    ]
    return apply_edits(rng.choice(list(seeds)), edits)
