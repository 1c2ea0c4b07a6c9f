"""The console's node pages over a real node's management API: Soest's and Lippstadt's
nodes as ``gateway node serve`` processes, the console as ``gateway console serve
--node-url`` on Lippstadt's admin listener.

In headless Chromium a service administrator grants Soest's Ordnungsamt the Melderegister
(its refused call then succeeds) and revokes it (refused again); an observer's grant is
refused by the node's API and the page says so. By plain HTTP: the diagnostics,
certificates, subsystems, traffic, maintenance and admin-trail pages show what the API
answers.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.conf.directory import TrustParameters
from gateway.core.roles import ApiRole
from gateway.keys.files import new_self_signed
from gateway.pki.keys import fingerprint_sha256
from gateway.sandbox.localnet import LocalNet, ServiceSpec, free_port
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    ORDNUNGSAMT,
    SERVICE,
    SOEST,
    RecordingRegistry,
)
from tests.integration.test_console import _wait, csrf_of
from tests.integration.test_node_admin import (
    API,
    DENIED,
    Keys,
    _ask,
    _bundle,
    _Described,
    _gateway,
    _logged_exchange,
)
from tests.integration.test_portal_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.integration

MELDEREGISTER = LIPPSTADT.subsystem("melderegister")

UPLOAD_LIMIT = 1_000_000
"""The console's request body limit in these tests (``--max-upload-bytes``)."""


