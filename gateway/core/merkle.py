"""Merkle trees as RFC 9162 (Certificate Transparency 2.0) section 2.1 defines them.

The message log commits to its entries with this tree so that a single small value (the
root hash at a tree size) can be timestamped, later signed and witnessed, and still prove
any one entry (inclusion proof) and that a later tree extends an earlier one without
rewriting it (consistency proof). Using RFC 9162's exact hashing lets auditors check our
proofs with any CT/transparency-dev tooling instead of trusting our code.

Pure: no I/O, no time. Hashes are raw 32-byte SHA-256 digests. Every verification raises
:class:`MerkleError` with a reason instead of returning ``False``.

:class:`CompactTree` is the incremental form the node keeps: the roots of the perfect
subtrees that make up the tree so far (one per set bit of the size), so appending a leaf
and computing the root each cost O(log n) hashes and the node never rehashes its log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Final

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactTree",
    "InclusionChecker",
    "MerkleError",
    "consistency_path",
    "consistency_proof",
    "inclusion_path",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string (RFC 9162 section 2.1.1)."""


class MerkleError(ValueError):
    """A proof or tree state that does not verify; the message says which check failed."""


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d): the prefix keeps a leaf from posing as a node."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right) for an interior node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): where RFC 9162 splits D[n]."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_root(leaves: Sequence[bytes], begin: int, end: int) -> bytes:
    """MTH(D[begin:end]) from leaf hashes, bottom-up.

    Pairing level by level and carrying an odd last node up unchanged builds exactly
    RFC 9162's left-heavy tree (k = largest power of two < n), without recursion.
    """
    if begin == end:
        return EMPTY_ROOT
    level = list(leaves[begin:end])
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise MerkleError(f"{what} has {len(value)} bytes, not {HASH_SIZE}")


def tree_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of entries, given their leaf hashes (RFC 9162 section 2.1.1)."""
    return _range_root(leaf_hashes, 0, len(leaf_hashes))


# -- inclusion (RFC 9162 section 2.1.3) ------------------------------------------------


def inclusion_proof(index: int, size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[size]): the sibling hashes from leaf ``index`` up to the root.

    ``leaf_hashes`` must hold at least the first ``size`` leaf hashes. Costs O(size)
    hashes, since the siblings together cover the whole tree; callers with many proofs
    to make may cache subtree roots.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    if len(leaf_hashes) < size:
        raise ValueError(f"need {size} leaf hashes, got {len(leaf_hashes)}")
    return inclusion_path(index, size, lambda b, e: _range_root(leaf_hashes, b, e))


def inclusion_path(index: int, size: int, subtree_root: Callable[[int, int], bytes]) -> list[bytes]:
    """PATH(index, D[size]) with each sibling's hash from ``subtree_root(begin, end)``.

    The walk is RFC 9162's; where the hashes come from is the caller's: all leaf hashes
    (``inclusion_proof``), or stored complete subtrees (``gateway.core.merkle_nodes``).
    """
    path: list[bytes] = []
    begin, end = 0, size
    # Walk down from the root, collecting the sibling of each subtree that holds the
    # leaf; PATH lists them bottom-up, so reverse at the end.
    while end - begin > 1:
        k = _split(end - begin)
        if index - begin < k:
            path.append(subtree_root(begin + k, end))
            end = begin + k
        else:
            path.append(subtree_root(begin, begin + k))
            begin += k
    path.reverse()
    return path


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf`` (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is not in a tree of size {size}")
    _check_hash(leaf, "the leaf hash")
    fn, sn = index, size - 1
    r = leaf
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
        if sn == 0:
            raise MerkleError(f"the proof has {len(proof)} elements, more than the tree needs")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError(f"the proof has {len(proof)} elements, fewer than the tree needs")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`MerkleError` unless ``proof`` shows leaf ``index`` in the tree ``root``."""
    _check_hash(root, "the root hash")
    if root_from_inclusion_proof(leaf, index, size, proof) != root:
        raise MerkleError(f"leaf {index} is not in the tree of size {size} with that root")


