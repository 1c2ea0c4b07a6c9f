"""The web console against a real central (``gateway central serve``) and a real console
(``gateway console serve``), both processes on loopback, driven by plain HTTP.

Sign-in by API key, the session cookie's flags, CSRF on every form, a role without the
right refused by the API and the refusal shown, the central's pages, the auditor page's
verdict against ``gateway audit verify``'s own output, German and English.
tests/integration/test_console_browser.py drives the same console in Chromium.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.audit.export import Selection, export_bundle
from gateway.core.ids import NodeId
from gateway.sandbox.bench.audit import START, build_log
from gateway.trust.ca_store import init_ca
from tests.integration.test_central import (
    INSTANCE,
    ISERLOHN,
    SOEST,
    _free_port,
    auth_body,
    gateway,
    party,
)

pytestmark = pytest.mark.integration

GATEWAY = [sys.executable, "-m", "gateway"]


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{url} did not start"
            time.sleep(0.1)


@dataclass
class Stack:
    """A central with Iserlohn's and Lippstadt's nodes pending, and a console over it."""

    dir: Path
    central: str
    console: str
    keys: dict[str, str]
    pending: dict[str, str]
    """member name -> the id of its node's pending registration request."""
    bundle: Path
    anchor: Path

    def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.central}/admin/v1{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.keys['system_administrator']}"},
            timeout=30,
        )

    def status_of(self, request_id: str) -> str:
        listed: list[dict[str, str]] = self.admin("GET", "/requests").json()
        return next(r["status"] for r in listed if r["id"] == request_id)

    def browser(self) -> httpx.Client:
        return httpx.Client(base_url=self.console, timeout=60, follow_redirects=True)


def start_stack(base: Path) -> Iterator[Stack]:
    """Start both processes; yields the stack, ends them after."""
    ca = base / "ca"
    ca.mkdir()
    init_ca(ca, "Test CA", datetime.now(UTC))
    central_port, console_port = _free_port(), _free_port()
    central = f"http://127.0.0.1:{central_port}"
    console = f"http://127.0.0.1:{console_port}"
    gateway(
        "central", "init", "--dir", str(base / "c"), "--instance", INSTANCE,
        "--ca-cert", str(ca / "ca.pem"), "--url", central, "--insecure-plain-keys",
    )  # fmt: skip
    admin_key = (base / "c" / "admin.key").read_text().strip()
    logs = [(base / "central.log").open("w"), (base / "console.log").open("w")]
    procs = [
        subprocess.Popen(
            [*GATEWAY, "central", "serve", "--dir", str(base / "c"), "--port", str(central_port)],
            stdout=logs[0], stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [*GATEWAY, "console", "serve", "--central-url", central,
             "--listen", f"127.0.0.1:{console_port}"],
            stdout=logs[1], stderr=subprocess.STDOUT,
        ),
    ]  # fmt: skip
    try:
        _wait(f"{central}/openapi.json", procs[0], base / "central.log")
        _wait(f"{console}/", procs[1], base / "console.log")
        headers = {"Authorization": f"Bearer {admin_key}"}
        keys = {"system_administrator": admin_key}
        for role in ("registration_officer", "observer"):
            r = httpx.post(f"{central}/admin/v1/api-keys", headers=headers, timeout=30,
                           json={"name": f"console-{role}", "role": role})  # fmt: skip
            assert r.status_code == 201, r.text
            keys[role] = r.json()["key"]
        pending = {}
        for name, member in (("Iserlohn", ISERLOHN), ("Soest", SOEST)):
            r = httpx.post(f"{central}/admin/v1/members", headers=headers, timeout=30,
                           json={"id": str(member), "name": f"Stadt {name}"})  # fmt: skip
            assert r.status_code == 201, r.text
            who = party(ca, base / name, NodeId.parse(f"{member}/ss1"))
            r = httpx.post(f"{central}/registration/v1/auth-cert", json=auth_body(who), timeout=30)
            assert r.status_code == 202, r.text
            pending[name] = r.json()["id"]
        r = httpx.put(f"{central}/admin/v1/groups/{INSTANCE}/console-group", headers=headers,
                      json={"description": "Melderegister readers"}, timeout=30)  # fmt: skip
        assert r.status_code == 200, r.text
        log = build_log(base / "auditlog", 6, head_every=4)
        bundle = base / "bundle.jsonl"
        export_bundle(log.db, bundle, Selection(all=True), now=START + timedelta(days=1))
        yield Stack(base, central, console, keys, pending, bundle, log.anchor_path)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        for handle in logs:
            handle.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from start_stack(tmp_path_factory.mktemp("console"))


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, page.text
    return found.group(1)


