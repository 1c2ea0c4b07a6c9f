"""The node's configuration client against the central authority's own TUF repository.

The contract of docs/global-configuration.md, checked end to end in one process: what
``gateway.central.repo`` publishes, the node's client accepts, including a root rotation
after the node bootstrapped from the old root.
"""

from __future__ import annotations

from collections.abc import Iterator
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
