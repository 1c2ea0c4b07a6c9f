"""Proofs from stored complete subtrees, so a proof costs O(log n) reads at any log size.

RFC 9162's proofs consist of the hashes of ranges of leaves. Every range its recursion
names starts at a multiple of a power of two at least as large as the range, so each
range is a few perfect subtrees side by side (one per set bit of its length), and its
hash is their hashes folded from the right. A log that keeps every perfect subtree as it
completes (``CompactTree.append`` returns them; the leaves are the subtrees of level 0)
can therefore build any inclusion or consistency proof from at most about 2·log2(n)²
stored hashes named in advance, read in one query, instead of all n leaf hashes.

A subtree is named by ``(level, index)``: it covers leaves ``index * 2**level`` up to
``(index + 1) * 2**level``. Pure: the caller reads the named hashes and passes them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from gateway.core.merkle import (
    CompactTree,
    MerkleError,
    consistency_path,
    inclusion_path,
    node_hash,
)

__all__ = [
    "Subtree",
    "all_subtrees",
    "consistency_from_subtrees",
    "consistency_subtrees",
    "inclusion_from_subtrees",
    "inclusion_subtrees",
    "range_subtrees",
]

Subtree = tuple[int, int]
"""``(level, index)`` of a perfect subtree."""

_PLACEHOLDER = b"\x00" * 32


def range_subtrees(begin: int, end: int) -> list[Subtree]:
    """The perfect subtrees, left to right, that D[begin:end] of an RFC 9162 proof is.

    ``begin`` must be a multiple of a power of two at least ``end - begin`` (true of every
    range the proofs' recursion names); anything else is refused.
    """
    if not 0 <= begin < end:
        raise MerkleError(f"no subtrees for the range {begin}..{end}")
    parts: list[Subtree] = []
    position, length = begin, end - begin
    for level in range(length.bit_length() - 1, -1, -1):
        if length >> level & 1:
            if position % (1 << level):
                raise MerkleError(f"the range {begin}..{end} is not aligned to its subtrees")
            parts.append((level, position >> level))
            position += 1 << level
    return parts


def _range_hash(begin: int, end: int, hashes: Mapping[Subtree, bytes]) -> bytes:
    parts = range_subtrees(begin, end)
    try:
        result = hashes[parts[-1]]
        for part in reversed(parts[:-1]):
            result = node_hash(hashes[part], result)
    except KeyError as missing:
        raise MerkleError(f"the stored subtree {missing.args[0]} is missing") from None
    return result


def _named(walk: Iterable[tuple[int, int]]) -> set[Subtree]:
    named: set[Subtree] = set()
    for begin, end in walk:
        named.update(range_subtrees(begin, end))
    return named


def _ranges_of_inclusion(index: int, size: int) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []

    def record(begin: int, end: int) -> bytes:
        ranges.append((begin, end))
        return _PLACEHOLDER

    inclusion_path(index, size, record)
    return ranges


def _ranges_of_consistency(old_size: int, new_size: int) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []

    def record(begin: int, end: int) -> bytes:
        ranges.append((begin, end))
        return _PLACEHOLDER

    if 0 < old_size < new_size:
        consistency_path(old_size, new_size, record)
    return ranges


def inclusion_subtrees(index: int, size: int) -> set[Subtree]:
    """The stored subtrees PATH(index, D[size]) and the leaf itself are built from."""
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is not in a tree of size {size}")
    return _named(_ranges_of_inclusion(index, size)) | {(0, index)}


def inclusion_from_subtrees(
    index: int, size: int, hashes: Mapping[Subtree, bytes]
) -> tuple[bytes, list[bytes]]:
    """The leaf hash at ``index`` and PATH(index, D[size]) from ``inclusion_subtrees``'
    hashes; ``MerkleError`` if one is missing."""
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is not in a tree of size {size}")
    leaf = hashes.get((0, index))
    if leaf is None:
        raise MerkleError(f"the stored subtree (0, {index}) is missing")
    return leaf, inclusion_path(index, size, lambda b, e: _range_hash(b, e, hashes))


def consistency_subtrees(old_size: int, new_size: int) -> set[Subtree]:
    """The stored subtrees PROOF(old_size, D[new_size]) is built from (none if trivial)."""
    if not 0 <= old_size <= new_size:
        raise MerkleError(f"no consistency proof from size {old_size} to size {new_size}")
    return _named(_ranges_of_consistency(old_size, new_size))


def consistency_from_subtrees(
    old_size: int, new_size: int, hashes: Mapping[Subtree, bytes]
) -> list[bytes]:
    """PROOF(old_size, D[new_size]) from ``consistency_subtrees``' hashes."""
    if not 0 <= old_size <= new_size:
        raise MerkleError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    return consistency_path(old_size, new_size, lambda b, e: _range_hash(b, e, hashes))


def all_subtrees(leaves: Iterable[bytes]) -> Iterator[tuple[int, int, bytes]]:
    """Every perfect subtree of a tree of these leaf hashes, as the log stores them:
    what an older log, written before subtrees were stored, gets once."""
    tree = CompactTree()
    for leaf in leaves:
        yield from tree.append(leaf)