@dataclass
class NodeConsole:
    net: LocalNet
    keys: Keys
    url: str

    def signed_in(self, role: ApiRole) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=60, follow_redirects=True)
        form = client.get("/signin?api=node")
        page = client.post(
            "/signin",
            data={"csrf": csrf_of(form), "api": "node", "key": self.keys.by_role[role]},
        )
        assert page.status_code == 200 and str(LIPPSTADT.node) in page.text, page.text
        return client


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[NodeConsole]:
    root = tmp_path_factory.mktemp("console-node")
    net = LocalNet.create(root, [SOEST, LIPPSTADT], datetime.now(UTC))
    net.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    # Batches every 2 s, so an exchange's proof bundle can be downloaded soon after.
    net.write_configs(parameters=TrustParameters(timestamping_interval_seconds=2))
    port = free_port()
    log = (root / "console.log").open("w")
    proc = None
    try:
        net.start_node(SOEST.ags)
        net.start_node(LIPPSTADT.ags)
        keys = Keys(net, LIPPSTADT.ags)
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "console", "serve", "--node-url", keys.url,
             "--listen", f"127.0.0.1:{port}", "--max-upload-bytes", str(UPLOAD_LIMIT)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        _wait(f"http://127.0.0.1:{port}/", proc, root / "console.log")
        yield NodeConsole(net, keys, f"http://127.0.0.1:{port}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        log.close()
        net.stop()


def test_the_node_pages_show_what_the_api_answers(console: NodeConsole) -> None:
    assert _ask(console.net, str(GEWERBEAMT)).status_code == 200  # one exchange of traffic
    with closing(console.signed_in(ApiRole.OBSERVER)) as client:
        diagnostics = client.get("/node/diagnostics").text
        assert 'id="ready" class="notice ok"' in diagnostics
        assert str(SOEST.node) in diagnostics  # the peer, reachable
        certificates = client.get("/node/certificates").text
        assert "authentication" in certificates and "signing" in certificates
        assert client.get("/node/subsystems").text.count("<code>DE-NRW/GOV/05974028/") >= 1
        services = client.get("/node/services").text
        assert str(SERVICE) in services and str(GEWERBEAMT) in services
        traffic = client.get("/node/traffic").text
        assert f"<code>{SERVICE}</code>" in traffic
        maintenance = client.get("/node/maintenance")
        assert 'id="maintenance-state" class="good"' in maintenance.text
        # The observer may read, not change: the node refuses, the page shows its code.
        page = client.post(
            "/node/maintenance", data={"csrf": csrf_of(maintenance), "enabled": "on"}
        )
        assert "admin.forbidden" in page.text and 'class="good"' in page.text
        trail = client.get("/node/audit")
        assert trail.status_code == 200 and 'id="audit"' in trail.text
    # Without a key for the node, its pages send the browser to sign in there.
    with httpx.Client(base_url=console.url, timeout=30, follow_redirects=True) as anonymous:
        page = anonymous.get("/node/services")
        assert page.url.path == "/signin" and 'name="api" value="node"' in page.text


def test_grant_and_revoke_in_the_browser(console: NodeConsole, tmp_path: Path) -> None:
    from playwright.sync_api import Page, sync_playwright

    shots = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    office = str(ORDNUNGSAMT)
    assert _ask(console.net, office).headers.get("X-Road-Error") == DENIED

    def sign_in(page: Page, role: ApiRole) -> None:
        page.goto(f"{console.url}/signin?api=node")
        page.fill("#key", console.keys.by_role[role])
        page.press("#key", "Enter")
        assert str(LIPPSTADT.node) in page.inner_text("#node-who")

    def grant(page: Page) -> None:
        page.goto(f"{console.url}/node/services")
        form = page.locator(f"section.service:has(code:text-is('{SERVICE}')) form.grant")
        form.locator("select").select_option("client")
        form.locator("input[name=subject]").fill(office)
        form.locator("button").click()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="en-GB", viewport={"width": 1200, "height": 800})
            page.set_default_timeout(15_000)
            # An observer is shown its role and no form to grant with.
            sign_in(page, ApiRole.OBSERVER)
            assert page.inner_text("#node-role") == "observer"
            page.goto(f"{console.url}/node/services")
            assert str(SERVICE) in page.inner_text("main")
            assert page.locator("form.grant").count() == 0
            page.click("text=Sign out")

            # The service administrator grants it: the refused call now succeeds.
            sign_in(page, ApiRole.SERVICE_ADMINISTRATOR)
            grant(page)
            assert str(SERVICE) in page.inner_text("[role=status]")
            rights = page.locator(f"table.rights[data-service='{SERVICE}']")
            assert office in rights.inner_text()
            assert _ask(console.net, office).status_code == 200
            page.screenshot(path=str(shots / "console-node-services.png"), full_page=True)

            # Revoked from its row: refused again.
            rights.locator(f"tr:has(code:text-is('{office}')) button").click()
            assert "Access revoked" in page.inner_text("[role=status]")
            assert (
                office not in page.locator(f"table.rights[data-service='{SERVICE}']").inner_text()
            )
            assert _ask(console.net, office).headers.get("X-Road-Error") == DENIED

            page.click("nav >> text=Node: Admin audit trail")
            trail = page.inner_text("#audit")
            assert "access.grant" in trail and "access.revoke" in trail
            page.click("nav >> text=Node: Diagnostics")
            assert page.get_attribute("#ready", "class") == "notice ok"
            page.screenshot(path=str(shots / "console-node-diagnostics.png"), full_page=True)
            page.click("nav >> text=Node: Traffic")
            page.screenshot(path=str(shots / "console-node-traffic.png"), full_page=True)

            # The log browser finds an exchange by its X-Road-Id; its proof bundle
            # downloads and verifies offline.
            xroad_id = _logged_exchange(console.net, "AZ-CONSOLE-0001")
            found = console.keys.get(f"{API}/log", console.keys.admin, xroad_id=xroad_id)
            entry = found.json()["entries"][0]["entry_id"]
            ready = _bundle(console.keys, f"{API}/log/{entry}/bundle", console.keys.admin)
            assert ready.status_code == 200, ready.text  # a tree head covers it now
            page.click("nav >> text=Node: Message log")
            page.fill("#log-xroad_id", xroad_id)
            page.press("#log-xroad_id", "Enter")
            rows = page.locator("#log-entries tbody tr")
            assert rows.count() == 2 and "AZ-CONSOLE-0001" in rows.first.inner_text()
            page.screenshot(path=str(shots / "console-node-log.png"), full_page=True)
            with page.expect_download() as download:
                page.locator(f"tr[data-entry='{entry}'] a.bundle").click()
            bundle = tmp_path / "bundle.jsonl"
            download.value.save_as(bundle)
            anchor = tmp_path / "anchor.pem"
            net = console.net
            anchor.write_bytes(net.ca_cert.read_bytes() + net.trust.tsa_cert.read_bytes())
            verified = _gateway("audit", "verify", str(bundle), "--anchor", str(anchor))
            assert verified.returncode == 0, verified.stdout + verified.stderr
        finally:
            browser.close()


