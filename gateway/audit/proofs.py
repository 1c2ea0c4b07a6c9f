"""Many RFC 9162 proofs over one tree, from a table of its perfect subtrees.

``merkle.inclusion_proof`` rehashes O(n) leaves per proof, fine for one ``log prove``
but quadratic for a bundle with a proof per entry. Here every perfect, aligned subtree
root is computed once (2n hashes in all), and any range that RFC 9162's proofs ask for
(always starting at a multiple of a power of two at least its size) is the right fold of
at most log2(n) of them. The proofs are byte-identical to ``gateway.core.merkle``'s;
the tests compare both on random sizes. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.core.merkle import EMPTY_ROOT, node_hash

__all__ = ["TreeLevels"]


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


class TreeLevels:
    """``levels[k][i]`` = root of leaves ``[i * 2**k, (i + 1) * 2**k)``."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.size = len(leaves)
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append(
                [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            )

    def range_root(self, begin: int, end: int) -> bytes:
        """MTH(D[begin:end]) for the ranges RFC 9162 proofs use."""
        if begin == end:
            return EMPTY_ROOT
        blocks: list[bytes] = []
        while begin < end:
            k = (end - begin).bit_length() - 1
            while begin % (1 << k):
                k -= 1
            blocks.append(self.levels[k][begin >> k])
            begin += 1 << k
        root = blocks[-1]
        for block in reversed(blocks[:-1]):
            root = node_hash(block, root)
        return root

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[size]), as ``merkle.inclusion_proof``."""
        if not 0 <= index < size <= self.size:
            raise ValueError(f"no leaf {index} in a tree of size {size} (of {self.size})")
        path: list[bytes] = []
        begin, end = 0, size
        while end - begin > 1:
            k = _split(end - begin)
            if index - begin < k:
                path.append(self.range_root(begin + k, end))
                end = begin + k
            else:
                path.append(self.range_root(begin, begin + k))
                begin += k
        path.reverse()
        return path

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """PROOF(old_size, D[new_size]), as ``merkle.consistency_proof``."""
        if not 0 <= old_size <= new_size <= self.size:
            raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
        if old_size in (0, new_size):
            return []
        proof: list[bytes] = []
        m, begin, end = old_size, 0, new_size
        complete = True
        while m != end - begin:
            k = _split(end - begin)
            if m <= k:
                proof.append(self.range_root(begin + k, end))
                end = begin + k
            else:
                proof.append(self.range_root(begin, begin + k))
                begin += k
                m -= k
                complete = False
        if not complete:
            proof.append(self.range_root(begin, end))
        proof.reverse()
        return proof
