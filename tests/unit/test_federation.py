"""Federated instances: the anchors in the global configuration, the union directory with
trust scoped per instance, and the node's TUF clients of the foreign configurations
(real TUF metadata served over HTTP on loopback, as in test_tufclient.py)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.conf.anchor import ConfigurationAnchor
from gateway.conf.directory import NodeInfo
from gateway.conf.federation import FederatedDirectory, Reach
from gateway.conf.globalconf import CaEntry, GlobalConf, GlobalConfError, MemberEntry, NodeEntry
from gateway.conf.tufdev import DevRepository
from gateway.core.errors import Code, GatewayError
from gateway.core.ids import GroupId, MemberId, NodeId
from gateway.keys.files import load_certificate
from gateway.messagelog import MessageLog, foreign_versions, open_store
from gateway.node.federation import CONSUMER, PROVIDER, Federation
from gateway.trust.ca_store import init_ca

DE, EE = "DE-NRW", "EE-TEST"
SOEST = MemberId(DE, "GOV", "05974040")
RIK = MemberId(EE, "GOV", "70000310")
FP_DE, FP_EE = "a" * 64, "b" * 64


def _ca(tmp: pytest.TempPathFactory, name: str) -> CaEntry:
    ca_dir = tmp.mktemp("ca") / "ca"
    init_ca(ca_dir, name, datetime.now(UTC).replace(microsecond=0))
    return CaEntry(load_certificate(ca_dir / "ca.pem"), (f"http://127.0.0.1:1/{name}",))


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CaEntry]:
    return {DE: _ca(tmp_path_factory, "CA DE"), EE: _ca(tmp_path_factory, "CA EE")}


def _conf(
    instance: str,
    member: MemberId,
    fp: str,
    ca: CaEntry,
    serial: int = 1,
    federated: tuple[ConfigurationAnchor, ...] = (),
) -> GlobalConf:
    sub = member.subsystem("sys")
    node = NodeEntry(
        NodeId(instance, "GOV", member.member_code, "ss1"), "https://h:1", (fp,), (sub,)
    )
    group = GroupId(instance, "partners")
    return GlobalConf(
        instance,
        serial,
        "2026-12-07T00:00:00Z",
        (MemberEntry(member, f"Member {member.member_code}", (sub,)),),
        (node,),
        {group: (sub,)},
        cas=(ca,),
        federated=federated,
    )


@pytest.fixture
def ee_repo(tmp_path: Path) -> Iterator[DevRepository]:
    repo = DevRepository(tmp_path / "ee-repo", EE)
    repo.serve()
    yield repo
    repo.shutdown()


def _federation(tmp_path: Path) -> Federation:
    return Federation(tmp_path / "state", 5.0, lambda: datetime.now(UTC))


# ---------------------------------------------------------------- the document


def test_the_federated_anchors_travel_in_the_signed_document(
    cas: dict[str, CaEntry], ee_repo: DevRepository
) -> None:
    plain = _conf(DE, SOEST, FP_DE, cas[DE])
    assert b"federated" not in plain.to_bytes()  # unfederated documents keep their bytes
    conf = _conf(DE, SOEST, FP_DE, cas[DE], federated=(ee_repo.anchor(),))
    parsed = GlobalConf.from_bytes(conf.to_bytes())
    assert parsed.federated == (ee_repo.anchor(),)
    assert parsed.to_bytes() == conf.to_bytes()


def test_an_instance_cannot_federate_with_itself_or_twice(
    cas: dict[str, CaEntry], ee_repo: DevRepository
) -> None:
    anchor = ee_repo.anchor()
    own = ConfigurationAnchor(DE, anchor.metadata_url, anchor.targets_url, anchor.root)
    with pytest.raises(GlobalConfError, match="itself"):
        GlobalConf.from_bytes(_conf(DE, SOEST, FP_DE, cas[DE], federated=(own,)).to_bytes())
    with pytest.raises(GlobalConfError, match="twice"):
        GlobalConf.from_bytes(
            _conf(DE, SOEST, FP_DE, cas[DE], federated=(anchor, anchor)).to_bytes()
        )


# ---------------------------------------------------------------- the union view


def test_the_union_directory_scopes_each_ca_to_its_own_instance(cas: dict[str, CaEntry]) -> None:
    own = _conf(DE, SOEST, FP_DE, cas[DE]).directory()
    foreign = _conf(EE, RIK, FP_EE, cas[EE]).directory()
    union = FederatedDirectory(own, {EE: foreign}, frozenset({EE}))
    assert set(union.trust_roots()) == {cas[DE].cert, cas[EE].cert}
    assert list(union.trust_roots_for(DE)) == [cas[DE].cert]
    assert list(union.trust_roots_for(EE)) == [cas[EE].cert]
    assert list(union.trust_roots_for("FI-TEST")) == []
    assert [n.id.instance for n in union.nodes_hosting(RIK.subsystem("sys"))] == [EE]
    assert union.is_known_client(RIK.subsystem("sys")) and union.is_known_client(SOEST)
    assert GroupId(EE, "partners") in union.groups_of(RIK.subsystem("sys"))
    assert union.ocsp_responders(cas[EE].cert) == cas[EE].ocsp_urls
    assert {m.id for m in union.members()} == {SOEST, RIK}
    assert (union.reach(DE), union.reach(EE), union.reach("FI-TEST")) == (
        Reach.OWN,
        Reach.FEDERATED,
        Reach.NOT_FEDERATED,
    )


def test_a_foreign_configuration_cannot_speak_for_the_own_instance(
    cas: dict[str, CaEntry],
) -> None:
    """A node of DE-NRW listed in EE-TEST's configuration is not believed: who is a node
    of an instance is that instance's configuration's word alone."""
    own = _conf(DE, SOEST, FP_DE, cas[DE]).directory()
    rogue = NodeId(DE, "GOV", "05974040", "ss9")
    foreign = _conf(EE, RIK, FP_EE, cas[EE]).directory()
    foreign._by_cert["c" * 64] = NodeInfo(rogue, "https://evil:1", frozenset(), frozenset())
    union = FederatedDirectory(own, {EE: foreign}, frozenset({EE}))
    assert union.node_by_auth_cert("c" * 64) is None
    assert union.node_by_auth_cert(FP_EE) is not None
    assert union.node(rogue) is None


def test_the_own_log_is_stamped_by_the_own_instances_tsas_only(cas: dict[str, CaEntry]) -> None:
    own = _conf(DE, SOEST, FP_DE, cas[DE]).directory()
    foreign = _conf(EE, RIK, FP_EE, cas[EE]).directory()
    union = FederatedDirectory(own, {EE: foreign}, frozenset({EE}))
    assert union.timestamping_services() is own.timestamping_services()
    assert union.parameters() is own.parameters()


# ---------------------------------------------------------------- the node's TUF clients


def test_a_federated_configuration_is_fetched_verified_and_followed(
    cas: dict[str, CaEntry], ee_repo: DevRepository, tmp_path: Path
) -> None:
    ee_repo.publish(_conf(EE, RIK, FP_EE, cas[EE]).to_bytes())
    own = _conf(DE, SOEST, FP_DE, cas[DE], federated=(ee_repo.anchor(),))
    federation = _federation(tmp_path)
    union = federation.view(own)
    assert union.reach(EE) is Reach.FEDERATED
    assert union.is_known_client(RIK.subsystem("sys"))
    assert (tmp_path / "state" / "federated" / EE / "globalconf.json").exists()
    federation.check(union, EE, datetime.now(UTC), CONSUMER)  # no refusal
    # A new foreign version is applied by the next sync; an unchanged one changes nothing.
    assert federation.sync(own, datetime.now(UTC)) is False
    ee_repo.publish(_conf(EE, RIK, FP_EE, cas[EE], serial=2).to_bytes())
    assert federation.sync(own, datetime.now(UTC)) is True
    assert federation.status(datetime.now(UTC))[EE]["serial"] == 2  # type: ignore[index]


def test_an_instance_not_federated_is_refused(
    cas: dict[str, CaEntry], ee_repo: DevRepository, tmp_path: Path
) -> None:
    ee_repo.publish(_conf(EE, RIK, FP_EE, cas[EE]).to_bytes())
    federation = _federation(tmp_path)
    union = federation.view(_conf(DE, SOEST, FP_DE, cas[DE]))
    for codes, code in ((CONSUMER, Code.CP_INSTANCE_NOT_FEDERATED),
                        (PROVIDER, Code.SP_INSTANCE_NOT_FEDERATED)):  # fmt: skip
        with pytest.raises(GatewayError) as refused:
            federation.check(union, EE, datetime.now(UTC), codes)
        assert refused.value.code is code
    assert not union.is_known_client(RIK.subsystem("sys"))


def test_federation_ends_when_the_anchor_is_removed(
    cas: dict[str, CaEntry], ee_repo: DevRepository, tmp_path: Path
) -> None:
    ee_repo.publish(_conf(EE, RIK, FP_EE, cas[EE]).to_bytes())
    federation = _federation(tmp_path)
    assert federation.view(_conf(DE, SOEST, FP_DE, cas[DE], federated=(ee_repo.anchor(),)))
    union = federation.view(_conf(DE, SOEST, FP_DE, cas[DE], serial=2))
    assert union.reach(EE) is Reach.NOT_FEDERATED
    assert union.nodes_hosting(RIK.subsystem("sys")) == ()


def test_an_expired_foreign_configuration_stops_that_instance_only(
    cas: dict[str, CaEntry], ee_repo: DevRepository, tmp_path: Path
) -> None:
    ee_repo.publish(_conf(EE, RIK, FP_EE, cas[EE]).to_bytes(), expires_in=timedelta(hours=1))
    own = _conf(DE, SOEST, FP_DE, cas[DE], federated=(ee_repo.anchor(),))
    federation = _federation(tmp_path)
    union = federation.view(own)
    later = datetime.now(UTC) + timedelta(hours=2)
    federation.check(union, DE, later, CONSUMER)  # the own instance goes on
    for codes, code in ((CONSUMER, Code.CP_FEDERATED_CONF_OUTDATED),
                        (PROVIDER, Code.SP_FEDERATED_CONF_OUTDATED)):  # fmt: skip
        with pytest.raises(GatewayError, match="expired") as refused:
            federation.check(union, EE, later, codes)
        assert refused.value.code is code


def test_a_rolled_back_foreign_configuration_is_refused(
    cas: dict[str, CaEntry], ee_repo: DevRepository, tmp_path: Path
) -> None:
    ee_repo.publish(_conf(EE, RIK, FP_EE, cas[EE]).to_bytes(), expires_in=timedelta(hours=1))
    old = ee_repo.snapshot_files()
    own = _conf(DE, SOEST, FP_DE, cas[DE], federated=(ee_repo.anchor(),))
    federation = _federation(tmp_path)
    federation.view(own)
    ee_repo.publish(
        _conf(EE, RIK, FP_EE, cas[EE], serial=2).to_bytes(), expires_in=timedelta(hours=1)
    )
    assert federation.sync(own, datetime.now(UTC)) is True
    ee_repo.restore(old)  # an attacker (or a broken central) serves version 1 again
    assert federation.sync(own, datetime.now(UTC)) is False
    status = federation.status(datetime.now(UTC))[EE]
    assert status["serial"] == 2  # type: ignore[index]
    assert "BadVersionNumberError" in str(status["last_failure"])  # type: ignore[index]
    # Version 2 is kept until it expires; then EE-TEST alone is refused, naming the rollback.
    union, later = federation.view(own), datetime.now(UTC) + timedelta(hours=2)
    federation.check(union, DE, later, CONSUMER)
    for codes, code in ((CONSUMER, Code.CP_FEDERATED_CONF_OUTDATED),
                        (PROVIDER, Code.SP_FEDERATED_CONF_OUTDATED)):  # fmt: skip
        with pytest.raises(GatewayError, match="BadVersionNumberError") as refused:
            federation.check(union, EE, later, codes)
        assert refused.value.code is code


def test_a_federated_instance_never_verified_is_refused_as_unavailable(
    cas: dict[str, CaEntry], ee_repo: DevRepository, tmp_path: Path
) -> None:
    anchor = ee_repo.anchor()  # nothing published: the repository names no configuration
    own = _conf(DE, SOEST, FP_DE, cas[DE], federated=(anchor,))
    federation = _federation(tmp_path)
    union = federation.view(own)
    assert union.reach(EE) is Reach.UNAVAILABLE
    with pytest.raises(GatewayError, match="no verified configuration") as refused:
        federation.check(union, EE, datetime.now(UTC), CONSUMER)
    assert refused.value.code is Code.CP_FEDERATED_CONF_OUTDATED
    # Once the instance publishes, the next sync picks it up.
    ee_repo.publish(_conf(EE, RIK, FP_EE, cas[EE]).to_bytes())
    assert federation.sync(own, datetime.now(UTC)) is True
    assert federation.view(own).reach(EE) is Reach.FEDERATED


# ---------------------------------------------------------------- the log's history


def test_the_log_keeps_each_foreign_version_once_per_instance(
    cas: dict[str, CaEntry], ee_repo: DevRepository, tmp_path: Path, log_location: Path | str
) -> None:
    """What the node records before it acts on a foreign version: the instance, serial,
    expiry, root fingerprint and signed files; an unchanged version adds no row, and the
    own history (what audit bundles carry) stays the own instance's alone."""
    ee_repo.publish(_conf(EE, RIK, FP_EE, cas[EE]).to_bytes(), expires_in=timedelta(hours=1))
    own = _conf(DE, SOEST, FP_DE, cas[DE], federated=(ee_repo.anchor(),))
    federation = _federation(tmp_path)
    federation.view(own)
    [held] = federation.held()
    assert (held.instance, held.serial) == (EE, 1)
    assert held.root_sha256 == ee_repo.anchor().fingerprint()
    expires = datetime.fromisoformat(held.expires)
    assert datetime.now(UTC) < expires <= datetime.now(UTC) + timedelta(hours=1)

    async def scenario() -> None:
        async with MessageLog(log_location, clock=lambda: datetime.now(UTC)) as log:
            await federation.record(log, "2026-12-07T10:00:00.000Z")
            await federation.record(log, "2026-12-07T10:01:00.000Z")  # unchanged
            ee_repo.publish(_conf(EE, RIK, FP_EE, cas[EE], serial=2).to_bytes())
            assert federation.sync(own, datetime.now(UTC)) is True
            await federation.record(log, "2026-12-07T10:02:00.000Z")

    asyncio.run(scenario())
    rows = foreign_versions(log_location)
    assert [(r.version.instance, r.version.serial, r.applied_at) for r in rows] == [
        (EE, 1, "2026-12-07T10:00:00.000Z"),
        (EE, 2, "2026-12-07T10:02:00.000Z"),
    ]
    assert rows[0].version == held
    [second] = federation.held()
    assert rows[1].version == second
    document = dict(second.files)["globalconf.json"]
    assert rows[1].document_sha256 == hashlib.sha256(document).hexdigest()
    assert open_store(log_location).configuration_versions() == []
