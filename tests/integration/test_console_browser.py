"""The console in headless Chromium (Playwright, Debian's chromium, as
tests/integration/test_portal_browser.py drives it): a registration officer approves
Iserlohn's node by keyboard and mouse, an observer is offered no decision, an auditor
verifies a bundle (pass) and a tampered one (the bad piece marked).

Screenshots of the pages go to ``$CONSOLE_SCREENSHOTS`` when set (docs/img/ is made that
way), else to the test's temporary directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_central import ISERLOHN
from tests.integration.test_console import Stack, start_stack, tampered
from tests.integration.test_portal_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.integration


FORGED_FORM = """(action) => {
    const form = document.createElement('form');
    form.method = 'post';
    form.action = action;
    const csrf = document.createElement('input');
    csrf.type = 'hidden';
    csrf.name = 'csrf';
    csrf.value = document.querySelector('input[name=csrf]').value;
    form.appendChild(csrf);
    document.body.appendChild(form);
    form.submit();
}"""
"""A form the page does not offer, sent from it as a user could with the developer
tools: the console passes it on (its CSRF token is right), the API refuses it."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from start_stack(tmp_path_factory.mktemp("console-browser"))


def test_an_operators_day_in_the_console(stack: Stack, tmp_path: Path) -> None:
    from playwright.sync_api import Page, sync_playwright

    shots = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    iserlohn, soest = stack.pending["Iserlohn"], stack.pending["Soest"]

    def shot(page: Page, name: str) -> None:
        page.screenshot(path=str(shots / f"console-{name}.png"), full_page=True)

    def sign_in(page: Page, role: str) -> None:
        page.goto(f"{stack.console}/signin")
        page.fill("#key", stack.keys[role])
        page.press("#key", "Enter")  # the form is sent from the keyboard
        assert page.inner_text("#role") == role

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="en-GB", viewport={"width": 1200, "height": 800})
            page.set_default_timeout(15_000)
            page.goto(stack.console)
            # keyboard: the first Tab reaches the skip link, which lands in the main part
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.className") == "skip"
            page.keyboard.press("Enter")
            assert page.evaluate("document.activeElement.id") == "main"

            # a registration officer approves Iserlohn's node
            sign_in(page, "registration_officer")
            page.goto(f"{stack.console}/central/requests")
            assert page.is_visible(f"#request-{iserlohn}")
            shot(page, "requests")
            page.click(f"#request-{iserlohn} form[action$='/approve'] button")
            assert iserlohn in page.inner_text("[role=status]")
            assert not page.is_visible(f"#request-{iserlohn}")
            assert stack.status_of(iserlohn) == "approved"
            page.click("nav >> text=Members and nodes")
            assert f"{ISERLOHN}/ss1" in page.inner_text("#nodes")
            shot(page, "members")
            page.click("nav >> text=Configuration versions")
            assert len(page.query_selector_all("#versions tbody tr")) >= 2
            shot(page, "configuration")
            page.click("nav >> text=Audit trail")
            assert "request.approve" in page.inner_text("#audit")
            page.click("text=Sign out")

            # an observer sees the requests but is offered no decision
            sign_in(page, "observer")
            page.goto(f"{stack.console}/central/requests")
            assert page.is_visible(f"#request-{soest}") and page.is_visible("#may-not-decide")
            assert page.query_selector(f"#request-{soest} button") is None
            # an approval built in the page anyway (with the session's own CSRF token) is
            # refused by the central, and the page shows its code as an alert
            page.evaluate(FORGED_FORM, f"/central/requests/{soest}/approve")
            page.wait_for_selector("[role=alert]")
            assert "central.forbidden" in page.inner_text("[role=alert]")
            assert page.is_visible(f"#request-{soest}")
            assert stack.status_of(soest) == "pending"
            page.click("nav >> text=Global groups")
            assert "console-group" in page.inner_text("main")
            shot(page, "groups")
            page.click("nav >> text=Audit trail")
            assert "request.approve" in page.inner_text("#audit")
            shot(page, "central-audit")

            # an auditor verifies a bundle, then a tampered one
            page.goto(f"{stack.console}/audit")
            page.set_input_files("#bundle", str(stack.bundle))
            page.set_input_files("#anchor", str(stack.anchor))
            page.click("main form button")
            assert page.inner_text("#report").startswith("OK   bundle of node ")
            assert page.get_attribute("#verdict", "class") == "pass"
            shot(page, "auditor-pass")
            bad, entry_id = tampered(stack.bundle, tmp_path / "bad.jsonl")
            page.set_input_files("#bundle", str(bad))
            page.set_input_files("#anchor", str(stack.anchor))
            page.click("main form button")
            assert page.get_attribute("#verdict", "class") == "fail"
            assert page.inner_text("#bad-piece").startswith(f"entry {entry_id}")
            shot(page, "auditor-fail")

            # German, by the switch
            page.click("text=Deutsch")
            assert page.inner_text("h1") == "Prüfpaket verifizieren"
            assert page.get_attribute("html", "lang") == "de"
        finally:
            browser.close()