class InclusionChecker:
    """RFC 9162 inclusion verification that reuses nodes authenticated by earlier proofs.

    After a proof into a tree of size n verified, every node it computed on the way
    (identified by RFC 9162's (fn, sn) pair, which fixes level and position) is known to
    be that tree's. A later proof into the same tree stops at the first such node: its
    hash must equal the authenticated one and the rest of its path must equal the
    authenticated path byte for byte. Consecutive entries then cost about two hashes
    instead of log2(n), and every proof is still checked in full.
    """

    MAX_NODES: Final = 1 << 16

    def __init__(self) -> None:
        self._known: dict[int, dict[tuple[int, int], tuple[bytes, tuple[bytes, ...], int]]] = {}

    def verify(
        self, leaf: bytes, index: int, size: int, proof: tuple[bytes, ...], root: bytes
    ) -> None:
        if not 0 <= index < size:
            raise MerkleError(f"leaf index {index} is not in a tree of size {size}")
        known = self._known.setdefault(size, {})
        fn, sn = index, size - 1
        r = leaf
        seen: list[tuple[tuple[int, int], bytes, int]] = []
        for i, p in enumerate(proof):
            hit = known.get((fn, sn))
            if hit is not None:
                value, path, start = hit
                if value != r:
                    raise MerkleError(f"leaf {index} is not in the tree of size {size}")
                if path[start:] != proof[i:]:
                    raise MerkleError(f"the proof for leaf {index} differs from the tree's path")
                self._remember(known, seen, proof)
                return
            if len(p) != HASH_SIZE:
                raise MerkleError(f"proof element {i} has {len(p)} bytes")
            if sn == 0:
                raise MerkleError(f"the proof has {len(proof)} elements, more than the tree needs")
            seen.append(((fn, sn), r, i))
            if fn & 1 or fn == sn:
                r = node_hash(p, r)
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
            else:
                r = node_hash(r, p)
            fn >>= 1
            sn >>= 1
        if sn != 0:
            raise MerkleError(f"the proof has {len(proof)} elements, fewer than the tree needs")
        if r != root:
            raise MerkleError(f"leaf {index} is not in the tree of size {size} with that root")
        self._remember(known, seen, proof)

    def _remember(
        self,
        known: dict[tuple[int, int], tuple[bytes, tuple[bytes, ...], int]],
        seen: list[tuple[tuple[int, int], bytes, int]],
        proof: tuple[bytes, ...],
    ) -> None:
        if len(known) > self.MAX_NODES:
            known.clear()  # only a cache: the next proof just hashes further up
        for key, value, start in seen:
            known[key] = (value, proof, start)


# -- consistency (RFC 9162 section 2.1.4) -----------------------------------------------