def test_the_pages_offer_only_the_forms_the_role_may_use(console: NodeConsole) -> None:
    forms = {
        "/node/subsystems": 'id="add-subsystem"',
        "/node/services": 'id="import-service"',
        "/node/groups": 'id="add-group"',
        "/node/certificates": 'id="upload"',
        "/node/maintenance": 'action="/node/maintenance"',
    }
    with closing(console.signed_in(ApiRole.OBSERVER)) as observer:
        assert 'id="node-role">observer<' in observer.get("/node/diagnostics").text
        for path, form in forms.items():
            assert form not in observer.get(path).text, path
        # A form sent anyway is refused by the node, and the page says so.
        page = observer.get("/node/services")
        refused = observer.post(
            "/node/access/grant",
            data={"csrf": csrf_of(page), "service": str(SERVICE), "kind": "client",
                  "subject": str(ORDNUNGSAMT)},
        )  # fmt: skip
        assert "admin.forbidden" in refused.text
    with closing(console.signed_in(ApiRole.SYSTEM_ADMINISTRATOR)) as admin:
        assert 'id="node-role">system_administrator<' in admin.get("/node/diagnostics").text
        for path, form in forms.items():
            assert form in admin.get(path).text, path


def test_subsystems_groups_services_and_certificates_through_the_forms(
    console: NodeConsole,
) -> None:
    archive = str(LIPPSTADT.subsystem("melderegister").service("konsole"))
    office = str(LIPPSTADT.subsystem("ordnungsamt"))
    described = _Described()
    with closing(console.signed_in(ApiRole.SYSTEM_ADMINISTRATOR)) as admin:
        token = csrf_of(admin.get("/node/subsystems"))
        page = admin.post(
            "/node/subsystems/add",
            data={"csrf": token, "id": office, "connection_type": "http"},
        )
        assert f"<code>{office}</code>" in page.text and 'role="status"' in page.text
        page = admin.post(
            "/node/groups/add",
            data={"csrf": token, "owner": office, "code": "pruefer", "description": "Prüfung"},
        )
        assert f"<code>{office}:pruefer</code>" in page.text, page.text
        page = admin.post(
            "/node/groups/members",
            data={"csrf": token, "owner": office, "code": "pruefer", "member": str(GEWERBEAMT),
                  "action": "add"},
        )  # fmt: skip
        assert f"<code>{GEWERBEAMT}</code>" in page.text, page.text
        page = admin.post(
            "/node/groups/remove", data={"csrf": token, "owner": office, "code": "pruefer"}
        )
        assert f"<code>{office}:pruefer</code>" not in page.text, page.text
        page = admin.post("/node/subsystems/remove", data={"csrf": token, "id": office})
        assert f"<code>{office}</code>" not in page.text, page.text
        # A service imported from its registry's OpenAPI document, its endpoints read.
        page = admin.post(
            "/node/services/import",
            data={"csrf": token, "id": archive, "url": "http://127.0.0.1:9/archiv",
                  "openapi_url": described.url},
        )  # fmt: skip
        assert f"<code>{archive}</code>" in page.text and "<code>GET /personen</code>" in page.text
        # A CSR for the node's key downloads as PEM; a file that is no certificate is
        # refused by the node with its code.
        csr = admin.post(
            "/node/certificates/csr", data={"csrf": token, "owner": str(LIPPSTADT.node)}
        )
        assert csr.headers["Content-Disposition"].startswith("attachment;")
        assert csr.text.startswith("-----BEGIN CERTIFICATE REQUEST-----"), csr.text
        page = admin.post(
            "/node/certificates/import",
            data={"csrf": token},
            files={"certificate": ("cert.pem", b"not a certificate", "application/x-pem-file")},
        )
        assert 'role="alert"' in page.text and "client.certificate." in page.text, page.text
    described.close()


def test_uploads_over_the_limit_are_refused(console: NodeConsole) -> None:
    with closing(console.signed_in(ApiRole.SYSTEM_ADMINISTRATOR)) as admin:
        token = csrf_of(admin.get("/node/certificates"))
        for size, says in (
            (UPLOAD_LIMIT + 1, f"larger than {UPLOAD_LIMIT} bytes"),
            (100_000, "a certificate is at most"),
        ):
            page = admin.post(
                "/node/certificates/import",
                data={"csrf": token},
                files={"certificate": ("big.pem", b"A" * size, "application/x-pem-file")},
            )
            assert page.status_code == 400, page.text
            assert "console.bad_upload" in page.text and says in page.text


