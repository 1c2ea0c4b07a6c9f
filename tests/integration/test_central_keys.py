"""The central authority's admin API keys and roles, against a real ``gateway central serve``.

Every admin endpoint is called with a key of every role: the permission table in
``gateway.core.roles`` decides which calls pass the key check, the documentation states
the same table, expired and revoked keys are refused, the audit trail names the key (a
header naming someone else is ignored), and the database never holds a key in clear.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.central import apikeys
from gateway.central.api import admin_permissions, create_app
from gateway.central.errors import CentralCode, CentralError
from gateway.central.service import DB_NAME, InitOptions
from gateway.central.service import Central as CentralService
from gateway.conf.anchor import root_fingerprint
from gateway.core.roles import CENTRAL_ROLE_PERMISSIONS, ApiRole, CentralPermission, permits
from gateway.trust.ca_store import init_ca
from tests.integration.test_central import INSTANCE, _free_port, gateway
from tests.pg import CENTRAL_BACKENDS, central_database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = [sys.executable, "-m", "gateway"]


@dataclass
class Served:
    dir: Path
    url: str
    admin_key: str

    def call(self, key: str | None, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return httpx.request(
            method, f"{self.url}/admin/v1{path}", json=body, headers=headers, timeout=30
        )

    def new_key(self, role: str, name: str, expires: datetime | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "role": role}
        if expires is not None:
            body["expires"] = expires.isoformat()
        r = self.call(self.admin_key, "POST", "/api-keys", body)
        assert r.status_code == 201, r.text
        made: dict[str, Any] = r.json()
        return made


@pytest.fixture(scope="module", params=CENTRAL_BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A served central, once with its registry in SQLite and once in PostgreSQL."""
    base = tmp_path_factory.mktemp("central-keys")
    database_url = central_database(request)
    on_postgres = [] if database_url is None else ["--database-url", database_url]
    init_ca(base / "ca", "Test CA", datetime.now(UTC))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # The online TUF keys are encrypted files; serve opens them with the passphrase.
    passphrase = base / "key-passphrase"
    passphrase.write_text("central online keys\n")
    passphrase.chmod(0o600)
    out = gateway(
        "central", "init", "--dir", str(base / "c"), "--instance", INSTANCE,
        "--ca-cert", str(base / "ca" / "ca.pem"), "--url", url, *on_postgres,
        "--key-passphrase-file", str(passphrase),
    )  # fmt: skip
    assert "admin.key" in out and "system_administrator" in out
    for key in (base / "c" / "keys").glob("*.pem"):
        assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    log = (base / "serve.log").open("w")
    proc = subprocess.Popen(
        [*GATEWAY, "central", "serve", "--dir", str(base / "c"), "--port", str(port),
         "--key-passphrase-file", str(passphrase)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                httpx.get(f"{url}/openapi.json", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert proc.poll() is None, (base / "serve.log").read_text()
                assert time.monotonic() < deadline, "central did not start"
                time.sleep(0.1)
        yield Served(base / "c", url, (base / "c" / "admin.key").read_text().strip())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _routes(served: Served) -> dict[tuple[str, str], CentralPermission]:
    return admin_permissions(create_app(CentralService(served.dir)))


def test_every_admin_endpoint_needs_a_permission(served: Served) -> None:
    app = create_app(CentralService(served.dir))
    published = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/admin/")
        for method in operations
    }
    routes = {(m, p.replace(":path", "")) for m, p in admin_permissions(app)}
    assert published == routes, "an admin endpoint without a permission"
    assert len(routes) == 32
    assert set(admin_permissions(app).values()) == set(CentralPermission)


def test_permission_tables_are_documented(served: Served) -> None:
    doc = (ROOT / "docs" / "global-configuration.md").read_text("utf-8")
    # The endpoint table: "| `METHOD /path` | `permission` |" for every admin route.
    documented = dict(re.findall(r"^\| `([A-Z]+ /[^`]+)` \| `([a-z.]+)` \|", doc, re.M))
    expected = {
        f"{method} {path.removeprefix('/admin/v1').replace(':path', '')}": perm.value
        for (method, path), perm in _routes(served).items()
    }
    assert documented == expected
    # The role table: one row per role, a ✓ under each permission it holds.
    header = re.search(r"^\| role \|( `read` \|.+)\|$", doc, re.M)
    assert header is not None
    columns = [c.strip().strip("`") for c in header.group(1).split("|")]
    assert set(columns) == {p.value for p in CentralPermission}
    for role, held in CENTRAL_ROLE_PERMISSIONS.items():
        row = re.search(rf"^\| `{role.value}` \|(.+)\|$", doc, re.M)
        assert row is not None, role
        cells = [c.strip() for c in row.group(1).split("|")]
        assert {p for p, c in zip(columns, cells, strict=True) if c == "✓"} == {
            p.value for p in held
        }, role


def _request(method: str, path: str) -> tuple[str, Any]:
    """A call to ``path`` that changes nothing when admitted (an unknown object, a
    refused value or a missing field), so all roles can be tried on one central."""
    concrete = re.sub(r"\{[^}]+\}", "none", path.removeprefix("/admin/v1"))
    bodies: dict[str, Any] = {
        "/settings": {"no_such_setting": "1"},
        "/member-classes": {"code": "not a code"},
    }
    body = bodies.get(concrete, {}) if method in ("POST", "PUT", "PATCH") else None
    return concrete, body


def test_role_matrix(served: Served) -> None:
    keys = {role: served.new_key(role.value, f"matrix-{role.value}")["key"] for role in ApiRole
            if role in CENTRAL_ROLE_PERMISSIONS}  # fmt: skip
    outcomes: dict[tuple[ApiRole, str, str], int] = {}
    for (method, path), needed in sorted(_routes(served).items()):
        concrete, body = _request(method, path)
        for role, key in keys.items():
            r = served.call(key, method, concrete, body)
            outcomes[(role, method, concrete)] = r.status_code
            if permits(CENTRAL_ROLE_PERMISSIONS, role, needed):
                assert r.status_code not in (401, 403), (role, method, concrete, r.text)
            else:
                assert r.status_code == 403, (role, method, concrete, r.text)
                assert r.json()["type"] == "central.forbidden"
                assert role.value in r.json()["message"]
    # X-Road's division of duties, spelled out rather than read back from the table.
    refused = {k for k, status in outcomes.items() if status == 403}
    sa, so, ro, ob = (
        ApiRole.SYSTEM_ADMINISTRATOR, ApiRole.SECURITY_OFFICER, ApiRole.REGISTRATION_OFFICER,
        ApiRole.OBSERVER,
    )  # fmt: skip
    assert not {k for k in refused if k[0] is sa}
    for role in (so, ro, ob):
        assert (role, "GET", "/members") not in refused
        assert (role, "GET", "/audit") not in refused
        assert (role, "POST", "/api-keys") in refused
        assert (role, "GET", "/api-keys") in refused
    assert (ob, "POST", "/members") in refused
    assert (ob, "DELETE", "/cas/none") in refused
    assert (ro, "POST", "/members") not in refused
    assert (ro, "POST", "/requests/none/approve") not in refused
    assert (ro, "POST", "/cas") in refused
    assert (ro, "PATCH", "/settings") in refused
    assert (so, "POST", "/cas") not in refused
    assert (so, "DELETE", "/tsas/none") not in refused
    assert (so, "POST", "/requests/none/approve") in refused
    assert (so, "POST", "/members") in refused
    # A role allowed to write really writes, and the central publishes it.
    officer = keys[ro]
    r = served.call(officer, "POST", "/members", {"id": f"{INSTANCE}/GOV/05974040", "name": "S"})
    assert r.status_code == 201, r.text


def test_no_unknown_expired_or_revoked_key_is_let_in(served: Served) -> None:
    for headers in ({}, {"Authorization": "Bearer gwk_unknown"}, {"Authorization": "Basic x"}):
        r = httpx.get(f"{served.url}/admin/v1/members", headers=headers, timeout=10)
        assert r.status_code == 401
        assert r.json()["type"] == "central.unauthorized"
    # The key without its scheme is not a bearer credential either.
    r = httpx.get(
        f"{served.url}/admin/v1/members", headers={"Authorization": served.admin_key}, timeout=10
    )
    assert r.status_code == 401

    short = served.new_key("observer", "short-lived", datetime.now(UTC) + timedelta(seconds=2))
    assert served.call(short["key"], "GET", "/members").status_code == 200
    revoked = served.new_key("system_administrator", "revoked-one")
    assert served.call(revoked["key"], "GET", "/api-keys").status_code == 200
    r = served.call(served.admin_key, "DELETE", f"/api-keys/{revoked['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["revoked"] and r.json()["active"] is False
    r = served.call(revoked["key"], "GET", "/members")
    assert r.status_code == 401
    assert r.json()["type"] == "central.unauthorized"
    assert "revoked" in r.json()["message"]
    assert served.call(served.admin_key, "DELETE", f"/api-keys/{revoked['id']}").status_code == 409
    # Until the key's two seconds have run out, not a fixed time: asked again until the
    # central refuses it, within a bound a loaded machine still meets.
    deadline = time.monotonic() + 30
    r = served.call(short["key"], "GET", "/members")
    while r.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
        r = served.call(short["key"], "GET", "/members")
    assert r.status_code == 401
    assert "expired" in r.json()["message"]
    listed = {k["id"]: k for k in served.call(served.admin_key, "GET", "/api-keys").json()}
    assert listed[short["id"]]["active"] is False
    assert listed[revoked["id"]]["active"] is False
    assert all("key" not in k and "digest" not in k for k in listed.values())
    # Keys that could never be used are refused at creation.
    for body in (
        {"name": "x", "role": "service_administrator"},  # no such role at the central
        {"name": "x", "role": "root"},
        {"name": "with space", "role": "observer"},
        {"name": "x", "role": "observer", "expires": "2000-01-01T00:00:00Z"},
    ):
        r = served.call(served.admin_key, "POST", "/api-keys", body)
        assert r.status_code == 400, body
        assert r.json()["type"] == "central.invalid"


def test_audit_names_the_key_not_a_header(served: Served) -> None:
    officer = served.new_key("registration_officer", "anna")
    r = httpx.post(
        f"{served.url}/admin/v1/members",
        json={"id": f"{INSTANCE}/GOV/05962024", "name": "Stadt Iserlohn"},
        headers={"Authorization": f"Bearer {officer['key']}", "X-Admin-User": "someone-else"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    entries = served.call(served.admin_key, "GET", "/audit").json()
    added = next(e for e in entries if e["action"] == "member.add")
    assert added["actor"] == f"key:{officer['id']}:anna"
    assert not any("someone-else" in e["actor"] for e in entries)
    made = next(
        e for e in entries if e["action"] == "api_key.create" and e["object"] == officer["id"]
    )
    assert made["actor"].startswith("key:") and made["actor"].endswith(":admin")
    assert made["after"]["role"] == "registration_officer"


def test_key_secrets_are_never_stored(served: Served) -> None:
    made = served.new_key("observer", "stored")
    secrets = [served.admin_key, made["key"]]
    sqlite_file = served.dir / DB_NAME
    raw = sqlite_file.read_bytes() if sqlite_file.exists() else b""
    engine = CentralService(served.dir).engine
    try:
        with engine.connect() as db:
            digests = {row[0] for row in db.execute(sa.text("SELECT digest FROM api_key"))}
            text = "\n".join(
                str(row)
                for table in sa.inspect(db).get_table_names()
                for row in db.execute(sa.text(f"SELECT * FROM {table}"))  # noqa: S608 - names
            )
    finally:
        engine.dispose()
    assert len(digests) >= 2  # the rows were read: init's key and this one at least
    for secret in secrets:
        assert secret.startswith("gwk_") and len(secret) >= 4 + 43
        assert secret not in text
        assert secret.encode() not in raw
        assert hashlib.sha256(secret.encode()).hexdigest() in digests


def test_cli_creates_lists_and_revokes_keys(served: Served, tmp_path: Path) -> None:
    out_file = tmp_path / "observer.key"
    out = gateway(
        "central", "keys", "create", "--dir", str(served.dir), "--name", "cli-observer",
        "--role", "observer", "--expires", "1d", "--out", str(out_file),
    )  # fmt: skip
    assert oct(out_file.stat().st_mode & 0o777) == "0o600"
    key = out_file.read_text().strip()
    assert key not in out
    assert served.call(key, "GET", "/members").status_code == 200
    assert served.call(key, "POST", "/members", {}).status_code == 403
    listed = gateway("central", "keys", "list", "--dir", str(served.dir))
    line = next(x for x in listed.splitlines() if '"cli-observer"' in x)
    key_id = re.search(r'"id": "([0-9a-f]+)"', line)
    assert key_id is not None and '"expires": "' in line
    # The observer's key cannot manage keys, through the CLI either.
    refused = subprocess.run(
        [*GATEWAY, "central", "keys", "list", "--dir", str(served.dir),
         "--key-file", str(out_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "central.forbidden" in refused.stderr
    gateway("central", "keys", "revoke", "--dir", str(served.dir), key_id.group(1))
    assert served.call(key, "GET", "/members").status_code == 401


def test_a_central_from_before_keys_keeps_its_token_as_the_admin_key(tmp_path: Path) -> None:
    """An upgraded directory: no key table, the old shared ``admin.token``. Serving it
    adopts the token as the ``admin`` system administrator key, and nothing else works."""
    ca = init_ca(tmp_path / "ca", "Test CA", datetime.now(UTC))
    options = InitOptions(
        instance=INSTANCE, ca_cert=ca, ocsp_urls=(), public_url="http://x", development=True
    )
    central = CentralService.init(tmp_path / "c", options)  # as before keys: no admin.key
    assert not (tmp_path / "c" / "admin.key").exists()
    with sqlite3.connect(tmp_path / "c" / DB_NAME) as db:
        db.execute("DROP TABLE api_key")
    (tmp_path / "c" / "admin.token").write_text("old-shared-token-0123456789abcdef\n")
    create_app(central)
    actor = apikeys.authenticate(
        central, "Bearer old-shared-token-0123456789abcdef", CentralPermission.KEYS_MANAGE
    )
    (listed,) = apikeys.list_keys(central)
    assert actor == f"key:{listed['id']}:admin"
    assert listed["role"] == "system_administrator"
    with pytest.raises(CentralError) as refused:
        apikeys.authenticate(central, "Bearer another", CentralPermission.READ)
    assert refused.value.code is CentralCode.UNAUTHORIZED
    create_app(central)  # a second start adopts nothing more
    assert len(apikeys.list_keys(central)) == 1


def test_whoami_names_the_calling_key_and_its_permissions(served: Served) -> None:
    made = served.new_key(ApiRole.REGISTRATION_OFFICER.value, "whoami-officer")
    r = served.call(made["key"], "GET", "/whoami")
    assert r.status_code == 200, r.text
    me = r.json()
    assert (me["id"], me["name"], me["role"]) == (made["id"], "whoami-officer", made["role"])
    held = CENTRAL_ROLE_PERMISSIONS[ApiRole.REGISTRATION_OFFICER]
    assert me["permissions"] == sorted(p.value for p in held)
    assert made["key"] not in r.text and "digest" not in me
    assert served.call("gwk_unknown", "GET", "/whoami").status_code == 401


def test_configuration_versions_list_serials_and_the_root(served: Served) -> None:
    before = served.call(served.admin_key, "GET", "/configuration/versions").json()
    serial = served.call(served.admin_key, "GET", "/configuration").json()["serial"]
    assert before["versions"][0]["serial"] == serial
    r = served.call(served.admin_key, "PUT", "/groups/DE-NRW/versions-test", {"description": "v"})
    assert r.status_code == 200, r.text
    after = served.call(served.admin_key, "GET", "/configuration/versions").json()
    newest, previous = after["versions"][0], after["versions"][1]
    assert newest["serial"] == serial + 1 and previous["serial"] == serial
    assert newest["targets_version"] == previous["targets_version"] + 1
    assert newest["sha256"] != previous["sha256"]
    root = json.loads((served.dir / "repo" / "metadata" / "root.json").read_bytes())
    assert after["root"]["sha256"] == root_fingerprint(root)
    assert after["root"]["version"] == root["signed"]["version"]
    assert after["instance"] == INSTANCE
