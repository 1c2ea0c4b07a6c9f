"""The node's configuration client against a real TUF repository served over HTTP.

Every attack is produced with genuine TUF metadata (``gateway.conf.tufdev``) and refused by
python-tuf's client; what is tested here is the node's side: the old configuration stays,
the failure is reported, nothing half-applied is persisted, a start without the central
authority uses the cache only while its metadata still names the persisted document.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_errors

from gateway.conf.directory import StaticDirectory
from gateway.conf.globalconf import CaEntry, GlobalConf, MemberEntry
from gateway.conf.tufclient import (
    ConfigClient,
    DeadlineFetcher,
    GlobalConfSource,
    GlobalConfUnavailable,
)
from gateway.conf.tufdev import DevRepository
from gateway.core.ids import MemberId
from gateway.keys.files import load_certificate
from gateway.trust.ca_store import init_ca

INSTANCE = "DE-NRW"


@pytest.fixture(scope="module")
def ca_cert(tmp_path_factory: pytest.TempPathFactory) -> CaEntry:
    ca_dir = tmp_path_factory.mktemp("ca") / "ca"
    init_ca(ca_dir, "Test CA", datetime.now(UTC).replace(microsecond=0))
    return CaEntry(load_certificate(ca_dir / "ca.pem"), ("http://127.0.0.1:1/ocsp",))


MakeDoc = Callable[[int], bytes]


@pytest.fixture
def make_doc(ca_cert: CaEntry) -> MakeDoc:
    def make(serial: int) -> bytes:
        member = MemberEntry(MemberId(INSTANCE, "GOV", f"{serial:08d}"), f"Member {serial}")
        conf = GlobalConf(INSTANCE, serial, "2026-11-24T00:00:00Z", (member,), cas=(ca_cert,))
        return conf.to_bytes()

    return make


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[DevRepository]:
    repository = DevRepository(tmp_path / "repo", INSTANCE)
    repository.serve()
    yield repository
    repository.shutdown()


def _source(repo: DevRepository, state: Path) -> GlobalConfSource[StaticDirectory]:
    return GlobalConfSource(ConfigClient(repo.anchor(), state), lambda conf: conf.directory())


def _now() -> datetime:
    return datetime.now(UTC)


def test_bootstrap_applies_and_persists(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    repo.publish(make_doc(1))
    source = _source(repo, tmp_path / "state")
    current = source.bootstrap()
    assert current.conf.serial == 1
    assert isinstance(current.state, StaticDirectory)
    assert (tmp_path / "state" / "globalconf.json").read_bytes() == make_doc(1)
    assert source.outdated(_now()) is None
    assert current.valid_until > _now()


def test_refresh_picks_up_a_new_version(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    repo.publish(make_doc(1))
    source = _source(repo, tmp_path / "state")
    source.bootstrap()
    assert source.refresh_blocking(_now()) is None  # unchanged: nothing to install
    repo.publish(make_doc(2))
    candidate = source.refresh_blocking(_now())
    assert candidate is not None and candidate.conf.serial == 2
    assert source.current.conf.serial == 1  # prepared, not yet installed
    source.install(candidate)
    assert source.current.conf.serial == 2
    assert (tmp_path / "state" / "globalconf.json").read_bytes() == make_doc(2)


def test_failed_apply_keeps_the_old_configuration_and_file(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    def build(conf: GlobalConf) -> StaticDirectory:
        if conf.serial == 2:
            raise RuntimeError("crash while deriving the trust state")
        return conf.directory()

    repo.publish(make_doc(1))
    source = GlobalConfSource(ConfigClient(repo.anchor(), tmp_path / "state"), build)
    source.bootstrap()
    repo.publish(make_doc(2))
    assert source.refresh_blocking(_now()) is None
    assert source.current.conf.serial == 1
    assert (tmp_path / "state" / "globalconf.json").read_bytes() == make_doc(1)
    assert source.last_failure is not None and "crash while deriving" in source.last_failure
    repo.publish(make_doc(3))  # the next good version goes through
    candidate = source.refresh_blocking(_now())
    assert candidate is not None and candidate.conf.serial == 3
    assert source.last_failure is None


def test_invalid_document_is_refused(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    repo.publish(make_doc(1))
    source = _source(repo, tmp_path / "state")
    source.bootstrap()
    repo.publish(b'{"format":"something else"}')
    assert source.refresh_blocking(_now()) is None
    assert source.current.conf.serial == 1
    assert source.last_failure is not None and "GlobalConfError" in source.last_failure


def test_expiry_makes_the_configuration_outdated(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    repo.publish(make_doc(1), expires_in=timedelta(hours=1))
    source = _source(repo, tmp_path / "state")
    current = source.bootstrap()
    assert current.valid_until <= _now() + timedelta(hours=1)
    assert source.outdated(current.valid_until - timedelta(seconds=1)) is None
    # The central authority now serves only expired metadata (it stopped re-signing):
    repo.bump_timestamp(expires_in=timedelta(seconds=-60))
    assert source.refresh_blocking(_now()) is None
    assert source.last_failure is not None and "ExpiredMetadataError" in source.last_failure
    reason = source.outdated(current.valid_until)
    assert reason is not None and "expired" in reason and "ExpiredMetadataError" in reason
    # Fresh metadata for the same document brings it back, without re-applying it.
    repo.publish(make_doc(1), expires_in=timedelta(hours=2))
    assert source.refresh_blocking(_now()) is None
    assert source.last_failure is None
    assert source.outdated(current.valid_until) is None


def test_forged_timestamp_is_rejected(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    repo.publish(make_doc(1))
    source = _source(repo, tmp_path / "state")
    source.bootstrap()
    repo.publish(make_doc(2), forge=True)
    assert source.refresh_blocking(_now()) is None
    assert source.current.conf.serial == 1
    assert source.last_failure is not None and "UnsignedMetadataError" in source.last_failure


def test_rollback_is_rejected(repo: DevRepository, make_doc: MakeDoc, tmp_path: Path) -> None:
    repo.publish(make_doc(1))
    old = repo.snapshot_files()
    repo.publish(make_doc(2))
    source = _source(repo, tmp_path / "state")
    assert source.bootstrap().conf.serial == 2
    repo.restore(old)  # an attacker serves the earlier, validly signed metadata
    assert source.refresh_blocking(_now()) is None
    assert source.current.conf.serial == 2
    assert source.last_failure is not None and "BadVersionNumberError" in source.last_failure


def test_freeze_with_a_stale_timestamp_is_rejected(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    repo.publish(make_doc(1))
    source = _source(repo, tmp_path / "state")
    source.bootstrap()
    # A newer version exists, but a mirror keeps serving a timestamp that has expired.
    repo.publish(make_doc(2), expires_in=timedelta(seconds=-1))
    assert source.refresh_blocking(_now()) is None
    assert source.current.conf.serial == 1
    assert source.last_failure is not None and "ExpiredMetadataError" in source.last_failure


def test_mixed_versions_are_rejected(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    repo.publish(make_doc(1))
    source = _source(repo, tmp_path / "state")
    source.bootstrap()
    old_targets = (repo.metadata_dir / "2.targets.json").read_bytes()
    repo.publish(make_doc(2))
    # The new snapshot names targets version 2; the mirror serves version 1 under that name.
    (repo.metadata_dir / "3.targets.json").write_bytes(old_targets)
    assert source.refresh_blocking(_now()) is None
    assert source.current.conf.serial == 1
    assert source.last_failure is not None and "BadVersionNumberError" in source.last_failure


def test_wrong_anchor_refuses_to_start(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    repo.publish(make_doc(1))
    other = DevRepository(tmp_path / "other", INSTANCE)  # another instance's root
    anchor = repo.anchor()
    wrong = type(anchor)(
        anchor.instance, anchor.metadata_url, anchor.targets_url, other.anchor().root
    )
    source = GlobalConfSource(ConfigClient(wrong, tmp_path / "state"), lambda c: c.directory())
    with pytest.raises(GlobalConfUnavailable, match="UnsignedMetadataError"):
        source.bootstrap()


def test_unreachable_without_cache_refuses_to_start(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    repo.publish(make_doc(1))
    anchor = repo.anchor()
    repo.shutdown()
    source = GlobalConfSource(ConfigClient(anchor, tmp_path / "state"), lambda c: c.directory())
    with pytest.raises(GlobalConfUnavailable, match="no configuration was ever applied"):
        source.bootstrap()


def test_a_repository_that_never_answers_is_given_up_on(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    """The first fetch blocks start-up: it must end, with a reason, not hang."""
    repo.publish(make_doc(1))
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the kernel; nothing is ever sent back
    try:
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        anchor = replace(repo.anchor(), metadata_url=f"{base}/m/", targets_url=f"{base}/t/")
        client = ConfigClient(anchor, tmp_path / "state", fetch_timeout=0.3)
        source = GlobalConfSource(client, lambda c: c.directory())
        with pytest.raises(GlobalConfUnavailable) as refused:
            source.bootstrap()
    finally:
        silent.close()
    message = str(refused.value)
    assert "SlowRetrievalError" in message, message
    assert "0.3 s" in message, message
    assert "no configuration was ever applied" in message


def test_the_fetch_deadline_covers_all_downloads_of_one_refresh() -> None:
    fetcher = DeadlineFetcher(0.0)
    with pytest.raises(tuf_errors.SlowRetrievalError, match="longer than 0 s"):
        fetcher.fetch("http://127.0.0.1:1/metadata/timestamp.json")


def test_restart_offline_uses_the_cache_while_it_names_the_document(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    repo.publish(make_doc(1))
    anchor = repo.anchor()
    _source(repo, tmp_path / "state").bootstrap()
    repo.shutdown()
    restarted = GlobalConfSource(ConfigClient(anchor, tmp_path / "state"), lambda c: c.directory())
    assert restarted.bootstrap().conf.serial == 1
    assert restarted.last_failure is not None  # says the repository was not reachable
    # A persisted document the cached metadata does not name is not used.
    (tmp_path / "state" / "globalconf.json").write_bytes(make_doc(7))
    again = GlobalConfSource(ConfigClient(anchor, tmp_path / "state"), lambda c: c.directory())
    with pytest.raises(GlobalConfUnavailable, match="not the configuration the cached metadata"):
        again.bootstrap()


def test_a_new_anchor_discards_the_old_cache(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    repo.publish(make_doc(1))
    _source(repo, tmp_path / "state").bootstrap()
    other = DevRepository(tmp_path / "other", INSTANCE)
    other.serve()
    try:
        other.publish(make_doc(5))
        assert _source(other, tmp_path / "state").bootstrap().conf.serial == 5
    finally:
        other.shutdown()


def test_configuration_of_another_instance_is_refused(
    repo: DevRepository, ca_cert: CaEntry, tmp_path: Path
) -> None:
    repo.publish(GlobalConf("DE-BY", 1, "2026-11-24T00:00:00Z", cas=(ca_cert,)).to_bytes())
    with pytest.raises(GlobalConfUnavailable, match="instance DE-BY"):
        _source(repo, tmp_path / "state").bootstrap()


def test_a_crash_while_persisting_keeps_the_old_file_and_configuration(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.publish(make_doc(1))
    source = _source(repo, tmp_path / "state")
    source.bootstrap()
    repo.publish(make_doc(2))

    def crash(path: Path, target: Path) -> None:
        raise OSError("disk gone between fsync and rename")

    monkeypatch.setattr("gateway.conf.tufclient.os.replace", crash)
    assert source.refresh_blocking(_now()) is None
    monkeypatch.undo()
    assert source.current.conf.serial == 1
    assert (tmp_path / "state" / "globalconf.json").read_bytes() == make_doc(1)
    assert source.last_failure is not None and "disk gone" in source.last_failure


def test_a_refused_connection_is_reported_as_refused_not_slow(
    repo: DevRepository, make_doc: MakeDoc, tmp_path: Path
) -> None:
    """Nothing listens at the repository's address: the reason says so at once, and
    does not claim a timeout that never ran out."""
    repo.publish(make_doc(1))
    anchor = repo.anchor()
    repo.shutdown()
    client = ConfigClient(anchor, tmp_path / "state", fetch_timeout=30)
    source = GlobalConfSource(client, lambda c: c.directory())
    with pytest.raises(GlobalConfUnavailable) as refused:
        source.bootstrap()
    message = str(refused.value)
    assert "connection refused" in message, message
    assert anchor.metadata_url.rstrip("/") in message, message
    assert "SlowRetrievalError" not in message and "30 s" not in message, message
    assert "object at 0x" not in message and "HTTPConnection(" not in message, message