def _handshake(net: LocalNet, cert: Path) -> int:
    """A GET of Lippstadt's consumer TLS port presenting ``cert`` (its key beside it):
    the status, or an ``httpx.TransportError`` if the handshake refuses the certificate."""
    files = net.nodes[LIPPSTADT.ags]
    context = ssl.create_default_context(cafile=str(files.internal_cert))
    context.load_cert_chain(cert, cert.with_suffix(".key"))
    return httpx.get(
        f"{files.consumer_tls_url}/health/live", verify=context, timeout=30
    ).status_code


def _melderegister_as_client(net: LocalNet) -> httpx.Response:
    """Lippstadt's Melderegister names itself as the client on its own node's plain
    consumer port: what its connection type allows decides the answer."""
    return httpx.get(
        f"{net.nodes[LIPPSTADT.ags].consumer_url}/r1/{SERVICE}",
        headers={"X-Road-Client": str(MELDEREGISTER)},
        timeout=30,
    )


def _endpoints(page: httpx.Response, service: str) -> str:
    """The endpoint list of one service's section on the services page."""
    found = re.search(
        rf'<ul class="endpoints"[^>]*data-service="{re.escape(service)}">(.*?)</ul>',
        page.text,
        re.S,
    )
    assert found is not None, page.text
    return found.group(1)


