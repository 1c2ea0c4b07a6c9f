"""The central's pure parts: anchor files, registration proofs, the TUF repository on disk.

The repository is checked with python-tuf's own verification (``verify_delegate``) and a
clock passed in, so expiry scheduling is tested without waiting.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

from gateway.central.errors import CentralError
from gateway.central.registration import (
    auth_cert_document,
    client_document,
    sign_detached,
    verify_auth_cert_request,
    verify_client_request,
)
from gateway.central.repo import Expiry, KeyStore, RepoError, TufRepository
from gateway.conf.anchor import (
    ConfigurationAnchor,
    ConfigurationAnchorError,
    load_anchor,
    root_fingerprint,
    save_anchor,
)
from gateway.core.canonical import canonical_json
from gateway.core.ids import MemberId, NodeId
from gateway.keys.files import load_certificate, load_private_key, new_key_and_csr
from gateway.pki.profiles import CertKind
from gateway.trust.ca_store import init_ca, issue_from_csr

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
NODE = NodeId.parse("DE-NRW/GOV/05962024/ss1")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _repo(tmp_path: Path, clock: Clock, **kw: Any) -> TufRepository:
    repo = TufRepository(tmp_path / "repo", KeyStore(tmp_path / "keys"), Expiry(), clock)
    repo.initialise(**kw)
    repo.publish("globalconf.json", b"{}")
    return repo


def test_repository_signs_with_tuf_thresholds(tmp_path: Path) -> None:
    repo = _repo(tmp_path, Clock(), root_keys=3, root_threshold=2)
    root = repo.root()
    assert root.consistent_snapshot
    assert root.roles["root"].threshold == 2
    for role in (Targets.type, Snapshot.type, Timestamp.type):
        md = Metadata.from_bytes((repo.metadata_dir / f"{role}.json").read_bytes())
        root.verify_delegate(role, md.signed_bytes, md.signatures)
    digest = repo.targets().targets["globalconf.json"].hashes["sha256"]
    assert (repo.targets_dir / f"{digest}.globalconf.json").read_bytes() == b"{}"
    assert sorted(p.name for p in repo.metadata_dir.glob("*.root.json")) == ["1.root.json"]


def test_refresh_resigns_what_is_due(tmp_path: Path) -> None:
    clock = Clock()
    repo = _repo(tmp_path, clock)
    targets_v, snapshot_v = repo.targets().version, repo.snapshot().version
    clock.now = NOW + timedelta(minutes=5)
    repo.refresh()
    assert repo.timestamp().expires == clock.now + timedelta(seconds=600)
    assert (repo.targets().version, repo.snapshot().version) == (targets_v, snapshot_v)
    clock.now = NOW + timedelta(hours=13)  # past half the snapshot's day
    repo.refresh()
    assert repo.snapshot().version == snapshot_v + 1
    assert repo.targets().version == targets_v
    clock.now = NOW + timedelta(days=4)  # past half the targets' week
    repo.refresh()
    assert repo.targets().version == targets_v + 1
    assert repo.timestamp().snapshot_meta.version == repo.snapshot().version


def test_root_rotation_needs_old_and_new_threshold(tmp_path: Path) -> None:
    repo = _repo(tmp_path, Clock(), root_keys=2, root_threshold=2)
    old = repo.root()
    new = repo.rotate_root(add=1, threshold=3)
    md = Metadata[Root].from_bytes((repo.metadata_dir / "2.root.json").read_bytes())
    old.verify_delegate("root", md.signed_bytes, md.signatures)
    new.verify_delegate("root", md.signed_bytes, md.signatures)
    # Without the old keys, the new root does not satisfy the old root's threshold.
    for keyid in old.roles["root"].keyids:
        (tmp_path / "keys" / f"{keyid}.pem").unlink()
    with pytest.raises(RepoError, match=r"root was signed by .* keys.*root prepare"):
        repo.rotate_root(threshold=2)
    with pytest.raises(RepoError, match="impossible"):
        repo.rotate_root(threshold=9)
    assert repo.root().version == 2


def test_repository_refuses_a_second_initialise(tmp_path: Path) -> None:
    repo = _repo(tmp_path, Clock())
    with pytest.raises(RepoError, match="already"):
        repo.initialise()


def test_anchor_round_trip_and_fingerprint(tmp_path: Path) -> None:
    repo = _repo(tmp_path, Clock())
    anchor = ConfigurationAnchor(
        "DE-NRW", "http://c/tuf/metadata", "http://c/tuf/targets/", repo.root_json()
    )
    save_anchor(tmp_path / "anchor.json", anchor)
    loaded = load_anchor(tmp_path / "anchor.json")
    assert loaded.metadata_url == "http://c/tuf/metadata/"
    assert loaded.fingerprint() == root_fingerprint(json.loads(loaded.root_bytes()))
    Metadata[Root].from_bytes(loaded.root_bytes())  # TUF accepts the bootstrap bytes
    for broken in ({}, {**anchor.to_json(), "root": {"signed": {"_type": "targets"}}}):
        (tmp_path / "bad.json").write_text(json.dumps(broken))
        with pytest.raises(ConfigurationAnchorError):
            load_anchor(tmp_path / "bad.json")


# --- registration proofs -------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("pki")
    out: dict[str, Any] = {}
    for ca_name in ("ca", "rogue"):
        ca = base / ca_name
        ca.mkdir()
        init_ca(ca, f"{ca_name} CA", NOW - timedelta(days=1))
        d = base / f"{ca_name}-party"
        d.mkdir()
        new_key_and_csr(CertKind.AUTH, NODE, d / "auth.key", d / "auth.csr")
        new_key_and_csr(CertKind.SIGN, NODE.owner, d / "sign.key", d / "sign.csr")
        issue_from_csr(ca, d / "auth.csr", CertKind.AUTH, d / "auth.pem", NOW - timedelta(days=1))
        issue_from_csr(ca, d / "sign.csr", CertKind.SIGN, d / "sign.pem", NOW - timedelta(days=1))
        out[ca_name] = load_certificate(ca / "ca.pem")
        out[f"{ca_name}-auth"] = (
            load_private_key(d / "auth.key"),
            load_certificate(d / "auth.pem"),
        )
        out[f"{ca_name}-sign"] = (
            load_private_key(d / "sign.key"),
            load_certificate(d / "sign.pem"),
        )
    return out


def _auth(pki: dict[str, Any], who: str = "ca", at: datetime = NOW) -> tuple[Any, str, str]:
    (akey, acert), (skey, scert) = pki[f"{who}-auth"], pki[f"{who}-sign"]
    doc = auth_cert_document("DE-NRW", NODE, "https://n:1", acert, at)
    payload = canonical_json(doc)
    return doc, sign_detached(payload, akey, [acert]), sign_detached(payload, skey, [scert])


def test_auth_cert_registration_verifies(pki: dict[str, Any]) -> None:
    req = verify_auth_cert_request(*_auth(pki), "DE-NRW", [pki["ca"]], NOW)
    assert req.node_id == NODE
    assert req.member == NODE.owner


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda d, a, m: (d, a, a), "registration.owner_mismatch"),  # auth cert as member
        (lambda d, a, m: (d, m, m), "registration.bad_signature"),  # not the registered key
        (lambda d, a, m: ({**d, "address": "https://x:2"}, a, m), "registration.bad_signature"),
        (lambda d, a, m: ({**d, "instance": "EE"}, a, m), "registration.owner_mismatch"),
        (lambda d, a, m: (d, a + "x", m), "registration.malformed"),
        (lambda d, a, m: (d, "a.b.c", m), "registration.malformed"),
        (lambda d, a, m: ({**d, "extra": "1"}, a, m), "registration.malformed"),
    ],
)
def test_auth_cert_registration_refusals(pki: dict[str, Any], mutate: Any, code: str) -> None:
    with pytest.raises(CentralError) as err:
        doc, auth, member = mutate(*_auth(pki))
        verify_auth_cert_request(doc, auth, member, "DE-NRW", [pki["ca"]], NOW)
    assert err.value.code.value == code


def test_untrusted_ca_and_stale_requests_are_refused(pki: dict[str, Any]) -> None:
    with pytest.raises(CentralError) as err:
        verify_auth_cert_request(*_auth(pki, "rogue"), "DE-NRW", [pki["ca"]], NOW)
    assert err.value.code.value == "registration.untrusted_certificate"
    old = _auth(pki, at=NOW - timedelta(hours=2))
    with pytest.raises(CentralError, match="an hour"):
        verify_auth_cert_request(*old, "DE-NRW", [pki["ca"]], NOW)


def test_client_registration_must_be_signed_by_its_member(pki: dict[str, Any]) -> None:
    skey, scert = pki["ca-sign"]
    mine = client_document("DE-NRW", NODE, NODE.owner.subsystem("buergerbuero"), NOW)
    req = verify_client_request(
        mine, sign_detached(canonical_json(mine), skey, [scert]), "DE-NRW", [pki["ca"]], NOW
    )
    assert str(req.client_id) == "DE-NRW/GOV/05962024/buergerbuero"
    other = MemberId.parse("DE-NRW/GOV/05974040").subsystem("gewerbeamt")
    theirs = client_document("DE-NRW", NODE, other, NOW)
    with pytest.raises(CentralError, match="belongs to"):
        verify_client_request(
            theirs, sign_detached(canonical_json(theirs), skey, [scert]), "DE-NRW", [pki["ca"]], NOW
        )


@pytest.mark.parametrize("module", ["registration", "repo", "errors"])
def test_pure_central_modules_import_no_web_or_database(module: str) -> None:
    """Documents, signatures and TUF signing stay testable without a server or a DB."""
    import ast

    import gateway.central

    source = Path(gateway.central.__file__).parent / f"{module}.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"fastapi", "starlette", "httpx", "sqlmodel", "sqlalchemy", "uvicorn"}