def sign_in(stack: Stack, role: str) -> tuple[httpx.Client, str]:
    """A client signed in with ``role``'s key, and its session's CSRF token."""
    client = stack.browser()
    form = client.get("/signin")
    page = client.post("/signin", data={"csrf": csrf_of(form), "key": stack.keys[role]})
    assert page.status_code == 200, page.text
    assert f'id="role">{role}<' in page.text
    return client, csrf_of(page)


def tampered(bundle: Path, where: Path) -> tuple[Path, int]:
    """The bundle with one entry's kind changed; the entry's id."""
    lines = bundle.read_bytes().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if b'"kind":"response"' in line)
    lines[index] = lines[index].replace(b'"kind":"response"', b'"kind":"request"', 1)
    where.write_bytes(b"".join(lines))
    entry_id = int(re.search(rb'"id":(\d+)', lines[index]).group(1))  # type: ignore[union-attr]
    return where, entry_id


# --- sessions and CSRF --------------------------------------------------------------------


def test_a_form_without_the_sessions_csrf_token_is_refused(stack: Stack) -> None:
    key = stack.keys["registration_officer"]
    # no session at all
    r = httpx.post(f"{stack.console}/signin", data={"key": key}, timeout=30)
    assert r.status_code == 403 and "console.csrf" in r.text
    with stack.browser() as client:
        token = csrf_of(client.get("/signin"))
        for data in ({"key": key}, {"key": key, "csrf": token + "x"}):
            r = client.post("/signin", data=data)
            assert r.status_code == 403, r.text
            assert 'id="error-code">console.csrf<' in r.text
            assert 'id="role"' not in r.text
    # signed in, a forged approval without the token does nothing
    client, _ = sign_in(stack, "registration_officer")
    with closing(client):
        request_id = stack.pending["Soest"]
        r = client.post(f"/central/requests/{request_id}/approve", data={})
        assert r.status_code == 403 and "console.csrf" in r.text
        other = stack.browser()
        foreign = csrf_of(other.get("/signin"))  # another session's token
        r = client.post(f"/central/requests/{request_id}/approve", data={"csrf": foreign})
        assert r.status_code == 403
        other.close()
    assert stack.status_of(request_id) == "pending"


def test_the_session_cookie_is_strict_and_the_key_never_in_a_page(stack: Stack) -> None:
    with stack.browser() as client:
        first = client.get("/signin")
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # plain HTTP here; over TLS it is set
        before = client.cookies["gw_console"]
        key = stack.keys["observer"]
        pages = [client.post("/signin", data={"csrf": csrf_of(first), "key": key})]
        assert client.cookies["gw_console"] != before, "the session id must change at sign-in"
        for path in ("/", "/central/members", "/central/requests", "/central/groups",
                     "/central/configuration", "/central/audit", "/audit"):  # fmt: skip
            pages.append(client.get(path))
        for page in pages:
            assert page.status_code == 200, page.url
            assert key not in page.text and key not in str(page.url)
            assert page.headers["cache-control"] == "no-store"
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        signed_in = client.cookies["gw_console"]
        signed_out = client.post("/signout", data={"csrf": csrf_of(pages[-1])})
        assert 'id="role"' not in signed_out.text
        assert client.get("/central/members").url.path == "/signin"
    # Sign-out ends the session itself, not only the browser's cookie: a copy of the
    # cookie replayed afterwards is a stranger's.
    with stack.browser() as replay:
        replay.cookies.set("gw_console", signed_in)
        page = replay.get("/central/members")
        assert page.url.path == "/signin" and 'id="role"' not in page.text