def test_connection_types_client_certificates_and_service_descriptions(
    console: NodeConsole, tmp_path: Path
) -> None:
    fresh = tmp_path / "fachverfahren.pem"
    cert = new_self_signed(
        fresh, fresh.with_suffix(".key"), "fachverfahren", datetime.now(UTC), days=30, client=True
    )
    sha256 = fingerprint_sha256(cert)
    with pytest.raises(httpx.TransportError):
        _handshake(console.net, fresh)  # not registered: the handshake refuses it
    described = _Described()
    archive = str(LIPPSTADT.subsystem("melderegister").service("archiv"))
    with closing(console.signed_in(ApiRole.SERVICE_ADMINISTRATOR)) as admin:
        token = csrf_of(admin.get("/node/subsystems"))
        # The connection type, changed from the page, is what the node's edge enforces.
        page = admin.post(
            "/node/subsystems/connection-type",
            data={"csrf": token, "id": str(MELDEREGISTER), "connection_type": "https-no-auth"},
        )
        assert '<option value="https-no-auth" selected>' in page.text, page.text
        refused = _melderegister_as_client(console.net)
        assert refused.headers.get("X-Road-Error") == "client.ssl_authentication_failed"
        # An information system's certificate, uploaded, authenticates at once ...
        page = admin.post(
            "/node/subsystems/certificates/add",
            data={"csrf": token, "id": str(MELDEREGISTER)},
            files={"certificate": ("fv.pem", fresh.read_bytes(), "application/x-pem-file")},
        )
        assert f'data-sha256="{sha256}"' in page.text and "CN=fachverfahren" in page.text
        assert _handshake(console.net, fresh) == 200
        # ... twice is a conflict, a file that is no certificate is invalid ...
        again = admin.post(
            "/node/subsystems/certificates/add",
            data={"csrf": token, "id": str(MELDEREGISTER)},
            files={"certificate": ("fv.pem", fresh.read_bytes(), "application/x-pem-file")},
        )
        assert "admin.conflict" in again.text and 'role="alert"' in again.text
        bad = admin.post(
            "/node/subsystems/certificates/add",
            data={"csrf": token, "id": str(MELDEREGISTER)},
            files={"certificate": ("x.pem", b"no certificate", "application/x-pem-file")},
        )
        assert "admin.invalid" in bad.text
        # ... and removed, the next handshake refuses it again.
        page = admin.post(
            "/node/subsystems/certificates/remove",
            data={"csrf": token, "id": str(MELDEREGISTER), "sha256": sha256},
        )
        assert f'data-sha256="{sha256}"' not in page.text and 'role="status"' in page.text
        with pytest.raises(httpx.TransportError):
            _handshake(console.net, fresh)
        admin.post(
            "/node/subsystems/connection-type",
            data={"csrf": token, "id": str(MELDEREGISTER), "connection_type": "http"},
        )
        assert _melderegister_as_client(console.net).headers.get("X-Road-Error") != (
            "client.ssl_authentication_failed"
        )

        # A service from its OpenAPI document: refreshed after the registry changed it,
        # an endpoint added and removed by hand, disabled and enabled.
        page = admin.post(
            "/node/services/import",
            data={"csrf": token, "id": archive, "url": "http://127.0.0.1:9/archiv",
                  "openapi_url": described.url},
        )  # fmt: skip
        assert "<code>GET /personen/*</code>" in _endpoints(page, archive), page.text
        described.paths = {"/personen": {"get": {}, "post": {}}}
        page = admin.post("/node/services/refresh", data={"csrf": token, "id": archive})
        assert "<code>POST /personen</code>" in _endpoints(page, archive)
        assert "<code>GET /personen/*</code>" not in _endpoints(page, archive)
        page = admin.post(
            "/node/services/endpoints",
            data={"csrf": token, "id": archive, "method": "get", "path": "/akten",
                  "action": "add"},
        )  # fmt: skip
        assert "<code>GET /akten</code>" in _endpoints(page, archive), page.text
        page = admin.post(
            "/node/services/endpoints",
            data={"csrf": token, "id": archive, "method": "GET", "path": "/akten",
                  "action": "remove"},
        )  # fmt: skip
        assert "<code>GET /akten</code>" not in _endpoints(page, archive), page.text
        admin.post("/node/services/enabled", data={"csrf": token, "id": archive})
        services = console.keys.get(f"{API}/services", console.keys.admin).json()["services"]
        assert next(s for s in services if s["id"] == archive)["enabled"] is False
        admin.post("/node/services/enabled", data={"csrf": token, "id": archive, "enabled": "on"})
        services = console.keys.get(f"{API}/services", console.keys.admin).json()["services"]
        assert next(s for s in services if s["id"] == archive)["enabled"] is True
        admin.post("/node/services/remove", data={"csrf": token, "id": archive})
    described.close()
    trail = console.keys.get(f"{API}/audit", console.keys.admin).json()["records"]
    actions = [r["action"] for r in trail]
    for action in ("subsystem.connection_type", "client_certificate.add",
                   "client_certificate.remove", "service.refresh", "service.endpoint.add",
                   "service.endpoint.remove", "service.disable", "service.enable"):  # fmt: skip
        assert action in actions, action
    # The API itself: a subsystem not hosted here, a fingerprint that is none.
    auth = {"Authorization": f"Bearer {console.keys.admin}"}
    elsewhere = f"{console.keys.url}{API}/subsystems/DE-NRW:GOV:05974028:nirgendwo/certificates"
    answer = httpx.post(elsewhere, json={"pem": fresh.read_text()}, headers=auth, timeout=30)
    assert answer.status_code == 404 and answer.json()["type"] == "admin.not_found"
    answer = httpx.delete(f"{elsewhere}/not-hex", headers=auth, timeout=30)
    assert answer.status_code == 400 and answer.json()["type"] == "admin.invalid"
    # The registration officer may add subsystems but not say how they connect: the page
    # offers no such form, and one sent anyway is refused by the node.
    with closing(console.signed_in(ApiRole.REGISTRATION_OFFICER)) as officer:
        page = officer.get("/node/subsystems")
        assert 'action="/node/subsystems/connection-type"' not in page.text
        assert 'action="/node/subsystems/certificates/add"' not in page.text
        refused = officer.post(
            "/node/subsystems/certificates/add",
            data={"csrf": csrf_of(page), "id": str(MELDEREGISTER)},
            files={"certificate": ("fv.pem", fresh.read_bytes(), "application/x-pem-file")},
        )
        assert "admin.forbidden" in refused.text and f'data-sha256="{sha256}"' not in refused.text