def consistency_proof(old_size: int, new_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(old_size, D[new_size]): the tree of ``new_size`` extends that of ``old_size``.

    Empty when ``old_size`` is 0 or equal to ``new_size`` (nothing to prove).
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if len(leaf_hashes) < new_size:
        raise ValueError(f"need {new_size} leaf hashes, got {len(leaf_hashes)}")
    if old_size in (0, new_size):
        return []
    return consistency_path(old_size, new_size, lambda b, e: _range_root(leaf_hashes, b, e))


def consistency_path(
    old_size: int, new_size: int, subtree_root: Callable[[int, int], bytes]
) -> list[bytes]:
    """PROOF(old_size, D[new_size]) (0 < old_size < new_size) with each hash from
    ``subtree_root(begin, end)``, as ``inclusion_path`` does for inclusion."""
    proof: list[bytes] = []
    m, begin, end = old_size, 0, new_size
    complete = True  # SUBPROOF's b: is D[begin:begin+m] a tree the verifier already has?
    while m != end - begin:
        k = _split(end - begin)
        if m <= k:
            proof.append(subtree_root(begin + k, end))
            end = begin + k
        else:
            proof.append(subtree_root(begin, begin + k))
            begin += k
            m -= k
            complete = False
    if not complete:
        proof.append(subtree_root(begin, end))
    proof.reverse()
    return proof


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Raise :class:`MerkleError` unless the tree ``new_root`` extends ``old_root``.

    RFC 9162 section 2.1.4.2, plus the trivial cases: equal sizes need equal roots and an
    empty proof; from size 0 (whose root must be the empty-tree hash) any tree follows.
    """
    _check_hash(old_root, "the old root hash")
    _check_hash(new_root, "the new root hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
    if not 0 <= old_size <= new_size:
        raise MerkleError(f"a tree of size {new_size} cannot extend one of size {old_size}")
    if old_size == new_size:
        if proof:
            raise MerkleError("trees of equal size need an empty consistency proof")
        if old_root != new_root:
            raise MerkleError(f"two different roots for the same tree size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise MerkleError("the empty tree needs an empty consistency proof")
        if old_root != EMPTY_ROOT:
            raise MerkleError("the root of the empty tree is not SHA-256 of the empty string")
        return
    if not proof:
        raise MerkleError("the consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # old tree is a perfect subtree: its root starts it
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise MerkleError("the consistency proof is longer than the trees need")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError("the consistency proof is shorter than the trees need")
    if fr != old_root:
        raise MerkleError(f"the proof does not lead to the old root of size {old_size}")
    if sr != new_root:
        raise MerkleError(f"the proof does not lead to the new root of size {new_size}")


# -- incremental tree ---------------------------------------------------------------------


class CompactTree:
    """The right frontier of a growing tree: O(log n) state, append and root.

    Holds the roots of the perfect subtrees the first ``size`` leaves decompose into,
    largest (leftmost) first: one per set bit of ``size``, as transparency-dev's
    ``compact.Range`` starting at 0. That is all a log needs to keep to extend its tree
    and compute the current root; proofs need the leaves (or cached subtrees).
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise MerkleError("a tree size cannot be negative")
        if len(hashes) != size.bit_count():
            raise MerkleError(
                f"a tree of size {size} has {size.bit_count()} frontier hashes, not {len(hashes)}"
            )
        for i, h in enumerate(hashes):
            _check_hash(h, f"frontier hash {i}")
        self._size = size
        self._hashes = [bytes(h) for h in hashes]

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect subtree roots, leftmost first."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash: merge equal-sized perfect subtrees, as a binary counter carries.

        Returns the subtrees this leaf completes, ``(level, index, hash)`` with the leaf
        itself first (level 0): the subtree at ``level`` and ``index`` covers leaves
        ``index * 2**level`` up to ``(index + 1) * 2**level``. A log that stores them as
        it appends can build any proof from O(log n) of them (``merkle_nodes``).
        """
        _check_hash(leaf, "the leaf hash")
        hashes = self._hashes
        hashes.append(leaf)
        position = self._size
        done = [(0, position, leaf)]
        n, level = position, 0
        while n & 1:
            right = hashes.pop()
            hashes[-1] = node_hash(hashes[-1], right)
            n >>= 1
            level += 1
            done.append((level, position >> level, hashes[-1]))
        self._size += 1
        return done

    def root(self) -> bytes:
        """MTH of every leaf appended so far: fold the frontier from the right."""
        if not self._hashes:
            return EMPTY_ROOT
        r = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            r = node_hash(h, r)
        return r

    def copy(self) -> CompactTree:
        clone = CompactTree.__new__(CompactTree)
        clone._size = self._size
        clone._hashes = list(self._hashes)
        return clone

    def to_bytes(self) -> bytes:
        """Serialised state: the size as 8 bytes big-endian, then the frontier hashes."""
        return self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactTree:
        """Read :meth:`to_bytes` output back, refusing anything malformed."""
        if len(data) < 8 or (len(data) - 8) % HASH_SIZE:
            raise MerkleError(f"{len(data)} bytes are not a serialised compact tree")
        size = int.from_bytes(data[:8], "big")
        hashes = [data[i : i + HASH_SIZE] for i in range(8, len(data), HASH_SIZE)]
        return cls(size, hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactTree):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    def __hash__(self) -> int:
        return hash((self._size, tuple(self._hashes)))

    def __repr__(self) -> str:
        return f"CompactTree(size={self._size}, root={self.root().hex()[:16]}…)"
