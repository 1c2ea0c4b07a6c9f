"""Connection types and the registered information-system certificates, without sockets
(the TLS side is tests/integration/test_consumer_tls.py)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.conf.anchor import ConfigurationAnchor, save_anchor
from gateway.core.errors import Code, GatewayError
from gateway.core.ids import ClientId, parse_client
from gateway.keys.files import load_certificate, new_self_signed
from gateway.node.clientauth import (
    ClientCertError,
    ClientCertStore,
    ConnectionType,
    authenticate_client,
)
from gateway.node.config import ConfigError, load_config
from gateway.pki.keys import fingerprint_sha256
from tests.unit.test_node_config_source import GLOBALCONF, NODE

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
GEWERBEAMT = parse_client("DE-NRW/GOV/05974040/gewerbeamt")
ORDNUNGSAMT = parse_client("DE-NRW/GOV/05974040/ordnungsamt")


def _config(tmp_path: Path, extra: str = "") -> Path:
    root = {"signed": {"_type": "root"}, "signatures": []}
    save_anchor(
        tmp_path / "anchor.json", ConfigurationAnchor("DE-NRW", "http://x/m/", "http://x/t/", root)
    )
    path = tmp_path / "node.toml"
    path.write_text(NODE + extra + GLOBALCONF, "utf-8")
    return path


def test_a_subsystem_without_a_setting_is_https(tmp_path: Path) -> None:
    config = load_config(
        _config(
            tmp_path,
            '\n[[clients]]\nid = "DE-NRW/GOV/05974040/ordnungsamt"\nconnection_type = "http"\n',
        )
    )
    assert config.connection_type(GEWERBEAMT) is ConnectionType.HTTPS
    assert config.connection_type(ORDNUNGSAMT) is ConnectionType.HTTP
    assert config.serves_plain_http()
    assert config.node.client_certs == tmp_path.resolve() / "client-certs.json"


def test_unknown_connection_type_and_lone_internal_cert_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="connection_type"):
        load_config(
            _config(
                tmp_path, '\n[[clients]]\nid = "DE-NRW/GOV/05974040/a"\nconnection_type = "ssl"\n'
            )
        )
    lone = NODE.replace(
        'auth_key = "auth.key"', 'auth_key = "auth.key"\ninternal_tls_cert = "i.pem"'
    )
    (tmp_path / "lone").mkdir()
    path = _config(tmp_path / "lone")
    path.write_text(lone + GLOBALCONF, "utf-8")
    with pytest.raises(ConfigError, match="internal_tls_cert and internal_tls_key go together"):
        load_config(path)


def _cert(tmp_path: Path, name: str, start: datetime, days: int = 30) -> tuple[Path, bytes]:
    from cryptography.hazmat.primitives.serialization import Encoding

    path = tmp_path / f"{name}.pem"
    cert = new_self_signed(path, tmp_path / f"{name}.key", name, start, days=days, client=True)
    return path, cert.public_bytes(Encoding.DER)


def _refused(
    client: ClientId,
    connection: ConnectionType,
    *,
    tls: bool,
    peer_der: bytes | None,
    store: ClientCertStore,
    now: datetime = NOW,
) -> str:
    with pytest.raises(GatewayError) as refused:
        authenticate_client(client, connection, tls=tls, peer_der=peer_der, store=store, now=now)
    assert refused.value.code is Code.CLIENT_SSL_AUTHENTICATION_FAILED
    return refused.value.message


def test_each_connection_type(tmp_path: Path) -> None:
    store = ClientCertStore(tmp_path / "certs.json")
    path, der = _cert(tmp_path, "gw", NOW - timedelta(days=1))
    store.add(GEWERBEAMT, load_certificate(path))
    https, no_auth, http = ConnectionType.HTTPS, ConnectionType.HTTPS_NO_AUTH, ConnectionType.HTTP
    authenticate_client(GEWERBEAMT, https, tls=True, peer_der=der, store=store, now=NOW)
    authenticate_client(GEWERBEAMT, http, tls=False, peer_der=None, store=store, now=NOW)
    authenticate_client(GEWERBEAMT, no_auth, tls=True, peer_der=None, store=store, now=NOW)
    assert "plain HTTP" in _refused(GEWERBEAMT, no_auth, tls=False, peer_der=None, store=store)
    assert "plain HTTP" in _refused(GEWERBEAMT, https, tls=False, peer_der=der, store=store)
    assert "did not supply" in _refused(GEWERBEAMT, https, tls=True, peer_der=None, store=store)
    other = "not registered for client"
    assert other in _refused(ORDNUNGSAMT, https, tls=True, peer_der=der, store=store)
    _, stranger = _cert(tmp_path, "stranger", NOW)
    assert other in _refused(GEWERBEAMT, https, tls=True, peer_der=stranger, store=store)
    later = NOW + timedelta(days=60)
    assert "not valid now" in _refused(
        GEWERBEAMT, https, tls=True, peer_der=der, store=store, now=later
    )


def test_store_one_subsystem_per_certificate_and_changes_seen_by_readers(tmp_path: Path) -> None:
    file = tmp_path / "certs.json"
    writer, reader = ClientCertStore(file), ClientCertStore(file)
    one, _ = _cert(tmp_path, "one", NOW)
    two, _ = _cert(tmp_path, "two", NOW)
    first = writer.add(GEWERBEAMT, load_certificate(one))
    writer.add(GEWERBEAMT, load_certificate(two))
    with pytest.raises(ClientCertError, match="already registered"):
        writer.add(ORDNUNGSAMT, load_certificate(one))
    os.utime(file, ns=(1, 1))  # a change within the same clock tick is still seen
    assert reader.refresh()
    assert [e.sha256 for e in reader.entries(GEWERBEAMT)] == sorted(
        fingerprint_sha256(load_certificate(p)) for p in (one, two)
    )
    writer.remove(GEWERBEAMT, first.sha256)
    assert reader.refresh()
    assert reader.get(first.sha256) is None
    with pytest.raises(ClientCertError, match="no certificate"):
        writer.remove(GEWERBEAMT, first.sha256)