def test_a_session_lives_in_the_process_that_made_it(stack: Stack) -> None:
    """ADR 0052: another console process (as after a restart) does not know the session;
    it sends the browser to sign in, never to an error, and the key was never written."""
    client, _ = sign_in(stack, "observer")
    session = client.cookies["gw_console"]
    port = _free_port()
    log = stack.dir / "console-2.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*GATEWAY, "console", "serve", "--central-url", stack.central,
             "--listen", f"127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{port}/", proc, log)
        page = httpx.get(
            f"http://127.0.0.1:{port}/central/members",
            headers={"Cookie": f"gw_console={session}"},
            timeout=30,
        )
        assert page.status_code == 303 and page.headers["location"].startswith("/signin?")
        fresh = page.cookies["gw_console"]
        assert fresh and fresh != session  # a new session, signed out
        assert client.get("/central/members").status_code == 200  # still signed in there
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        client.close()
    assert stack.keys["observer"] not in log.read_text()


def test_a_key_the_api_refuses_does_not_sign_in(stack: Stack) -> None:
    revoked = httpx.post(f"{stack.central}/admin/v1/api-keys", timeout=30,
                         headers={"Authorization": f"Bearer {stack.keys['system_administrator']}"},
                         json={"name": "console-revoked", "role": "observer"}).json()  # fmt: skip
    stack.admin("DELETE", f"/api-keys/{revoked['id']}").raise_for_status()
    with stack.browser() as client:
        for key in ("gwk_not-a-key", revoked["key"], ""):
            page = client.post("/signin", data={"csrf": csrf_of(client.get("/signin")), "key": key})
            assert page.status_code == 401, key
            assert "console.sign_in_refused" in page.text and 'id="role"' not in page.text
        assert client.get("/central/requests").url.path == "/signin"


# --- the central's pages --------------------------------------------------------------------


def test_an_observer_is_offered_no_decision_and_refused_by_the_api(stack: Stack) -> None:
    client, token = sign_in(stack, "observer")
    request_id = stack.pending["Soest"]
    with closing(client):
        page = client.get("/central/requests")
        assert request_id in page.text and 'id="may-not-decide"' in page.text
        assert f"/central/requests/{request_id}/approve" not in page.text
        # the form is forged with a good token: the central's API refuses, the page says so
        page = client.post(f"/central/requests/{request_id}/approve", data={"csrf": token})
        assert page.url.path == "/central/requests"
        assert "central.forbidden" in page.text and 'role="alert"' in page.text
    assert stack.status_of(request_id) == "pending"


def test_a_registration_officer_rejects_with_a_reason(stack: Stack) -> None:
    client, token = sign_in(stack, "registration_officer")
    request_id = stack.pending["Soest"]
    with closing(client):
        page = client.get("/central/requests")
        assert f"/central/requests/{request_id}/reject" in page.text
        page = client.post(
            f"/central/requests/{request_id}/reject",
            data={"csrf": token, "reason": "Knoten noch nicht abgenommen"},
        )
        assert f"{request_id}" in page.text and 'role="status"' in page.text
        everything = client.get("/central/requests?status=all").text
        assert "rejected: Knoten noch nicht abgenommen" in everything
    assert stack.status_of(request_id) == "rejected"


def test_the_central_pages_show_what_the_api_holds(stack: Stack) -> None:
    client, _ = sign_in(stack, "observer")
    versions = stack.admin("GET", "/configuration/versions").json()
    with closing(client):
        members = client.get("/central/members").text
        assert "Stadt Iserlohn" in members and str(ISERLOHN) in members
        groups = client.get("/central/groups").text
        assert f"{INSTANCE}/console-group" in groups and "Melderegister readers" in groups
        configuration = client.get("/central/configuration").text
        assert f'id="root-sha256">{versions["root"]["sha256"]}<' in configuration
        for version in versions["versions"]:
            assert f'<th scope="row">{version["serial"]}</th>' in configuration
        audit = client.get("/central/audit").text
        assert "group.put" in audit and "member.add" in audit


