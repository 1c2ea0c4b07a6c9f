"""The node management API (``/api/v1``) and its keys, against real nodes.

Soest and Lippstadt run as ``gateway node serve`` processes; each made its key store
and its first system administrator key (``admin.key``) at start. Keys of every role
are added to the store on disk while the nodes run, as ``gateway node keys`` does, and
the nodes pick them up on the next call. Iserlohn's node is started in process once, to
hold its served OpenAPI document to the routes its admin application really has.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from gateway.conf.directory import TrustParameters
from gateway.core.roles import NODE_ROLE_PERMISSIONS, ApiRole, NodePermission
from gateway.keys.files import load_certificate, new_self_signed
from gateway.node.apikeys import NodeKeyStore
from gateway.node.clientauth import ClientCertStore
from gateway.node.config import load_config
from gateway.node.server import Node
from gateway.pki.keys import fingerprint_sha256
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import (
    GEWERBEAMT,
    ISERLOHN,
    LIPPSTADT,
    ORDNUNGSAMT,
    SERVICE,
    SOEST,
    RecordingRegistry,
)

pytestmark = pytest.mark.integration

API = "/api/v1"
DENIED = "server.serverproxy.access_denied"
ALL = frozenset(ApiRole)
SYS, SEC, REG, SRV, OBS = (
    ApiRole.SYSTEM_ADMINISTRATOR,
    ApiRole.SECURITY_OFFICER,
    ApiRole.REGISTRATION_OFFICER,
    ApiRole.SERVICE_ADMINISTRATOR,
    ApiRole.OBSERVER,
)
X_ROAD: dict[NodePermission, frozenset[ApiRole]] = {
    NodePermission.READ: ALL,
    NodePermission.CERTIFICATES_WRITE: frozenset({SYS, SEC}),
    NodePermission.CLIENTS_WRITE: frozenset({SYS, REG}),
    NodePermission.CONNECTION_WRITE: frozenset({SYS, SRV}),
    NodePermission.SERVICES_WRITE: frozenset({SYS, SRV}),
    NodePermission.ACCESS_WRITE: frozenset({SYS, SRV}),
    NodePermission.GROUPS_WRITE: frozenset({SYS, SRV}),
    NodePermission.MAINTENANCE: frozenset({SYS}),
    NodePermission.KEYS_MANAGE: frozenset({SYS}),
    NodePermission.LOG_BODIES: frozenset({SYS, SEC}),
}
"""Who may do what on X-Road's security server, written out apart from the code's table."""


class Keys:
    """The API keys of one running node, by role, made on its files."""

    def __init__(self, net: LocalNet, ags: str) -> None:
        directory = net.nodes[ags].directory
        self.url = net.nodes[ags].metrics_url
        self.config = net.nodes[ags].config
        self.store = NodeKeyStore(directory / "api-keys.json", directory / "admin.key")
        self.admin = (directory / "admin.key").read_text().strip()
        now = datetime.now(UTC)
        self.by_role = {
            role: self.store.create("test", f"test-{role.value}", role.value, None, now)[1]
            for role in ApiRole
        }

    def get(self, path: str, key: str | None, **params: str) -> httpx.Response:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        return httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def anet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    federation = LocalNet.create(
        tmp_path_factory.mktemp("admin"), [SOEST, LIPPSTADT, ISERLOHN], datetime.now(UTC)
    )
    federation.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    # Batches every 2 s, so an exchange's proof bundle can be downloaded soon after.
    federation.write_configs(parameters=TrustParameters(timestamping_interval_seconds=2))
    try:
        federation.start_node(SOEST.ags)
        federation.start_node(LIPPSTADT.ags)
        yield federation
    finally:
        federation.stop()


@pytest.fixture(scope="module")
def keys(anet: LocalNet) -> Keys:
    return Keys(anet, LIPPSTADT.ags)


def _document(keys: Keys) -> dict[str, Any]:
    response = keys.get(f"{API}/openapi.json", keys.admin)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, path, permission) of every operation the document describes."""
    return [
        (method.upper(), path, operation["x-permission"])
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


# ---------------------------------------------------------------------- keys


def test_the_node_made_its_first_key_at_start(anet: LocalNet) -> None:
    path = anet.nodes[SOEST.ags].directory / "admin.key"
    assert path.stat().st_mode & 0o777 == 0o600
    store = anet.nodes[SOEST.ags].directory / "api-keys.json"
    assert store.stat().st_mode & 0o777 == 0o600
    listed = json.loads(store.read_text())["keys"]
    assert [(k["name"], k["role"]) for k in listed] == [("admin", "system_administrator")]
    # Only the digest is stored, never the key.
    assert path.read_text().strip() not in store.read_text()


def test_metrics_stay_open_but_operational_data_needs_a_key(keys: Keys) -> None:
    assert keys.get("/metrics", None).status_code == 200
    for path in ("/operational", f"{API}/operational", f"{API}/diagnostics"):
        for header in (None, "Basic YWRtaW46YWRtaW4=", "Bearer gwk_not-a-key-of-this-node"):
            response = httpx.get(
                f"{keys.url}{path}",
                headers={} if header is None else {"Authorization": header},
                timeout=30,
            )
            assert response.status_code == 401, (path, header, response.text)
            assert response.json()["type"] == "admin.unauthorized"
            assert "records" not in response.json()
    assert keys.get("/operational", keys.admin).json()["node"] == str(LIPPSTADT.node)


def test_an_expired_key_is_refused(keys: Keys) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    _, key = keys.store.create("test", "short-lived", "observer", expires, datetime.now(UTC))
    assert keys.get(f"{API}/certificates", key).status_code == 200
    deadline = time.monotonic() + 30
    while (response := keys.get(f"{API}/certificates", key)).status_code == 200:
        assert time.monotonic() < deadline, "the key was still accepted after its expiry"
        time.sleep(0.5)
    assert datetime.now(UTC) >= expires
    assert response.status_code == 401
    assert response.json()["type"] == "admin.unauthorized"
    assert "expired" in response.json()["message"]


def _gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_keys_made_and_revoked_with_the_cli_work_at_once(keys: Keys) -> None:
    made = _gateway(
        "node",
        "keys",
        "create",
        "--config",
        str(keys.config),
        "--name",
        "ops",
        "--role",
        "observer",
    )
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["role"] == "observer" and created["active"] is True
    assert keys.get(f"{API}/certificates", created["key"]).status_code == 200
    listed = _gateway("node", "keys", "list", "--config", str(keys.config))
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["id"]: r["name"] for r in rows}[created["id"]] == "ops"
    assert all("key" not in r and "digest" not in r for r in rows)

    revoked = _gateway("node", "keys", "revoke", "--config", str(keys.config), created["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["active"] is False
    response = keys.get(f"{API}/certificates", created["key"])
    assert response.status_code == 401
    assert response.json()["type"] == "admin.unauthorized"
    assert "revoked" in response.json()["message"]
    again = _gateway("node", "keys", "revoke", "--config", str(keys.config), created["id"])
    assert again.returncode == 2 and "already revoked" in again.stderr
    bad = _gateway(
        "node",
        "keys",
        "create",
        "--config",
        str(keys.config),
        "--name",
        "x y",
        "--role",
        "observer",
    )
    assert bad.returncode == 2 and "key name" in bad.stderr


def test_keys_over_the_api_are_the_system_administrators(keys: Keys) -> None:
    auth = {"Authorization": f"Bearer {keys.admin}"}
    made = httpx.post(
        f"{keys.url}{API}/api-keys",
        json={"name": "made-over-api", "role": "service_administrator"},
        headers=auth,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["created_by"].startswith("key:") and body["created_by"].endswith(":admin")
    assert _audit(keys)[-1]["entry_id"] == body["entry_id"]
    assert _audit(keys)[-1]["action"] == "api_key.create"
    assert body["key"] not in json.dumps(_audit(keys)[-1])  # never the secret
    assert keys.get(f"{API}/diagnostics", body["key"]).status_code == 200
    gone = httpx.delete(f"{keys.url}{API}/api-keys/{body['id']}", headers=auth, timeout=30)
    assert gone.status_code == 200 and gone.json()["active"] is False
    assert (_audit(keys)[-1]["action"], _audit(keys)[-1]["target"]) == (
        "api_key.revoke",
        body["id"],
    )
    assert keys.get(f"{API}/diagnostics", body["key"]).status_code == 401
    bad = httpx.post(
        f"{keys.url}{API}/api-keys", json={"name": "x", "role": "king"}, headers=auth, timeout=30
    )
    assert bad.status_code == 400 and bad.json()["type"] == "admin.invalid"


# ---------------------------------------------------------------------- roles


def test_the_node_table_is_x_roads() -> None:
    held = {p: frozenset(r for r, ps in NODE_ROLE_PERMISSIONS.items() if p in ps) for p in X_ROAD}
    assert held == X_ROAD
    assert set(X_ROAD) == set(NodePermission)


def test_every_permission_guards_some_route(keys: Keys) -> None:
    used = {permission for _, _, permission in _operations(_document(keys))}
    assert used == {p.value for p in NodePermission}


@pytest.mark.parametrize("role", list(ApiRole), ids=lambda r: r.value)
@pytest.mark.parametrize("permission", list(NodePermission), ids=lambda p: p.value)
def test_each_role_is_allowed_and_refused_as_x_road_does(
    keys: Keys, permission: NodePermission, role: ApiRole
) -> None:
    """Every route needing ``permission``, called with ``role``'s key: refused with 403
    where X-Road refuses the role, let through where it allows it. Changes are sent
    with an empty body or unknown names, so a call let through changes nothing."""
    routes = [(m, p) for m, p, perm in _operations(_document(keys)) if perm == permission.value]
    assert routes, f"no route needs {permission.value}"
    key = keys.by_role[role]
    for method, path in routes:
        url = keys.url + path.replace("{", "no-such-").replace("}", "")
        body: dict[str, Any] | None = None if method == "GET" else {}
        response = httpx.request(
            method, url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        if role in X_ROAD[permission]:
            assert response.status_code not in (401, 403), (method, path, response.text)
            if method == "GET" and "{" not in path:
                assert response.status_code == 200, (method, path, response.text)
        else:
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["type"] == "admin.forbidden"
            assert role.value in response.json()["message"]


# ---------------------------------------------------------------------- reads


def test_diagnostics_and_certificates_describe_the_node(anet: LocalNet, keys: Keys) -> None:
    observer = keys.by_role[OBS]
    diagnostics = keys.get(f"{API}/diagnostics", observer).json()
    assert diagnostics["node"] == str(LIPPSTADT.node) and diagnostics["ready"] is True
    assert {c["check"] for c in diagnostics["checks"]} >= {"globalconf", "ocsp", "messagelog"}
    assert diagnostics["globalconf"]["serial"] >= 1
    assert [o["status"] for o in diagnostics["ocsp"]] == ["good", "good"]
    assert diagnostics["messagelog"]["queue_depth"] >= 0
    # Soest runs and answers on its peer port; Iserlohn's node is not running.
    peers = {p["node"]: p["reachable"] for p in diagnostics["peers"]}
    assert peers == {str(SOEST.node): True, str(ISERLOHN.node): False}

    listed = keys.get(f"{API}/certificates", observer).json()["certificates"]
    assert {(c["role"], c["owner"]) for c in listed} == {
        ("authentication", str(LIPPSTADT.node)),
        ("signing", str(LIPPSTADT.member)),
    }
    for certificate in listed:
        assert 0 < certificate["days_left"] < 3 * 366
        assert certificate["ocsp"]["status"] == "good"
        assert certificate["ocsp"]["age_seconds"] >= 0


def test_a_malformed_bound_is_refused_with_its_code(keys: Keys) -> None:
    for path in ("/operational", f"{API}/operational"):
        response = keys.get(path, keys.admin, since="yesterday")
        assert response.status_code == 400
        assert response.json()["type"] == "admin.invalid"
        assert "since" in response.json()["message"]


def test_an_unknown_path_is_not_found(keys: Keys) -> None:
    response = keys.get(f"{API}/no-such-thing", keys.admin)
    assert response.status_code == 404 and response.json()["type"] == "admin.not_found"


async def _routes_and_document(net: LocalNet) -> tuple[set[tuple[str, str]], dict[str, Any]]:
    """Iserlohn's node, started in process: its admin app's routes and served document."""
    node = Node(load_config(net.nodes[ISERLOHN.ags].config))
    await node.start()
    try:
        assert node.endpoints is not None and node.endpoints.metrics_url is not None
        app = node._runners[0].app  # the admin listener is bound first
        routes = {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }
        key = (net.nodes[ISERLOHN.ags].directory / "admin.key").read_text().strip()
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"{node.endpoints.metrics_url}{API}/openapi.json",
                headers={"Authorization": f"Bearer {key}"},
            )
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return routes, document
    finally:
        await node.stop()


def test_the_openapi_document_describes_every_route(anet: LocalNet) -> None:
    routes, document = asyncio.run(_routes_and_document(anet))
    assert document["openapi"].startswith("3.")
    described = {(m, p) for m, p, _ in _operations(document)}
    api = {(m, p) for m, p in routes if p.startswith(API + "/") and m != "*"}
    assert api == described
    # Beside the API: the open metrics, the older alias and the API's catch-all.
    assert routes - api == {("GET", "/metrics"), ("GET", "/operational"), ("*", API + "/{tail}")}
    for item in document["paths"].values():
        for operation in item.values():
            assert operation["summary"] and operation["x-permission"] in {
                p.value for p in NodePermission
            }


# ---------------------------------------------------------------------- the CLI


def _admin(keys: Keys, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    """``gateway node admin`` as an operator runs it: the node's URL and key from its
    node.toml and admin.key, or the key given in the environment."""
    import os

    env = dict(os.environ)
    env.pop("GATEWAY_ADMIN_KEY", None)
    if key is not None:
        env["GATEWAY_ADMIN_KEY"] = key
    return _gateway("node", "admin", "--config", str(keys.config), *args, env=env)


def test_the_cli_reads_through_the_api(keys: Keys) -> None:
    diagnostics = _admin(keys, "--json", "diagnostics")
    assert diagnostics.returncode == 0, diagnostics.stderr
    assert json.loads(diagnostics.stdout)["node"] == str(LIPPSTADT.node)
    table = _admin(keys, "certificates")
    assert table.returncode == 0, table.stderr
    assert "authentication" in table.stdout and "signing" in table.stdout
    assert str(LIPPSTADT.member) in table.stdout
    opdata = _admin(keys, "--json", "opdata", "--since", "2020-01-01T00:00:00Z")
    assert opdata.returncode == 0 and "records" in json.loads(opdata.stdout)


def test_the_cli_says_why_and_exits_by_kind_of_failure(keys: Keys) -> None:
    refused = _admin(keys, "opdata", "--since", "yesterday", key=keys.by_role[OBS])
    assert refused.returncode == 1
    assert refused.stderr.startswith("gateway: refused: admin.invalid: since")
    assert len(refused.stderr.strip().splitlines()) == 1
    unknown = _admin(keys, "diagnostics", key="gwk_unknown")
    assert unknown.returncode == 1 and "admin.unauthorized" in unknown.stderr
    nobody = _gateway(
        "node",
        "admin",
        "--url",
        "http://127.0.0.1:9",
        "--key-file",
        str(keys.config),
        "diagnostics",
    )
    assert nobody.returncode == 2 and "no answer from http://127.0.0.1:9" in nobody.stderr
    usage = _admin(keys, "no-such-command")
    assert usage.returncode == 2


# ---------------------------------------------------------------------- changes


def _ask(net: LocalNet, client: str) -> httpx.Response:
    """One of Soest's offices asks Lippstadt's register, through Soest's node."""
    return httpx.get(
        f"{net.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}",
        params={"familienname": "Schmidt"},
        headers={"X-Road-Client": client},
        timeout=30,
    )


def _audit(keys: Keys) -> list[dict[str, Any]]:
    response = keys.get(f"{API}/audit", keys.by_role[OBS])
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()["records"]
    return records


def test_grant_and_revoke_with_the_cli_while_the_nodes_run(anet: LocalNet, keys: Keys) -> None:
    office = str(ORDNUNGSAMT)
    refused = _ask(anet, office)
    assert refused.headers.get("X-Road-Error") == DENIED, refused.text
    # The observer may read but not grant: refused by the API, nothing changed.
    observer = _admin(
        keys, "access", "grant", str(SERVICE), "--client", office, key=keys.by_role[OBS]
    )
    assert observer.returncode == 1
    assert observer.stderr.startswith("gateway: refused: admin.forbidden: role observer")
    assert _ask(anet, office).headers.get("X-Road-Error") == DENIED

    granted = _admin(keys, "access", "grant", str(SERVICE), "--client", office)
    assert granted.returncode == 0, granted.stderr
    assert f"access.grant {SERVICE}: done" in granted.stdout
    allowed = _ask(anet, office)  # no restart: the next exchange is under the grant
    assert allowed.status_code == 200, allowed.text
    listed = _admin(keys, "--json", "access", "list")
    assert {"service": str(SERVICE), "client": office} in [
        {k: a[k] for k in ("service", "client")} for a in json.loads(listed.stdout)["access"]
    ]

    revoked = _admin(keys, "access", "revoke", str(SERVICE), "--client", office)
    assert revoked.returncode == 0, revoked.stderr
    assert _ask(anet, office).headers.get("X-Road-Error") == DENIED
    again = _admin(keys, "access", "revoke", str(SERVICE), "--client", office)
    assert again.returncode == 1 and "admin.not_found" in again.stderr

    # Both changes are in the node's admin trail, named by the key that made them.
    trail = [r for r in _audit(keys) if r["action"].startswith("access.")]
    admin_id = next(k.id for k in keys.store.listed() if k.name == "admin")
    assert [(r["action"], r["actor"], r["target"]) for r in trail[-2:]] == [
        ("access.grant", f"key:{admin_id}:admin", str(SERVICE)),
        ("access.revoke", f"key:{admin_id}:admin", str(SERVICE)),
    ]
    assert trail[-2]["leaf_index"] < trail[-1]["leaf_index"]
    cli = _admin(keys, "audit")
    assert cli.returncode == 0 and "access.revoke" in cli.stdout


def test_subsystems_services_and_local_groups_over_the_api(anet: LocalNet, keys: Keys) -> None:
    service_admin = {"Authorization": f"Bearer {keys.by_role[SRV]}"}
    registration = {"Authorization": f"Bearer {keys.by_role[REG]}"}
    melderegister = str(LIPPSTADT.subsystem("melderegister")).replace("/", ":")

    def send(method: str, path: str, headers: dict[str, str], body: Any = None) -> httpx.Response:
        return httpx.request(
            method, f"{keys.url}{API}{path}", json=body, headers=headers, timeout=30
        )

    # A subsystem: the registration officer adds it, the service administrator sets
    # its connection type; the answers carry the new state and the audit entry.
    added = send("POST", "/subsystems", registration, {"id": f"{LIPPSTADT.member}/archiv"})
    assert added.status_code == 200, added.text
    assert added.json()["entry_id"] > 0
    assert {"id": f"{LIPPSTADT.member}/archiv", "connection_type": "https"} in added.json()[
        "clients"
    ]
    archiv = f"{LIPPSTADT.member}/archiv".replace("/", ":")
    typed = send(
        "PUT", f"/subsystems/{archiv}/connection-type", service_admin, {"connection_type": "http"}
    )
    assert typed.status_code == 200, typed.text
    assert {"id": f"{LIPPSTADT.member}/archiv", "connection_type": "http"} in typed.json()[
        "clients"
    ]
    twice = send("POST", "/subsystems", registration, {"id": f"{LIPPSTADT.member}/archiv"})
    assert twice.status_code == 409 and twice.json()["type"] == "admin.conflict"
    bad = send(
        "PUT", f"/subsystems/{archiv}/connection-type", service_admin, {"connection_type": "ftp"}
    )
    assert bad.status_code == 400 and bad.json()["type"] == "admin.invalid"
    gone = send("DELETE", f"/subsystems/{archiv}", registration)
    assert gone.status_code == 200
    assert all(c["id"] != f"{LIPPSTADT.member}/archiv" for c in gone.json()["clients"])
    unknown = send("DELETE", f"/subsystems/{archiv}", registration)
    assert unknown.status_code == 404 and unknown.json()["type"] == "admin.not_found"

    # A local group of the register's subsystem, granted the service: Soest's
    # Ordnungsamt, a member, may then read it; removed from the group, it may not.
    office = str(ORDNUNGSAMT)
    made = send(
        "POST",
        "/local-groups",
        service_admin,
        {
            "owner": str(LIPPSTADT.subsystem("melderegister")),
            "code": "pruefer",
            "members": [office],
        },
    )
    assert made.status_code == 200, made.text
    grant = {"service": str(SERVICE), "local_group": "pruefer"}
    assert send("POST", "/access", service_admin, grant).status_code == 200
    assert _ask(anet, office).status_code == 200
    group = f"{melderegister}:pruefer"
    out = send("DELETE", f"/local-groups/{group}/members", service_admin, {"members": [office]})
    assert out.status_code == 200, out.text
    assert _ask(anet, office).headers.get("X-Road-Error") == DENIED
    in_use = send("DELETE", f"/local-groups/{group}", service_admin)
    assert in_use.status_code == 409 and in_use.json()["type"] == "admin.conflict"
    assert send("DELETE", "/access", service_admin, grant).status_code == 200
    assert send("DELETE", f"/local-groups/{group}", service_admin).status_code == 200

    # A service disabled and enabled again by PATCH, as X-Road's administrator does.
    service = str(SERVICE).replace("/", ":")
    off = send("PATCH", f"/services/{service}", service_admin, {"enabled": False})
    assert off.status_code == 200 and off.json()["action"] == "service.disable"
    disabled = _ask(anet, str(GEWERBEAMT))
    assert disabled.headers.get("X-Road-Error") == "server.serverproxy.service_disabled"
    on = send("PATCH", f"/services/{service}", service_admin, {"enabled": True})
    assert on.status_code == 200 and on.json()["action"] == "service.enable"
    assert _ask(anet, str(GEWERBEAMT)).status_code == 200
    nofield = send("PATCH", f"/services/{service}", service_admin, {"colour": "blue"})
    assert nofield.status_code == 400 and "colour" in nofield.json()["message"]


def test_maintenance_mode_through_the_cli(anet: LocalNet, keys: Keys) -> None:
    service_admin = keys.by_role[SRV]
    forbidden = _admin(keys, "maintenance", "on", key=service_admin)
    assert forbidden.returncode == 1 and "admin.forbidden" in forbidden.stderr
    on = _admin(keys, "maintenance", "on", "--reason", "Datenbankwartung")
    assert on.returncode == 0, on.stderr
    try:
        status = _admin(keys, "maintenance", "status", key=keys.by_role[OBS])
        assert status.returncode == 0 and "maintenance mode on since" in status.stdout
        assert "Datenbankwartung" in status.stdout
        refused = _ask(anet, str(GEWERBEAMT))
        assert refused.headers.get("X-Road-Error") == "server.serverproxy.maintenance_mode"
        twice = _admin(keys, "maintenance", "on")
        assert twice.returncode == 1 and "admin.conflict" in twice.stderr
    finally:
        off = _admin(keys, "maintenance", "off")
    assert off.returncode == 0, off.stderr
    assert _ask(anet, str(GEWERBEAMT)).status_code == 200
    actions = [r["action"] for r in _audit(keys) if r["action"].startswith("maintenance.")]
    assert actions[-2:] == ["maintenance.enter", "maintenance.leave"]


# ---------------------------------------------------------------------- certificates


def test_the_security_officer_asks_for_a_certificate(anet: LocalNet, keys: Keys) -> None:
    officer = {"Authorization": f"Bearer {keys.by_role[SEC]}"}
    url = f"{keys.url}{API}/certificates"
    csr = httpx.post(f"{url}/csr", json={"owner": str(LIPPSTADT.member)}, headers=officer)
    assert csr.status_code == 200, csr.text
    body = csr.json()
    assert body["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert (body["role"], body["new_key"]) == ("signing", False)
    trail = _audit(keys)
    assert (trail[-1]["action"], trail[-1]["entry_id"]) == ("certificate.csr", body["entry_id"])
    # A refusal of the key functions keeps its own documented code.
    bad = httpx.post(url, json={"pem": "not a certificate"}, headers=officer)
    assert bad.status_code == 400 and bad.json()["type"] == "client.certificate.invalid"
    mine = load_certificate(anet.nodes[LIPPSTADT.ags].sign_cert)
    pem = mine.public_bytes(serialization.Encoding.PEM).decode()
    again = httpx.post(url, json={"pem": pem}, headers=officer)
    assert again.status_code == 400
    assert again.json()["type"] == "client.certificate.already_installed"
    # The service administrator does not manage certificates.
    srv = {"Authorization": f"Bearer {keys.by_role[SRV]}"}
    assert (
        httpx.post(f"{url}/csr", json={"owner": str(LIPPSTADT.member)}, headers=srv).status_code
        == 403
    )
    cli = _admin(keys, "csr", str(LIPPSTADT.node), key=keys.by_role[SEC])
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("-----BEGIN CERTIFICATE REQUEST-----")


# ---------------------------------------------------------------------- service descriptions


class _Described:
    """A registry's OpenAPI document on a real loopback HTTP server; ``paths`` may be
    changed between fetches."""

    def __init__(self) -> None:
        self.paths: dict[str, Any] = {"/personen": {"get": {}}, "/personen/{id}": {"get": {}}}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                doc = {"openapi": "3.0.3", "info": {"title": "Archiv", "version": "1"}}
                payload = json.dumps({**doc, "paths": outer.paths}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/openapi.json"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_service_described_by_its_openapi_document(keys: Keys) -> None:
    described = _Described()
    try:
        service = str(LIPPSTADT.subsystem("melderegister").service("archiv"))
        added = _admin(
            keys,
            "--json",
            "services",
            "add",
            service,
            "http://127.0.0.1:9/archiv",
            "--from-openapi",
            described.url,
            key=keys.by_role[SRV],
        )
        assert added.returncode == 0, added.stderr
        section = next(s for s in json.loads(added.stdout)["services"] if s["id"] == service)
        assert {(e["method"], e["path"]) for e in section["endpoints"]} == {
            ("GET", "/personen"),
            ("GET", "/personen/*"),
        }
        described.paths = {"/personen": {"get": {}, "post": {}}}
        refreshed = _admin(keys, "services", "refresh", service, key=keys.by_role[SRV])
        assert refreshed.returncode == 0, refreshed.stderr
        assert "added POST /personen" in refreshed.stdout
        assert "removed GET /personen/*" in refreshed.stdout
        described.paths = {}
        empty = _admin(keys, "services", "refresh", service, key=keys.by_role[SRV])
        assert empty.returncode == 1
        assert "client.service_description.no_paths" in empty.stderr
    finally:
        described.close()
        _admin(keys, "services", "remove", service)


def test_the_topology_names_each_node_s_api_and_key(anet: LocalNet) -> None:
    nodes = {n["id"]: n for n in anet.topology()["nodes"]}
    lippstadt = nodes[str(LIPPSTADT.node)]
    key = Path(lippstadt["admin_key"]).read_text().strip()
    response = httpx.get(
        f"{lippstadt['admin_url']}/api-keys", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text  # the system administrator's


# ---------------------------------------------------------------------- whoami and the log


def test_whoami_names_the_calling_key_and_what_its_role_may_do(keys: Keys) -> None:
    for role in ApiRole:
        response = keys.get(f"{API}/whoami", keys.by_role[role])
        assert response.status_code == 200, response.text
        who = response.json()
        assert (who["name"], who["role"], who["node"]) == (
            f"test-{role.value}",
            role.value,
            str(LIPPSTADT.node),
        )
        assert who["permissions"] == sorted(p.value for p, rs in X_ROAD.items() if role in rs)
        assert keys.by_role[role] not in response.text
    refused = keys.get(f"{API}/whoami", None)
    assert refused.status_code == 401 and refused.json()["type"] == "admin.unauthorized"


def _logged_exchange(net: LocalNet, issue: str) -> str:
    """One exchange for case ``issue``; its X-Road-Id."""
    answer = httpx.get(
        f"{net.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}",
        params={"familienname": "Schmidt"},
        headers={"X-Road-Client": str(GEWERBEAMT), "X-Road-Issue": issue},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["X-Road-Id"]


def _bundle(keys: Keys, path: str, key: str) -> httpx.Response:
    """The bundle at ``path``, once a timestamped tree head covers the entry."""
    deadline = time.monotonic() + 60
    while True:
        response = keys.get(path, key)
        if response.status_code != 409 or time.monotonic() > deadline:
            return response
        assert response.json()["type"] == "admin.conflict"
        time.sleep(0.5)


def test_the_log_is_searched_without_bodies(anet: LocalNet, keys: Keys) -> None:
    xroad_id = _logged_exchange(anet, "AZ-LOG-0001")
    _logged_exchange(anet, "AZ-LOG-0002")
    observer = keys.by_role[OBS]
    found = keys.get(f"{API}/log", observer, xroad_id=xroad_id)
    assert found.status_code == 200, found.text
    entries = found.json()["entries"]
    assert sorted((e["role"], e["kind"]) for e in entries) == [
        ("provider", "request"),
        ("provider", "response"),
    ]
    assert {(e["xroad_id"], e["issue"], e["client"], e["service"]) for e in entries} == {
        (xroad_id, "AZ-LOG-0001", str(GEWERBEAMT), str(SERVICE))
    }
    assert all("body" not in e and e["body_sha256"] for e in entries)
    by_case = keys.get(f"{API}/log", observer, issue="AZ-LOG-0001", service=str(SERVICE))
    assert [e["entry_id"] for e in by_case.json()["entries"]] == [e["entry_id"] for e in entries]
    by_client = keys.get(f"{API}/log", observer, client=str(GEWERBEAMT), limit="1")
    assert len(by_client.json()["entries"]) == 1 and by_client.json()["next_after"] is not None
    future = keys.get(f"{API}/log", observer, since="2999-01-01T00:00:00Z")
    assert future.json()["entries"] == [] and future.json()["next_after"] is None
    for bad in ({"since": "yesterday"}, {"limit": "0"}, {"after": "-1"}):
        refused = keys.get(f"{API}/log", observer, **bad)
        assert refused.status_code == 400 and refused.json()["type"] == "admin.invalid", bad


def test_an_entry_s_bundle_verifies_and_bodies_need_their_permission(
    anet: LocalNet, keys: Keys, tmp_path: Path
) -> None:
    xroad_id = _logged_exchange(anet, "AZ-LOG-0003")
    entry = keys.get(f"{API}/log", keys.by_role[OBS], xroad_id=xroad_id).json()["entries"][0]
    path = f"{API}/log/{entry['entry_id']}/bundle"
    plain = _bundle(keys, path, keys.by_role[OBS])
    assert plain.status_code == 200, plain.text
    records = [json.loads(line) for line in plain.text.splitlines()]
    entries = [r for r in records if r["type"] == "entry"]
    assert {r["message_id"] for r in entries} == {entry["message_id"]} and len(entries) == 2
    assert all("body" not in r for r in entries)  # digests only: personal data stays
    # Bodies only for the roles X-Road gives the message log.
    for role in (OBS, SRV, REG):
        refused = keys.get(f"{path}-with-bodies", keys.by_role[role])
        assert refused.status_code == 403 and refused.json()["type"] == "admin.forbidden"
    full = _bundle(keys, f"{path}-with-bodies", keys.by_role[SEC])
    assert full.status_code == 200, full.text
    assert all("body" in json.loads(x) for x in full.text.splitlines() if '"entry"' in x)
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(anet.ca_cert.read_bytes() + anet.trust.tsa_cert.read_bytes())
    for name, response in (("plain", plain), ("full", full)):
        bundle = tmp_path / f"{name}.jsonl"
        bundle.write_bytes(response.content)
        verified = _gateway("audit", "verify", str(bundle), "--anchor", str(anchor))
        assert verified.returncode == 0, verified.stdout + verified.stderr
    for bad, status, code in (("999999", 404, "admin.not_found"), ("x1", 400, "admin.invalid")):
        refused = keys.get(f"{API}/log/{bad}/bundle", keys.by_role[OBS])
        assert (refused.status_code, refused.json()["type"]) == (status, code)


async def _certificate_changes_without_a_log(
    net: LocalNet, pem: str, other: str
) -> list[httpx.Response]:
    """Iserlohn's node in process: a certificate registered through the API, then, with
    its message log closed, one more registered and the first removed."""
    files = net.nodes[ISERLOHN.ags]
    node = Node(load_config(files.config))
    await node.start()
    try:
        assert node.endpoints is not None and node.endpoints.metrics_url is not None
        key = (files.directory / "admin.key").read_text().strip()
        path = f"{API}/subsystems/{str(ISERLOHN.subsystem('buergerbuero')).replace('/', ':')}"
        async with httpx.AsyncClient(
            base_url=node.endpoints.metrics_url, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            answers = [await client.post(f"{path}/certificates", json={"pem": pem})]
            sha256 = answers[0].json()["sha256"]
            await node.context.log.close()
            answers.append(await client.post(f"{path}/certificates", json={"pem": other}))
            answers.append(await client.delete(f"{path}/certificates/{sha256}"))
        return answers
    finally:
        await node.stop()


def test_a_client_certificate_change_the_log_cannot_record_is_undone(
    anet: LocalNet, tmp_path: Path
) -> None:
    """Fail closed: the certificate store is changed only as far as the log shows it."""
    fresh, other = tmp_path / "buergerbuero-is.pem", tmp_path / "other-is.pem"
    cert, _ = (
        new_self_signed(path, path.with_suffix(".key"), path.stem, datetime.now(UTC), days=30,
                        client=True)
        for path in (fresh, other)
    )  # fmt: skip
    store = ClientCertStore(anet.nodes[ISERLOHN.ags].client_certs)
    before = {e.sha256 for e in store.entries()}
    added, refused_add, refused_remove = asyncio.run(
        _certificate_changes_without_a_log(anet, fresh.read_text(), other.read_text())
    )
    assert added.status_code == 200 and added.json()["entry_id"] > 0, added.text
    for refused in (refused_add, refused_remove):
        assert refused.status_code == 503 and refused.json()["type"] == "admin.unavailable"
    store.refresh()
    assert {e.sha256 for e in store.entries()} == before | {fingerprint_sha256(cert)}
