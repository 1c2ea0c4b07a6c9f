"""The root ceremony's functions on a repository on disk: keys apart from the online
store, signatures counted against both roots, an encrypted holder's key, the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from tuf.api.metadata import Root

from gateway.central.repo import KeyStore, RepoError, TufRepository
from gateway.central.rootceremony import (
    load_prepared,
    load_root_key,
    prepare_root,
    publish_root,
    sign_root,
    write_prepared,
)
from gateway.keys.files import encrypt_key_file

PASSPHRASE = b"Haltern-am-See-Stausee"


def _repo(tmp_path: Path) -> tuple[TufRepository, list[Path]]:
    holders = [tmp_path / "anna", tmp_path / "bernd"]
    repo = TufRepository(tmp_path / "repo", KeyStore(tmp_path / "keys"))
    repo.initialise(root_threshold=2, root_key_dirs=holders)
    return repo, holders


def _key(directory: Path) -> Path:
    (key,) = directory.glob("*.pem")
    return key


def test_root_keys_go_to_their_holders_and_the_store_keeps_the_online_keys(
    tmp_path: Path,
) -> None:
    repo, holders = _repo(tmp_path)
    root = repo.root()
    assert set(root.roles[Root.type].keyids) == {_key(h).stem for h in holders}
    online = set(repo.keys.signers())
    assert not online & set(root.roles[Root.type].keyids)
    for role in ("targets", "snapshot", "timestamp"):
        assert set(root.roles[role].keyids) <= online
    with pytest.raises(RepoError, match="root prepare"):
        repo.rotate_root(threshold=1)  # the server alone cannot sign a new root
    assert repo.root().version == 1


def test_a_root_signed_by_both_holders_is_published_one_short_is_not(tmp_path: Path) -> None:
    repo, (anna, bernd) = _repo(tmp_path)
    prepared = tmp_path / "root.json"
    write_prepared(prepare_root(repo, threshold=1), prepared)
    encrypt_key_file(_key(bernd), PASSPHRASE)  # a holder keeps theirs encrypted
    with pytest.raises(RepoError, match="is encrypted"):
        load_root_key(_key(bernd))
    with pytest.raises(RepoError, match="wrong passphrase") as wrong:
        load_root_key(_key(bernd), b"falsch")
    assert "falsch" not in str(wrong.value)

    assert sign_root(prepared, load_root_key(_key(anna)))[1] == 1
    with pytest.raises(RepoError, match="already carries"):
        sign_root(prepared, load_root_key(_key(anna)))
    with pytest.raises(RepoError, match=r"1 valid signature.*current root's keys and needs 2"):
        publish_root(repo, load_prepared(prepared))
    assert repo.root().version == 1

    sign_root(prepared, load_root_key(_key(bernd), PASSPHRASE))
    published = publish_root(repo, load_prepared(prepared))
    assert (published.version, published.roles[Root.type].threshold) == (2, 1)
    with pytest.raises(RepoError, match="only version 3 can follow"):
        publish_root(repo, load_prepared(prepared))
