"""The console's pure parts: the language choice and its catalogue, sessions (idle
expiry, renewal at sign-in, the bound on their number, the CSRF comparison) and the
redirect guard."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from gateway.console.frame import safe_next
from gateway.console.i18n import CATALOGUE, negotiate, translate
from gateway.console.sessions import SessionStore


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "en"),
        ("", "en"),
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("en-GB,de;q=0.9", "en"),
        ("fr-FR,de;q=0.5,en;q=0.4", "de"),
        ("de;q=0.2,en;q=0.9", "en"),
        ("de;q=0,en;q=0.1", "en"),
        ("fr, it", "en"),
        ("de;q=bogus, en", "en"),
        ("DE", "de"),
    ],
)
def test_the_language_follows_accept_language(header: str | None, language: str) -> None:
    assert negotiate(header) == language


def test_every_phrase_has_both_languages_and_every_template_key_exists() -> None:
    for key, (english, german) in CATALOGUE.items():
        assert english.strip() and german.strip(), key
    assert translate("sign_in", "de") == "Anmelden" and translate("sign_in", "en") == "Sign in"
    used: set[str] = set()
    folder = resources.files("gateway.console").joinpath("templates")
    for template in folder.iterdir():
        used |= set(re.findall(r"t\('([a-z_]+)'\)", template.read_text("utf-8")))
        used |= set(re.findall(r"'(?:/[a-z/]+)', '([a-z_]+)'\)", template.read_text("utf-8")))
    assert used, "no phrase found in the templates"
    assert used - set(CATALOGUE) == set()
    with pytest.raises(KeyError):
        translate("no_such_phrase", "en")


def test_a_session_ends_when_idle_and_is_renewed_at_sign_in() -> None:
    store = SessionStore(idle_seconds=60)
    session = store.new(now=0.0, language="de")
    assert store.get(session.id, now=59.0) is session
    assert store.get(session.id, now=118.0) is session  # seen at 59, so still live
    assert store.get(session.id, now=179.0) is None
    assert store.get(session.id, now=180.0) is None and len(store) == 0
    old = store.new(now=200.0, language="de")
    old.keys["node"] = "gwk_node"
    new = store.renew(old, now=201.0)
    assert (new.id, new.csrf) != (old.id, old.csrf) and new.language == "de"
    assert new.keys == {"node": "gwk_node"}, "a second sign-in keeps the first"
    assert store.get(old.id, now=202.0) is None and store.get(new.id, now=202.0) is new
    assert store.get(None, now=202.0) is None and store.get("", now=202.0) is None


def test_the_number_of_sessions_is_bounded_least_recent_first() -> None:
    store = SessionStore(limit=2)
    first, second = store.new(0.0), store.new(1.0)
    assert store.get(first.id, 2.0) is first  # first is now the most recent
    store.new(3.0)
    assert len(store) == 2
    assert store.get(second.id, 4.0) is None and store.get(first.id, 4.0) is first


def test_the_csrf_token_must_be_the_sessions_own() -> None:
    store = SessionStore()
    one, two = store.new(0.0), store.new(0.0)
    assert one.csrf_matches(one.csrf)
    assert not one.csrf_matches(two.csrf)
    assert not one.csrf_matches(None) and not one.csrf_matches("")
    assert not one.signed_in and not one.may("central", "read")
    one.keys["central"], one.who["central"] = "gwk_x", {"permissions": ["read"]}
    assert one.signed_in and one.may("central", "read")
    assert not one.may("central", "requests.decide") and not one.may("node", "read")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/central/requests", "/central/requests"),
        ("/central/requests?status=all", "/central/requests?status=all"),
        (None, "/"),
        ("", "/"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("central", "/"),
    ],
)
def test_redirects_stay_on_the_console(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_traffic_counts_records_per_hour_service_and_error() -> None:
    from datetime import UTC, datetime

    from gateway.console.traffic import since, traffic

    now = datetime(2026, 3, 2, 14, 25, tzinfo=UTC)
    assert since(now, 3) == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    records = [
        {"request_in": "2026-03-02T12:00:00.000Z", "service": "A", "succeeded": True},
        {"request_in": "2026-03-02T12:59:59.999Z", "service": "A", "succeeded": False,
         "error_code": "server.serverproxy.access_denied"},
        {"request_in": "2026-03-02T14:10:00.000Z", "service": "B", "succeeded": True},
        {"request_in": "2026-03-02T14:11:00.000Z", "service": "B", "succeeded": True},
        {"request_in": "2026-03-02T11:59:59.999Z", "service": "A", "succeeded": True},  # before
        {"request_in": "not a time", "service": "A", "succeeded": True},
        {"request_in": "2026-03-02T13:00:00", "service": "A", "succeeded": True},  # no zone
    ]  # fmt: skip
    counted = traffic(records, now, hours=3)
    assert [(h.start.hour, h.succeeded, h.failed) for h in counted.hours] == [
        (12, 1, 1),
        (13, 0, 0),
        (14, 2, 0),
    ]
    assert counted.peak == 2
    assert counted.by_service == [("A", 1, 1), ("B", 2, 0)]
    assert counted.errors == [("server.serverproxy.access_denied", 1)]
