"""The central authority as real processes: ``gateway central init`` and ``serve``.

python-tuf's own client (``tuf.ngclient.Updater``), bootstrapped from the anchor file,
is the judge of the published repository: if it accepts the metadata and the target,
any node will.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlmodel import Session, select
from tuf.api.exceptions import DownloadHTTPError
from tuf.api.metadata import Metadata, Root, Targets, Timestamp
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from gateway.central import db, registry
from gateway.central.errors import CentralCode, CentralError
from gateway.central.models import Member, Setting
from gateway.central.registration import auth_cert_document, client_document, sign_detached
from gateway.central.service import Central as CentralService
from gateway.central.service import InitOptions
from gateway.conf.anchor import ConfigurationAnchor, load_anchor
from gateway.conf.globalconf import TARGET_NAME, GlobalConf
from gateway.core.canonical import canonical_json
from gateway.core.ids import MemberId, NodeId
from gateway.keys.files import (
    is_encrypted_key_file,
    load_certificate,
    load_private_key,
    new_key_and_csr,
)
from gateway.pki.profiles import CertKind
from gateway.sandbox.netfiles import free_port
from gateway.sandbox.processes import START_TIMEOUT
from gateway.trust.ca_store import init_ca, issue_from_csr
from tests.pg import CENTRAL_BACKENDS, central_database

pytestmark = pytest.mark.integration

INSTANCE = "DE-NRW"
GATEWAY = [sys.executable, "-m", "gateway"]
SOEST = MemberId.parse("DE-NRW/GOV/05974040")
ISERLOHN = MemberId.parse("DE-NRW/GOV/05962024")


def _free_port() -> int:
    """A port for a central started later: below the ephemeral range, where no
    outgoing connection of another process can take it before the central binds it
    (the kernel's pick of a free port is in that range)."""
    return free_port()


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
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )


