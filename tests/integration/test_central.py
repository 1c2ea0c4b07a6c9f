"""The central authority as real processes: ``gateway central init`` and ``serve``.

python-tuf's own client (``tuf.ngclient.Updater``), bootstrapped from the anchor file,
is the judge of the published repository: if it accepts the metadata and the target,
any node will.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tuf.api.metadata import Metadata, Root, Timestamp
from tuf.ngclient import Updater

from gateway.central.registration import auth_cert_document, client_document, sign_detached
from gateway.conf.anchor import Anchor, load_anchor
from gateway.conf.globalconf import TARGET_NAME, GlobalConf
from gateway.core.canonical import canonical_json
from gateway.core.ids import MemberId, NodeId
from gateway.pki.files import init_ca, issue_from_csr, new_key_and_csr
from gateway.pki.keys import load_certificate, load_private_key
from gateway.pki.profiles import CertKind

pytestmark = pytest.mark.integration

INSTANCE = "DE-NRW"
GATEWAY = [sys.executable, "-m", "gateway"]
SOEST = MemberId.parse("DE-NRW/GOV/05974040")
ISERLOHN = MemberId.parse("DE-NRW/GOV/05962024")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def gateway(*args: str) -> str:
    result = subprocess.run(
        [*GATEWAY, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class Central:
    dir: Path
    url: str
    ca: Path
    token: str

    def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url}/admin/v1{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}", "X-Admin-User": "tester"},
            timeout=30,
        )


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    base = tmp_path_factory.mktemp("central")
    ca = base / "ca"
    ca.mkdir()
    init_ca(ca, "Test CA", datetime.now(UTC))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    out = gateway(
        "central", "init", "--dir", str(base / "c"), "--instance", INSTANCE,
        "--ca-cert", str(ca / "ca.pem"), "--ocsp-url", "http://127.0.0.1:8090/ocsp",
        "--root-keys", "2", "--root-threshold", "2", "--url", url,
    )  # fmt: skip
    assert "root sha256" in out
    log = (base / "serve.log").open("w")
    proc = subprocess.Popen(
        [*GATEWAY, "central", "serve", "--dir", str(base / "c"), "--port", str(port),
         "--refresh-seconds", "1"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    token = (base / "c" / "admin.token").read_text().strip()
    try:
        while True:
            try:
                httpx.get(f"{url}/openapi.json", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert proc.poll() is None, (base / "serve.log").read_text()
                assert time.monotonic() < deadline, "central did not start"
                time.sleep(0.1)
        yield Central(base / "c", url, ca, token)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


class Client:
    """A node's view: a metadata directory that persists, a fresh ``Updater`` per refresh.

    The anchor's root is used only on the first run, as a node does; later runs start
    from the root the client already trusts.
    """

    def __init__(self, anchor: Anchor, where: Path) -> None:
        self.anchor = anchor
        self.metadata = where / "metadata"
        self.targets = where / "targets"
        self.metadata.mkdir(parents=True, exist_ok=True)
        self.targets.mkdir(exist_ok=True)

    def fetch(self) -> GlobalConf:
        first = not (self.metadata / "root.json").exists()
        up = Updater(
            str(self.metadata),
            self.anchor.metadata_url,
            str(self.targets),
            self.anchor.targets_url,
            bootstrap=self.anchor.root_bytes() if first else None,
        )
        up.refresh()
        info = up.get_targetinfo(TARGET_NAME)
        assert info is not None
        return GlobalConf.from_bytes(Path(up.download_target(info)).read_bytes())


def test_anchor_bootstraps_updater(central: Central, tmp_path: Path) -> None:
    anchor = load_anchor(central.dir / "anchor.json")
    assert anchor.metadata_url == f"{central.url}/tuf/metadata/"
    conf = Client(anchor, tmp_path).fetch()
    assert conf.instance == INSTANCE
    assert conf.serial >= 1
    assert len(conf.cas) == 1
    assert oct((central.dir / "admin.token").stat().st_mode & 0o777) == "0o600"
    for key in (central.dir / "keys").iterdir():
        assert key.stat().st_mode & 0o077 == 0


def test_member_classes(central: Central) -> None:
    r = central.admin("POST", "/member-classes", {"code": "EDU", "description": "schools"})
    assert r.status_code == 201, r.text
    codes = {c["code"] for c in central.admin("GET", "/member-classes").json()}
    assert codes == {"GOV", "COM", "NGO", "EDU"}
    assert central.admin("POST", "/member-classes", {"code": "EDU"}).status_code == 409
    assert central.admin("POST", "/member-classes", {"code": "a b"}).status_code == 400


def test_admin_change_publishes_new_serial(central: Central, tmp_path: Path) -> None:
    up = Client(load_anchor(central.dir / "anchor.json"), tmp_path)
    before = up.fetch().serial
    r = central.admin("POST", "/members", {"id": str(SOEST), "name": "Stadt Soest"})
    assert r.status_code == 201, r.text
    r = central.admin("POST", "/subsystems", {"id": f"{SOEST}/gewerbeamt"})
    assert r.status_code == 201, r.text
    conf = up.fetch()
    assert conf.serial == before + 2
    assert [str(m.id) for m in conf.members] == [str(SOEST)]
    assert [s.subsystem_code for s in conf.members[0].subsystems] == ["gewerbeamt"]


def test_invalid_change_is_refused_and_not_published(central: Central) -> None:
    r = central.admin("POST", "/members", {"id": "XX/GOV/1", "name": "elsewhere"})
    assert r.status_code == 400
    assert r.json()["type"] == "central.invalid"
    r = central.admin("POST", "/subsystems", {"id": "DE-NRW/GOV/00000000/x"})
    assert r.status_code == 404
    assert r.json()["type"] == "central.not_found"


def test_admin_api_needs_the_token(central: Central) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": central.token}):
        r = httpx.get(f"{central.url}/admin/v1/members", headers=headers, timeout=10)
        assert r.status_code == 401
        assert r.json()["type"] == "central.unauthorized"
    r = httpx.post(
        f"{central.url}/admin/v1/members",
        json={"id": "DE-NRW/GOV/1", "name": "x"},
        headers={"Authorization": "Bearer wrong"},
        timeout=10,
    )
    assert r.status_code == 401
    assert "openapi" in httpx.get(f"{central.url}/openapi.json", timeout=10).json()


def test_audit_trail_records_who_what_before_after(central: Central) -> None:
    central.admin("PATCH", "/settings", {"ocsp_freshness_seconds": "1800"}).raise_for_status()
    entries = central.admin("GET", "/audit").json()
    latest = entries[0]
    assert latest["action"] == "settings.update"
    assert latest["actor"] == "admin:tester"
    assert latest["before"] == {"ocsp_freshness_seconds": "3600"}
    assert latest["after"] == {"ocsp_freshness_seconds": "1800"}
    assert any(e["action"] == "member.add" and e["object"] == str(SOEST) for e in entries)


def test_timestamp_is_resigned_on_schedule(central: Central) -> None:
    path = central.dir / "repo" / "metadata" / "timestamp.json"
    first = Metadata[Timestamp].from_bytes(path.read_bytes()).signed
    time.sleep(2.5)
    second = Metadata[Timestamp].from_bytes(path.read_bytes()).signed
    assert second.version > first.version
    assert second.expires > first.expires


def test_root_rotation_is_followed_by_the_client(central: Central, tmp_path: Path) -> None:
    anchor = load_anchor(central.dir / "anchor.json")
    up = Client(anchor, tmp_path)
    up.fetch()
    out = gateway("central", "rotate-root", "--dir", str(central.dir), "--add-key", "1",
                  "--threshold", "3")  # fmt: skip
    assert "threshold 3" in out
    # A client that trusted the old root walks to the new one...
    up.fetch()
    trusted = Metadata[Root].from_bytes((tmp_path / "metadata" / "root.json").read_bytes())
    assert trusted.signed.roles["root"].threshold == 3
    assert len(trusted.signed.roles["root"].keyids) == 3
    # ...and one bootstrapped from the original anchor gets there too.
    Client(anchor, tmp_path / "fresh").fetch()
    # Removing a key and lowering the threshold is signed by the old 3-of-3 as well.
    old_key = trusted.signed.roles["root"].keyids[0]
    gateway("central", "rotate-root", "--dir", str(central.dir), "--remove-key", old_key,
            "--threshold", "2")  # fmt: skip
    up.fetch()
    trusted = Metadata[Root].from_bytes((tmp_path / "metadata" / "root.json").read_bytes())
    assert old_key not in trusted.signed.roles["root"].keyids
    assert trusted.signed.version == anchor.root["signed"]["version"] + 2


# --- registration --------------------------------------------------------------------------


@dataclass
class Party:
    node: NodeId
    dir: Path

    @property
    def auth_key(self) -> Any:
        return load_private_key(self.dir / "auth.key")

    @property
    def sign_key(self) -> Any:
        return load_private_key(self.dir / "sign.key")

    @property
    def auth_cert(self) -> Any:
        return load_certificate(self.dir / "auth.pem")

    @property
    def sign_cert(self) -> Any:
        return load_certificate(self.dir / "sign.pem")


def party(ca: Path, where: Path, node: NodeId) -> Party:
    where.mkdir(parents=True)
    now = datetime.now(UTC)
    new_key_and_csr(CertKind.AUTH, node, where / "auth.key", where / "auth.csr")
    new_key_and_csr(CertKind.SIGN, node.owner, where / "sign.key", where / "sign.csr")
    issue_from_csr(ca, where / "auth.csr", CertKind.AUTH, where / "auth.pem", now,
                   ip_addresses=("127.0.0.1",))  # fmt: skip
    issue_from_csr(ca, where / "sign.csr", CertKind.SIGN, where / "sign.pem", now)
    return Party(node, where)


def auth_body(p: Party, *, auth_key: Any = None, sign: Party | None = None) -> dict[str, Any]:
    signer = sign or p
    doc = auth_cert_document(INSTANCE, p.node, "https://127.0.0.1:5599", p.auth_cert,
                             datetime.now(UTC))  # fmt: skip
    payload = canonical_json(doc)
    return {
        "document": doc,
        "auth_signature": sign_detached(payload, auth_key or p.auth_key, [p.auth_cert]),
        "member_signature": sign_detached(payload, signer.sign_key, [signer.sign_cert]),
    }


def test_registration_refuses_bad_proofs(central: Central, tmp_path: Path) -> None:
    soest = party(central.ca, tmp_path / "soest", NodeId.parse(f"{SOEST}/ss1"))
    other = party(central.ca, tmp_path / "other", NodeId.parse(f"{ISERLOHN}/ss1"))
    rogue_ca = tmp_path / "rogue-ca"
    rogue_ca.mkdir()
    init_ca(rogue_ca, "Rogue CA", datetime.now(UTC))
    rogue = party(rogue_ca, tmp_path / "rogue", NodeId.parse(f"{SOEST}/ss1"))
    url = f"{central.url}/registration/v1/auth-cert"

    def refused(body: dict[str, Any], code: str, words: str) -> None:
        r = httpx.post(url, json=body, timeout=10)
        assert r.status_code == 400, r.text
        assert r.json()["type"] == code
        assert words in r.json()["message"]

    # signed with another key than the registered certificate's
    refused(auth_body(soest, auth_key=other.auth_key), "registration.bad_signature", "auth")
    # the member signature comes from a member that does not own the node
    refused(auth_body(soest, sign=other), "registration.owner_mismatch", "owned by")
    # a certificate whose node id is not the one in the document
    body = auth_body(other)
    body["document"]["node_id"] = str(soest.node)
    payload = canonical_json(body["document"])
    body["auth_signature"] = sign_detached(payload, other.auth_key, [other.auth_cert])
    body["member_signature"] = sign_detached(payload, soest.sign_key, [soest.sign_cert])
    refused(body, "registration.owner_mismatch", "belongs to")
    # certificates from a CA the instance does not approve
    refused(auth_body(rogue), "registration.untrusted_certificate", "approved CA")


def test_approve_adds_node_and_reject_shows_reason(central: Central, tmp_path: Path) -> None:
    soest = party(central.ca, tmp_path / "soest", NodeId.parse(f"{SOEST}/ss1"))
    r = httpx.post(f"{central.url}/registration/v1/auth-cert", json=auth_body(soest), timeout=10)
    assert r.status_code == 202, r.text
    request_id = r.json()["id"]
    assert r.json()["status"] == "pending"
    out = gateway("central", "approve", "--dir", str(central.dir), request_id)
    assert json.loads(out)["status"] == "approved"
    conf = GlobalConf.from_json(central.admin("GET", "/configuration").json())
    (node,) = [n for n in conf.nodes if n.id == soest.node]
    assert node.address == "https://127.0.0.1:5599"
    assert str(SOEST) in {str(c) for c in node.clients}

    doc = client_document(INSTANCE, soest.node, SOEST.subsystem("ordnungsamt"),
                          datetime.now(UTC))  # fmt: skip
    body = {
        "document": doc,
        "member_signature": sign_detached(canonical_json(doc), soest.sign_key, [soest.sign_cert]),
    }
    r = httpx.post(f"{central.url}/registration/v1/client", json=body, timeout=10)
    assert r.status_code == 202, r.text
    client_request = r.json()["id"]
    gateway("central", "reject", "--dir", str(central.dir), client_request,
            "--reason", "no such office")  # fmt: skip
    status = httpx.get(f"{central.url}/registration/v1/requests/{client_request}", timeout=10)
    assert status.json()["status"] == "rejected"
    assert status.json()["reason"] == "no such office"
    r = central.admin("POST", f"/requests/{client_request}/approve")
    assert r.status_code == 409
    assert r.json()["type"] == "registration.not_pending"

    # With auto-approval on, a client of an existing member on an existing node is in.
    central.admin("PATCH", "/settings", {"auto_approve_clients": "true"}).raise_for_status()
    doc = client_document(INSTANCE, soest.node, SOEST.subsystem("gewerbeamt"), datetime.now(UTC))
    body = {
        "document": doc,
        "member_signature": sign_detached(canonical_json(doc), soest.sign_key, [soest.sign_cert]),
    }
    r = httpx.post(f"{central.url}/registration/v1/client", json=body, timeout=10)
    assert r.json()["status"] == "approved", r.text
    central.admin("PATCH", "/settings", {"auto_approve_clients": "false"}).raise_for_status()
    conf = GlobalConf.from_json(central.admin("GET", "/configuration").json())
    (node,) = [n for n in conf.nodes if n.id == soest.node]
    assert f"{SOEST}/gewerbeamt" in {str(c) for c in node.clients}
    assert any(e["actor"] == "auto-approval" for e in central.admin("GET", "/audit").json())

    # Disabling the node takes it out of the next configuration.
    r = central.admin("PATCH", f"/nodes/{soest.node}", {"enabled": False})
    assert r.status_code == 200, r.text
    conf = GlobalConf.from_json(central.admin("GET", "/configuration").json())
    assert soest.node not in {n.id for n in conf.nodes}


def test_partner_city_joins_with_the_cli(central: Central, tmp_path: Path) -> None:
    node = f"{ISERLOHN}/ss1"
    central.admin("POST", "/members", {"id": str(ISERLOHN), "name": "Stadt Iserlohn"})
    city = tmp_path / "iserlohn"
    gateway("join", "keys", "--dir", str(city), "--node-id", node, "--name", "Stadt Iserlohn")
    assert (city / "auth.key").stat().st_mode & 0o077 == 0
    gateway("pki", "issue", "--ca", str(central.ca), "--csr", str(city / "auth.csr"),
            "--kind", "auth", "--out", str(tmp_path / "auth.pem"), "--ip", "127.0.0.1")  # fmt: skip
    gateway("pki", "issue", "--ca", str(central.ca), "--csr", str(city / "sign.csr"),
            "--kind", "sign", "--out", str(tmp_path / "sign.pem"))  # fmt: skip
    bad = subprocess.run(
        [*GATEWAY, "join", "import", "--dir", str(city), "--auth-cert", str(tmp_path / "sign.pem"),
         "--sign-cert", str(tmp_path / "auth.pem")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "is not for this directory" in bad.stderr
    gateway("join", "import", "--dir", str(city), "--auth-cert", str(tmp_path / "auth.pem"),
            "--sign-cert", str(tmp_path / "sign.pem"))  # fmt: skip
    out = gateway("join", "register", "--dir", str(city), "--central", central.url,
                  "--address", "https://127.0.0.1:5598", "--subsystem", "buergerbuero")  # fmt: skip
    ids = [line.split()[1] for line in out.splitlines() if line.startswith("request ")]
    assert len(ids) == 2
    pending = gateway("central", "requests", "--dir", str(central.dir), "--status", "pending")
    assert all(i in pending for i in ids)
    for request_id in ids:  # the node first, then its client
        gateway("central", "approve", "--dir", str(central.dir), request_id)
    status = gateway("join", "status", "--dir", str(city), "--central", central.url)
    assert status.count(": approved") == 2
    conf = GlobalConf.from_json(central.admin("GET", "/configuration").json())
    (entry,) = [n for n in conf.nodes if str(n.id) == node]
    assert {str(c) for c in entry.clients} == {str(ISERLOHN), f"{ISERLOHN}/buergerbuero"}