def test_an_administrators_subsystems_and_services_in_the_browser(
    console: NodeConsole, tmp_path: Path
) -> None:
    """In Chromium, by keyboard where an operator would: a subsystem's connection type and
    an information system's certificate, a service disabled (its calls refused) and
    enabled again; then an observer's forged maintenance form, refused by the node."""
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    fresh = tmp_path / "fachverfahren.pem"
    cert = new_self_signed(
        fresh, fresh.with_suffix(".key"), "fachverfahren", datetime.now(UTC), days=30, client=True
    )
    sha256 = fingerprint_sha256(cert)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="en-GB", viewport={"width": 1200, "height": 800})
            page.set_default_timeout(15_000)
            page.goto(f"{console.url}/signin?api=node")
            page.fill("#key", console.keys.by_role[ApiRole.SERVICE_ADMINISTRATOR])
            page.press("#key", "Enter")
            page.click("nav >> text=Node: Subsystems")
            row = page.locator(f"tr[data-subsystem='{MELDEREGISTER}']")
            row.locator("select[name=connection_type]").select_option("https-no-auth")
            row.locator("form.connection button").focus()
            page.keyboard.press("Enter")
            assert "Connection type changed" in page.inner_text("[role=status]")
            refused = _melderegister_as_client(console.net)
            assert refused.headers.get("X-Road-Error") == "client.ssl_authentication_failed"

            row = page.locator(f"tr[data-subsystem='{MELDEREGISTER}']")
            row.locator("input[type=file]").set_input_files(str(fresh))
            row.locator("form.is-cert-upload button").click()
            assert "Certificate registered" in page.inner_text("[role=status]")
            listed = page.locator(f"li[data-sha256='{sha256}']")
            assert "CN=fachverfahren" in listed.inner_text()
            assert _handshake(console.net, fresh) == 200
            page.screenshot(path=str(shots / "console-node-subsystems.png"), full_page=True)
            listed.locator("button").click()
            assert page.locator(f"li[data-sha256='{sha256}']").count() == 0
            with pytest.raises(httpx.TransportError):
                _handshake(console.net, fresh)
            row = page.locator(f"tr[data-subsystem='{MELDEREGISTER}']")
            row.locator("select[name=connection_type]").select_option("http")
            row.locator("form.connection button").click()
            assert "http" in page.inner_text("[role=status]")

            # A service disabled from its section: its calls are refused until enabled.
            assert _ask(console.net, str(GEWERBEAMT)).status_code == 200
            page.click("nav >> text=Node: Services and access rights")
            section = page.locator(f"section.service:has(code:text-is('{SERVICE}'))")
            section.locator("form.toggle button").click()
            assert "Service disabled" in page.inner_text("[role=status]")
            disabled = _ask(console.net, str(GEWERBEAMT))
            assert disabled.headers.get("X-Road-Error") == "server.serverproxy.service_disabled"
            section = page.locator(f"section.service:has(code:text-is('{SERVICE}'))")
            assert section.locator(".service-state").get_attribute("data-enabled") == "no"
            section.locator("form.toggle button").click()
            assert "Service enabled" in page.inner_text("[role=status]")
            assert _ask(console.net, str(GEWERBEAMT)).status_code == 200
            page.click("text=Sign out")

            # An observer is offered no maintenance form; one built in the page anyway
            # (with the session's own CSRF token) is refused by the node, shown as an alert.
            page.goto(f"{console.url}/signin?api=node")
            page.fill("#key", console.keys.by_role[ApiRole.OBSERVER])
            page.press("#key", "Enter")
            page.click("nav >> text=Node: Maintenance mode")
            assert page.locator("form[action='/node/maintenance']").count() == 0
            page.evaluate(
                """() => {
                    const form = document.createElement('form');
                    form.method = 'post';
                    form.action = '/node/maintenance';
                    const fields = {enabled: 'on', reason: 'forged',
                        csrf: document.querySelector('input[name=csrf]').value};
                    for (const [name, value] of Object.entries(fields)) {
                        const input = document.createElement('input');
                        input.type = 'hidden'; input.name = name; input.value = value;
                        form.appendChild(input);
                    }
                    document.body.appendChild(form);
                    form.submit();
                }"""
            )
            page.wait_for_selector("[role=alert]")
            assert "admin.forbidden" in page.inner_text("[role=alert]")
            assert page.get_attribute("#maintenance-state", "class") == "good"
        finally:
            browser.close()
    assert _ask(console.net, str(GEWERBEAMT)).status_code == 200  # not in maintenance