@pytest.fixture(scope="module", params=CENTRAL_BACKENDS)
def central(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Central]:
    """A served central, once with its registry in SQLite and once in PostgreSQL."""
    base = tmp_path_factory.mktemp("central")
    database_url = central_database(request)
    on_postgres = [] if database_url is None else ["--database-url", database_url]
    ca = base / "ca"
    ca.mkdir()
    init_ca(ca, "Test CA", datetime.now(UTC))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    out = gateway(
        "central", "init", "--dir", str(base / "c"), "--instance", INSTANCE,
        "--ca-cert", str(ca / "ca.pem"), "--ocsp-url", "http://127.0.0.1:8090/ocsp",
        "--root-keys", "2", "--root-threshold", "2", "--url", url, *on_postgres,
        "--insecure-plain-keys",
    )  # fmt: skip
    assert "root sha256" in out
    log = (base / "serve.log").open("w")
    proc = subprocess.Popen(
        [*GATEWAY, "central", "serve", "--dir", str(base / "c"), "--port", str(port),
         "--refresh-seconds", "1"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    token = (base / "c" / "admin.key").read_text().strip()
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

    def __init__(self, anchor: ConfigurationAnchor, where: Path) -> None:
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
    assert oct((central.dir / "admin.key").stat().st_mode & 0o777) == "0o600"
    assert not (central.dir / "admin.token").exists()
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
    (admin,) = [k for k in central.admin("GET", "/api-keys").json() if k["created_by"] == "init"]
    assert latest["actor"] == f"key:{admin['id']}:admin"
    assert latest["before"] == {"ocsp_freshness_seconds": "3600"}
    assert latest["after"] == {"ocsp_freshness_seconds": "1800"}
    assert any(e["action"] == "member.add" and e["object"] == str(SOEST) for e in entries)


def test_timestamp_is_resigned_on_schedule(central: Central) -> None:
    path = central.dir / "repo" / "metadata" / "timestamp.json"
    first = Metadata[Timestamp].from_bytes(path.read_bytes()).signed
    # Re-signed every second (--refresh-seconds 1): wait for the next version, not a
    # fixed time, within a bound a loaded machine still meets.
    deadline = time.monotonic() + 30
    second = first
    while second.version == first.version and time.monotonic() < deadline:
        time.sleep(0.1)
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


def _soest_with_its_gewerbeamt(central: Central) -> None:
    """What the approval test builds on: Soest as a member with its gewerbeamt. The
    admin test adds both when the module runs in order; run alone, the test adds them."""
    for path, body in (
        ("/members", {"id": str(SOEST), "name": "Stadt Soest"}),
        ("/subsystems", {"id": f"{SOEST}/gewerbeamt"}),
    ):
        r = central.admin("POST", path, body)
        assert r.status_code in (201, 409), r.text


def test_approve_adds_node_and_reject_shows_reason(central: Central, tmp_path: Path) -> None:
    _soest_with_its_gewerbeamt(central)
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
    secret = tmp_path / "key-passphrase"
    secret.write_text("Iserlohner-Tropfsteinhoehle\n")
    secret.chmod(0o600)
    passphrase = ("--passphrase-file", str(secret))
    gateway("join", "keys", "--dir", str(city), "--node-id", node, "--name", "Stadt Iserlohn",
            *passphrase)  # fmt: skip
    assert (city / "auth.key").stat().st_mode & 0o077 == 0
    assert is_encrypted_key_file(city / "auth.key") and is_encrypted_key_file(city / "sign.key")
    gateway("pki", "issue", "--ca", str(central.ca), "--csr", str(city / "auth.csr"),
            "--kind", "auth", "--out", str(tmp_path / "auth.pem"), "--ip", "127.0.0.1")  # fmt: skip
    gateway("pki", "issue", "--ca", str(central.ca), "--csr", str(city / "sign.csr"),
            "--kind", "sign", "--out", str(tmp_path / "sign.pem"))  # fmt: skip
    bad = subprocess.run(
        [*GATEWAY, "join", "import", "--dir", str(city), "--auth-cert", str(tmp_path / "sign.pem"),
         "--sign-cert", str(tmp_path / "auth.pem"), *passphrase],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "is not for this directory" in bad.stderr
    gateway("join", "import", "--dir", str(city), "--auth-cert", str(tmp_path / "auth.pem"),
            "--sign-cert", str(tmp_path / "sign.pem"), *passphrase)  # fmt: skip
    out = gateway("join", "register", "--dir", str(city), "--central", central.url,
                  "--address", "https://127.0.0.1:5598", "--subsystem", "buergerbuero",
                  *passphrase)  # fmt: skip
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


def test_a_replayed_registration_is_answered_with_the_existing_request(
    central: Central, tmp_path: Path
) -> None:
    node = NodeId.parse(f"{ISERLOHN}/replay1")
    newcomer = party(central.ca, tmp_path / "replay", node)
    url = f"{central.url}/registration/v1/auth-cert"
    body = auth_body(newcomer)

    def pending_for_node() -> list[dict[str, Any]]:
        listed = central.admin("GET", "/requests?status=pending").json()
        return [r for r in listed if r["node_id"] == str(node)]

    first = httpx.post(url, json=body, timeout=10)
    assert first.status_code == 202, first.text
    replayed = httpx.post(url, json=body, timeout=10)  # the very same signed document
    assert replayed.status_code == 202, replayed.text
    assert replayed.json() == first.json()
    # A fresh document asking for the same node, certificate and address while the first
    # is pending is the same request, too.
    again = httpx.post(url, json=auth_body(newcomer), timeout=10)
    assert again.json()["id"] == first.json()["id"]
    assert [r["id"] for r in pending_for_node()] == [first.json()["id"]]

    approved = central.admin("POST", f"/requests/{first.json()['id']}/approve")
    assert approved.status_code == 200, approved.text
    serial = central.admin("GET", "/configuration").json()["serial"]
    after = httpx.post(url, json=body, timeout=10)  # replayed after the decision
    assert after.json()["id"] == first.json()["id"]
    assert after.json()["status"] == "approved"
    assert pending_for_node() == []
    assert central.admin("GET", "/configuration").json()["serial"] == serial

    # Client registrations likewise.
    doc = client_document(INSTANCE, node, ISERLOHN.subsystem("replayamt"), datetime.now(UTC))
    client_body = {
        "document": doc,
        "member_signature": sign_detached(
            canonical_json(doc), newcomer.sign_key, [newcomer.sign_cert]
        ),
    }
    client_url = f"{central.url}/registration/v1/client"
    one = httpx.post(client_url, json=client_body, timeout=10).json()
    two = httpx.post(client_url, json=client_body, timeout=10).json()
    assert one == two and one["status"] == "pending"
    assert [r["id"] for r in pending_for_node()] == [one["id"]]


# ---------------------------------------------------------------- in process


@pytest.fixture(params=CENTRAL_BACKENDS)
def local(request: pytest.FixtureRequest, tmp_path: Path) -> LocalCentral:
    """A central directory used in process (no server), to inject faults; its registry
    in SQLite, then in PostgreSQL."""
    database_url = central_database(request)
    ca = tmp_path / "ca"
    init_ca(ca, "Test CA", datetime.now(UTC))
    options = InitOptions(
        instance=INSTANCE,
        ca_cert=load_certificate(ca / "ca.pem"),
        ocsp_urls=("http://127.0.0.1:8090/ocsp",),
        public_url="http://127.0.0.1:1",
        development=True,
    )
    return LocalCentral.init(tmp_path / "c", options, database_url)


class LocalCentral(CentralService):
    """``Central`` with a publication that can be made to fail, and that records what
    the database (read through a connection of its own) held when publishing began."""

    fail_with: Exception | None = None
    seen_at_publish: list[tuple[int, set[str]]]

    def publish_document(self, conf: GlobalConf) -> None:
        engine = db.open_engine(self.location)
        try:
            with Session(engine) as other:
                serial = int(other.get(Setting, "serial").value)  # type: ignore[union-attr]
                members = {m.id for m in other.exec(select(Member))}
        finally:
            engine.dispose()
        if not hasattr(self, "seen_at_publish"):
            self.seen_at_publish = []
        self.seen_at_publish.append((serial, members))
        if self.fail_with is not None:
            raise self.fail_with
        super().publish_document(conf)


def test_the_database_commits_before_the_configuration_is_published(
    local: LocalCentral,
) -> None:
    local.seen_at_publish = []
    before = local.current().serial
    registry.add_member(local, "tester", str(SOEST), "Stadt Soest")
    # When signing began, the change and its serial were already durable.
    assert local.seen_at_publish == [(before + 1, {str(SOEST)})]
    assert local.current().serial == before + 1
    assert {str(m.id) for m in local.current().members} == {str(SOEST)}


def test_a_failed_publication_undoes_the_change(local: LocalCentral) -> None:
    registry.add_member(local, "tester", str(SOEST), "Stadt Soest")
    published = local.current()
    serial = int(local.setting("serial"))
    audit_before = len(local.audit(1000))
    local.fail_with = OSError(28, "No space left on device")
    with pytest.raises(CentralError) as failed:
        registry.add_member(local, "tester", str(ISERLOHN), "Stadt Iserlohn")
    assert failed.value.code == CentralCode.PUBLISH_FAILED
    assert "undone" in failed.value.message
    # The commit had happened (the publisher saw it), and was taken back.
    assert local.seen_at_publish[-1] == (serial + 1, {str(SOEST), str(ISERLOHN)})
    assert {m["id"] for m in registry.list_members(local)} == {str(SOEST)}
    assert int(local.setting("serial")) == serial
    assert local.current() == published
    trail = local.audit(1000)
    assert len(trail) == audit_before + 1  # the attempt's entry is gone, the failure stays
    assert trail[0]["action"] == "publish.failed"
    assert trail[0]["after"]["action"] == "member.add"
    # Deletions and updates are undone too.
    with pytest.raises(CentralError):
        registry.delete_member(local, "tester", str(SOEST))
    with pytest.raises(CentralError):
        registry.put_settings(local, "tester", {"ocsp_freshness_seconds": "60"})
    assert {m["id"] for m in registry.list_members(local)} == {str(SOEST)}
    assert local.setting("ocsp_freshness_seconds") == "3600"
    # Once publishing works again, repeating the call succeeds.
    local.fail_with = None
    registry.add_member(local, "tester", str(ISERLOHN), "Stadt Iserlohn")
    assert local.current().serial == serial + 1
    assert {str(m.id) for m in local.current().members} == {str(SOEST), str(ISERLOHN)}


def test_old_versions_are_pruned(local: LocalCentral) -> None:
    registry.put_settings(local, "tester", {"tuf_keep_versions": "3"})
    repo = local.repo()
    for code in range(6):
        registry.add_member(local, "tester", f"{INSTANCE}/GOV/0000000{code}", f"M {code}")
    targets_version = repo.targets().version
    snapshot_version = repo.snapshot().version

    def versions(role: str) -> list[int]:
        names = [p.name for p in repo.metadata_dir.glob(f"*.{role}.json")]
        return sorted(int(n.split(".")[0]) for n in names if n.split(".")[0].isdigit())

    assert versions("targets") == list(range(targets_version - 2, targets_version + 1))
    assert versions("snapshot") == list(range(snapshot_version - 2, snapshot_version + 1))
    assert versions("root") == [1]
    documents = sorted(p.name for p in repo.targets_dir.iterdir())
    assert len(documents) == 3
    # A client bootstrapping from the anchor still gets the current configuration...
    updater = Updater(
        str(_fresh(local.directory.parent / "client")),
        f"{local.repo().metadata_dir.as_uri()}/",
        str(_fresh(local.directory.parent / "client-targets")),
        f"{local.repo().targets_dir.as_uri()}/",
        bootstrap=json.dumps(local.repo().root_json()).encode(),
        fetcher=_FileFetcher(),
    )
    updater.refresh()
    info = updater.get_targetinfo(TARGET_NAME)
    assert info is not None
    conf = GlobalConf.from_bytes(Path(updater.download_target(info)).read_bytes())
    assert conf == local.current()
    # ...and the document of the oldest kept targets version is still there.
    oldest = Metadata[Targets].from_bytes(
        (repo.metadata_dir / f"{targets_version - 2}.targets.json").read_bytes()
    )
    digest = oldest.signed.targets[TARGET_NAME].hashes["sha256"]
    assert f"{digest}.{TARGET_NAME}" in documents


def _fresh(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


class _FileFetcher(FetcherInterface):
    """ngclient over ``file://`` URLs: the repository directory as a mirror would serve it."""

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = Path(urlsplit(url).path)
        if not path.exists():
            raise DownloadHTTPError(f"{path.name} not found", 404)
        return iter([path.read_bytes()])


# ---------------------------------------------------------------- restart


@pytest.mark.parametrize(
    "signed_ago",
    [pytest.param(700, id="expired"), pytest.param(300, id="due")],
)
def test_a_restarted_central_serves_a_fresh_timestamp_at_once(
    tmp_path: Path, signed_ago: int
) -> None:
    """A central stopped for longer than a scheduler period finds a timestamp that is
    expired (signed 700 s ago, lifetime 600 s) or due (300 s ago, period 200 s); its first
    answer after the restart is already a freshly signed one, which TUF's client takes."""
    ca = tmp_path / "ca"
    ca.mkdir()
    init_ca(ca, "Test CA", datetime.now(UTC))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    directory = tmp_path / "c"
    gateway(
        "central", "init", "--dir", str(directory), "--instance", INSTANCE,
        "--ca-cert", str(ca / "ca.pem"), "--ocsp-url", "http://127.0.0.1:8090/ocsp",
        "--url", url, "--insecure-plain-keys",
    )  # fmt: skip
    # The timestamp as the scheduler left it when the central stopped, signed_ago s ago.
    stopped = (datetime.now(UTC) - timedelta(seconds=signed_ago)).replace(microsecond=0)
    CentralService(directory, now=lambda: stopped).refresh()
    left = (
        Metadata[Timestamp]
        .from_bytes((directory / "repo" / "metadata" / "timestamp.json").read_bytes())
        .signed
    )
    assert left.expires == stopped + timedelta(seconds=600)

    started = datetime.now(UTC).replace(microsecond=0)  # TUF expiry has whole seconds
    with (tmp_path / "serve.log").open("w") as out:
        proc = subprocess.Popen(
            [*GATEWAY, "central", "serve", "--dir", str(directory), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                served = httpx.get(f"{url}/tuf/metadata/timestamp.json", timeout=1)
                served.raise_for_status()
                break
            except httpx.HTTPError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "central did not start"
                time.sleep(0.1)
        first = Metadata[Timestamp].from_bytes(served.content).signed
        assert first.version > left.version
        assert first.expires >= started + timedelta(seconds=600)
        conf = Client(load_anchor(directory / "anchor.json"), tmp_path / "node").fetch()
        assert conf.instance == INSTANCE
    finally:
        proc.terminate()
        proc.wait(timeout=10)
