"""RFC 9162 Merkle trees: known vectors, an independent naive implementation, properties.

The vectors are the Certificate Transparency reference tree of eight leaves, as published
in transparency-dev/merkle (``testonly/constants.go``, ``proof/verify_test.go``). The
naive functions below are written straight from the RFC's recursive definitions, with no
code shared with ``gateway.core.merkle``, so a bug would have to be made twice to pass.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.merkle import (
    EMPTY_ROOT,
    CompactTree,
    MerkleError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# (leaf index, tree size, proof); transparency-dev lists the index 1-based.
INCLUSION_VECTORS = [
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (0, 1, []),
]

CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

# The compact.Tree states of transparency-dev's testonly.CompactTrees(), by level/index.
NODES = {
    (0, 0): h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    (0, 2): h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
    (0, 4): h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
    (0, 6): h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
    (1, 0): h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    (1, 2): h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
    (2, 0): h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    (3, 0): h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
}
COMPACT_STATES = [
    [],
    [(0, 0)],
    [(1, 0)],
    [(1, 0), (0, 2)],
    [(2, 0)],
    [(2, 0), (0, 4)],
    [(2, 0), (1, 2)],
    [(2, 0), (1, 2), (0, 6)],
    [(3, 0)],
]


# ---------------------------------------------------------------- naive reference


def naive_mth(data: list[bytes]) -> bytes:
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(data[:k]) + naive_mth(data[k:])).digest()


def naive_path(m: int, data: list[bytes]) -> list[bytes]:
    n = len(data)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*naive_path(m, data[:k]), naive_mth(data[k:])]
    return [*naive_path(m - k, data[k:]), naive_mth(data[:k])]


def naive_subproof(m: int, data: list[bytes], complete: bool) -> list[bytes]:
    n = len(data)
    if m == n:
        return [] if complete else [naive_mth(data)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*naive_subproof(m, data[:k], complete), naive_mth(data[k:])]
    return [*naive_subproof(m - k, data[k:], False), naive_mth(data[:k])]


def naive_consistency(m: int, data: list[bytes]) -> list[bytes]:
    return [] if m in (0, len(data)) else naive_subproof(m, data, True)


# ---------------------------------------------------------------- known vectors


def test_the_naive_reference_reproduces_the_published_roots() -> None:
    assert [naive_mth(LEAVES[:n]) for n in range(9)] == ROOTS
    # The prefixes given in the issue, as a cross-check of the copied values.
    prefixes = [
        "e3b0c442",
        "6e340b9c",
        "fac54203",
        "aeb6bcfe",
        "d37ee418",
        "4e3bbb1f",
        "76e67dad",
        "ddb89be4",
        "5dc9da79",
    ]
    assert [r.hex()[:8] for r in ROOTS] == prefixes


@pytest.mark.parametrize("size", range(9))
def test_tree_hash_matches_published_roots(size: int) -> None:
    assert tree_hash([leaf_hash(d) for d in LEAVES[:size]]) == ROOTS[size]


def test_empty_root_and_hash_prefixes() -> None:
    assert ROOTS[0] == EMPTY_ROOT
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest() == ROOTS[1]
    left, right = b"\x11" * 32, b"\x22" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    # Domain separation: a node is never the leaf hash of its children's concatenation.
    assert node_hash(left, right) != leaf_hash(left + right)


def test_compact_tree_states_match_transparency_dev() -> None:
    tree = CompactTree()
    assert tree.root() == ROOTS[0] and tree.hashes == ()
    for size in range(1, 9):
        tree.append(leaf_hash(LEAVES[size - 1]))
        assert tree.size == size
        assert list(tree.hashes) == [NODES[n] for n in COMPACT_STATES[size]]
        assert tree.root() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_inclusion_vectors(index: int, size: int, proof: list[bytes]) -> None:
    leaves = [leaf_hash(d) for d in LEAVES[:size]]
    assert inclusion_proof(index, size, leaves) == proof
    verify_inclusion(leaves[index], index, size, proof, ROOTS[size])
    assert root_from_inclusion_proof(leaves[index], index, size, proof) == ROOTS[size]


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_consistency_vectors(old: int, new: int, proof: list[bytes]) -> None:
    leaves = [leaf_hash(d) for d in LEAVES[:new]]
    assert consistency_proof(old, new, leaves) == proof
    verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


# ---------------------------------------------------------------- edge cases


def test_inclusion_refuses_impossible_positions() -> None:
    leaf = leaf_hash(b"x")
    for index, size in [(0, 0), (1, 1), (-1, 1), (5, 3)]:
        with pytest.raises(MerkleError):
            verify_inclusion(leaf, index, size, [], leaf)
        with pytest.raises(ValueError):
            inclusion_proof(index, size, [leaf] * 8)
    with pytest.raises(MerkleError):
        verify_inclusion(b"short", 0, 1, [], b"short")
    with pytest.raises(MerkleError):
        verify_inclusion(leaf, 0, 1, [], EMPTY_ROOT)
    verify_inclusion(leaf, 0, 1, [], leaf)


def test_consistency_trivial_cases() -> None:
    a, b = ROOTS[3], ROOTS[5]
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, b, [])
    verify_consistency(3, 3, a, a, [])
    bad = [
        (3, 3, a, b, []),  # same size, different roots
        (3, 3, a, a, [EMPTY_ROOT]),  # same size, proof not empty
        (0, 5, a, b, []),  # the empty tree has a known root
        (0, 5, EMPTY_ROOT, b, [EMPTY_ROOT]),
        (5, 3, b, a, []),  # time travel
        (3, 5, a, b, []),  # empty proof for a real extension
    ]
    for old, new, r1, r2, proof in bad:
        with pytest.raises(MerkleError):
            verify_consistency(old, new, r1, r2, proof)


def test_compact_tree_serialisation_round_trips_and_refuses_garbage() -> None:
    tree = CompactTree()
    for d in LEAVES[:7]:
        tree.append(leaf_hash(d))
    data = tree.to_bytes()
    assert len(data) == 8 + 32 * 3
    again = CompactTree.from_bytes(data)
    assert again == tree and again.root() == ROOTS[7]
    assert CompactTree.from_bytes(CompactTree().to_bytes()).root() == EMPTY_ROOT
    for broken in (b"", data[:-1], data + b"\x00" * 32, (8).to_bytes(8, "big") + data[8:]):
        with pytest.raises(MerkleError):
            CompactTree.from_bytes(broken)
    clone = tree.copy()
    clone.append(leaf_hash(LEAVES[7]))
    assert tree.size == 7 and clone.root() == ROOTS[8]


# ---------------------------------------------------------------- properties

leaf_lists = st.lists(st.binary(max_size=12), min_size=0, max_size=70)


@settings(max_examples=150, deadline=None)
@given(leaf_lists)
def test_incremental_equals_recursive(data: list[bytes]) -> None:
    tree = CompactTree()
    hashes = []
    for i, d in enumerate(data):
        hashes.append(leaf_hash(d))
        tree.append(hashes[-1])
        assert tree.size == i + 1
    assert tree.root() == naive_mth(data) == tree_hash(hashes)
    assert CompactTree.from_bytes(tree.to_bytes()) == tree


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_every_inclusion_proof_verifies_and_any_change_fails(data: st.DataObject) -> None:
    leaves = data.draw(st.lists(st.binary(max_size=8), min_size=1, max_size=70, unique=True))
    size = len(leaves)
    index = data.draw(st.integers(0, size - 1))
    hashes = [leaf_hash(d) for d in leaves]
    root = naive_mth(leaves)
    proof = inclusion_proof(index, size, hashes)
    assert proof == naive_path(index, leaves)
    verify_inclusion(hashes[index], index, size, proof, root)

    def refused(leaf: bytes, i: int, n: int, p: list[bytes], r: bytes) -> bool:
        try:
            verify_inclusion(leaf, i, n, p, r)
        except MerkleError:
            return True
        return False

    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        altered = list(proof)
        altered[which] = bytes(
            b ^ (1 << (bit % 8)) if j == bit // 8 else b for j, b in enumerate(altered[which])
        )
        assert refused(hashes[index], index, size, altered, root)
        assert refused(hashes[index], index, size, proof[:-1], root)
    assert refused(hashes[index], index, size, [*proof, root], root)
    assert refused(hashes[index], index, size, [root, *proof], root)
    # Leaves are unique, so the leaf at another place gives another tree; the sizes are
    # transparency-dev's probes (some nearby sizes share a path shape with this one).
    for other in {index - 1, index + 1, index ^ 2} - {index}:
        assert refused(hashes[index], other, size, proof, root)
    assert refused(hashes[index], index, size * 2, proof, root)
    if index < size // 2:
        assert refused(hashes[index], index, size // 2, proof, root)
    assert refused(hashes[index], index, size, proof, leaf_hash(b"another root"))
    assert refused(leaf_hash(b"another leaf"), index, size, proof, root)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_every_consistency_proof_verifies_and_any_change_fails(data: st.DataObject) -> None:
    leaves = data.draw(st.lists(st.binary(max_size=8), min_size=1, max_size=70, unique=True))
    new = len(leaves)
    old = data.draw(st.integers(0, new))
    hashes = [leaf_hash(d) for d in leaves]
    old_root, new_root = naive_mth(leaves[:old]), naive_mth(leaves)
    proof = consistency_proof(old, new, hashes)
    assert proof == naive_consistency(old, leaves)
    verify_consistency(old, new, old_root, new_root, proof)

    def refused(o: int, n: int, r1: bytes, r2: bytes, p: list[bytes]) -> bool:
        try:
            verify_consistency(o, n, r1, r2, p)
        except MerkleError:
            return True
        return False

    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        altered = list(proof)
        altered[which] = bytes([altered[which][0] ^ 0x10]) + altered[which][1:]
        assert refused(old, new, old_root, new_root, altered)
        assert refused(old, new, old_root, new_root, proof[:-1])
        assert refused(old, new, old_root, new_root, [*proof, new_root])
        assert refused(old, new, old_root, new_root, [proof[0], *proof])
    if 0 < old < new:
        # transparency-dev's probes: some other sizes share this proof's shape.
        for wrong_old in {old - 1, old + 1, old ^ 2} - {old}:
            assert refused(wrong_old, new, old_root, new_root, proof)
        assert refused(old, new // 2, old_root, new_root, proof)
        assert refused(old, new, new_root, new_root, proof)
        assert refused(old, new, old_root, old_root, proof)
        assert refused(old, new * 2, old_root, new_root, proof)
        assert refused(old, new, leaf_hash(b"x"), new_root, proof)
