"""The node's configuration client against the central authority's own TUF repository.

The contract of docs/global-configuration.md, checked end to end in one process: what
``gateway.central.repo`` publishes, the node's client accepts, including a root rotation
after the node bootstrapped from the old root.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.central.repo import KeyStore, TufRepository
from gateway.conf.anchor import ConfigurationAnchor
from gateway.conf.globalconf import TARGET_NAME, CaEntry, GlobalConf
from gateway.conf.tufclient import ConfigClient, GlobalConfSource
from gateway.conf.tufdev import serve_directory
from gateway.keys.files import load_certificate
from gateway.trust.ca_store import init_ca


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TufRepository, str]]:
    repo_dir = tmp_path / "repo"
    repo = TufRepository(repo_dir, KeyStore(tmp_path / "keys"))
    repo.initialise()
    repo_dir.mkdir(exist_ok=True)
    server = serve_directory(repo_dir)
    yield repo, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_client_follows_the_central_repository(
    served: tuple[TufRepository, str], tmp_path: Path
) -> None:
    repo, url = served
    init_ca(tmp_path / "ca", "Test CA", datetime.now(UTC).replace(microsecond=0))
    ca = CaEntry(load_certificate(tmp_path / "ca" / "ca.pem"), ("http://127.0.0.1:1/ocsp",))

    def doc(serial: int) -> bytes:
        return GlobalConf("DE-NRW", serial, "2026-11-24T00:00:00Z", cas=(ca,)).to_bytes()

    repo.publish(TARGET_NAME, doc(1))
    anchor = ConfigurationAnchor("DE-NRW", f"{url}/metadata/", f"{url}/targets/", repo.root_json(1))
    source = GlobalConfSource(ConfigClient(anchor, tmp_path / "state"), lambda c: c.directory())
    assert source.bootstrap().conf.serial == 1
    repo.rotate_root(add=1)  # a new root version, signed by old and new keys
    repo.publish(TARGET_NAME, doc(2))
    candidate = source.refresh_blocking(datetime.now(UTC))
    assert candidate is not None and candidate.conf.serial == 2, source.last_failure


def test_an_older_document_is_not_published_over_a_newer_one(tmp_path: Path) -> None:
    """Two writers that committed serials 2 and 3 may publish in the other order; the
    repository keeps serial 3 out (it holds serial 2's change), and says so."""
    repo = TufRepository(tmp_path / "repo", KeyStore(tmp_path / "keys"))
    repo.initialise()

    def doc(serial: int) -> bytes:
        return GlobalConf("DE-NRW", serial, "2026-11-24T00:00:00Z").to_bytes()

    def newer(serial: int) -> Callable[[bytes], bool]:
        return lambda current: int(json.loads(current)["serial"]) < serial

    assert repo.publish(TARGET_NAME, doc(1), supersedes=newer(1))  # nothing out yet
    assert repo.publish(TARGET_NAME, doc(3), supersedes=newer(3))
    version = repo.targets().version
    assert not repo.publish(TARGET_NAME, doc(2), supersedes=newer(2))
    assert repo.targets().version == version
    digest = repo.targets().targets[TARGET_NAME].hashes["sha256"]
    out = (repo.targets_dir / f"{digest}.{TARGET_NAME}").read_bytes()
    assert json.loads(out)["serial"] == 3