def test_german_by_accept_language_and_by_the_switch(stack: Stack) -> None:
    with stack.browser() as client:
        page = client.get("/signin", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
        assert '<html lang="de">' in page.text and "Anmelden" in page.text
        page = client.get("/language/en", params={"next": "/signin"})
        assert page.url.path == "/signin"
        page = client.get("/signin", headers={"Accept-Language": "de-DE"})
        assert '<html lang="en">' in page.text and "Sign in" in page.text
        # the switch never leaves the console
        page = client.get("/language/de", params={"next": "//evil.example/"})
        assert page.url.host == "127.0.0.1" and page.url.path == "/"
        assert "Prüfpaket verifizieren" in page.text


# --- the auditor page -----------------------------------------------------------------------


def _cli_verify(bundle: Path, anchor: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GATEWAY, "audit", "verify", str(bundle), "--anchor", str(anchor), "--jobs", "1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _upload(client: httpx.Client, bundle: Path, anchor: Path) -> httpx.Response:
    token = csrf_of(client.get("/audit"))
    return client.post(
        "/audit",
        data={"csrf": token},
        files={"bundle": bundle.read_bytes(), "anchor": anchor.read_bytes()},
    )


def _report(page: httpx.Response) -> list[str]:
    found = re.search(r'<pre id="report">(.*?)</pre>', page.text, re.S)
    assert found is not None, page.text
    return html.unescape(re.sub(r"</?mark>", "", found.group(1))).splitlines()


def test_the_auditor_page_reports_as_the_cli_prints(stack: Stack, tmp_path: Path) -> None:
    with stack.browser() as client:
        good = _upload(client, stack.bundle, stack.anchor)
        assert good.status_code == 200
        printed = _cli_verify(stack.bundle, stack.anchor)
        assert printed.returncode == 0
        # the last line is the time taken, different on every run
        assert _report(good)[:-1] == printed.stdout.splitlines()[:-1]
        assert _report(good)[0].startswith("OK   bundle of node ")
        bad, entry_id = tampered(stack.bundle, tmp_path / "bad.jsonl")
        refused = _upload(client, bad, stack.anchor)
        assert refused.status_code == 422
        printed = _cli_verify(bad, stack.anchor)
        assert printed.returncode == 1
        assert _report(refused) == printed.stderr.splitlines()
        assert f'<mark id="bad-piece">entry {entry_id}' in refused.text
        missing = client.post("/audit", data={"csrf": csrf_of(client.get("/audit"))},
                              files={"bundle": stack.bundle.read_bytes()})  # fmt: skip
        assert missing.status_code == 400 and "console.bad_upload" in missing.text
        bad_anchor = client.post(
            "/audit",
            data={"csrf": csrf_of(client.get("/audit"))},
            files={"bundle": stack.bundle.read_bytes(), "anchor": b"{}"},
        )
        assert bad_anchor.status_code == 400 and "console.bad_upload" in bad_anchor.text


def test_over_tls_the_session_cookie_is_secure(tmp_path: Path) -> None:
    """``--tls-cert``/``--tls-key``: the console serves HTTPS and marks its cookie Secure."""
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "console test (test fixture)")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "console.pem", tmp_path / "console.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    port = _free_port()
    log = tmp_path / "console.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*GATEWAY, "console", "serve", "--listen", f"127.0.0.1:{port}",
             "--tls-cert", str(cert_path), "--tls-key", str(key_path)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        trust = ssl.create_default_context(cafile=str(cert_path))
        deadline = time.monotonic() + 20
        while True:
            try:
                page = httpx.get(f"https://127.0.0.1:{port}/audit", verify=trust, timeout=5)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the console did not start"
                time.sleep(0.1)
        assert page.status_code == 200
        cookie = page.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # no central configured: its pages say so, with the code
        missing = httpx.get(f"https://127.0.0.1:{port}/central/members", verify=trust, timeout=5)
        assert missing.status_code == 404 and "console.not_configured" in missing.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
