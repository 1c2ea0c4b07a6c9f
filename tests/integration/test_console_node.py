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
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.core.roles import ApiRole
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
from tests.integration.test_node_admin import DENIED, Keys, _ask
from tests.integration.test_portal_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.integration


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
    net.write_configs()
    port = free_port()
    log = (root / "console.log").open("w")
    proc = None
    try:
        net.start_node(SOEST.ags)
        net.start_node(LIPPSTADT.ags)
        keys = Keys(net, LIPPSTADT.ags)
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "console", "serve", "--node-url", keys.url,
             "--listen", f"127.0.0.1:{port}"],
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
            # An observer's grant is refused by the node's API, and nothing changes.
            sign_in(page, ApiRole.OBSERVER)
            grant(page)
            assert "admin.forbidden" in page.inner_text("[role=alert]")
            assert _ask(console.net, office).headers.get("X-Road-Error") == DENIED
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
        finally:
            browser.close()
