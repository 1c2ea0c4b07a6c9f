"""A node's settings: one consistent value, its document and TOML, and the pure changes.

The settings change while the node runs, so every version must be whole: these tests
build settings the ways an operator does (node.toml, a document, TOML, a change) and
check that each refuses what is inconsistent with a stable code, and that a document or
TOML read back gives the same settings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.core.errors import GatewayError
from gateway.core.ids import GroupId, SubsystemId
from gateway.core.policy import LocalGroupId
from gateway.node.clientauth import ConnectionType
from gateway.node.settings import mutations as m
from gateway.node.settings.errors import SettingsCode, SettingsError
from gateway.node.settings.model import NodeSettings

PROVIDER = SubsystemId("DE", "GOV", "05974028", "melderegister")
SERVICE = PROVIDER.service("einfacheAuskunft")
OTHER = PROVIDER.service("erweiterteAuskunft")
CLIENT = SubsystemId("DE", "GOV", "05974040", "gewerbeamt")
SECOND = SubsystemId("DE", "GOV", "05974040", "ordnungsamt")
CITIES = GroupId("DE", "staedte")


def _base() -> NodeSettings:
    settings = m.add_subsystem(NodeSettings(), str(PROVIDER))
    settings = m.add_service(
        settings, {"id": str(SERVICE), "url": "http://127.0.0.1:9/personen", "timeout_seconds": 2.5}
    )
    return m.grant_access(settings, str(SERVICE), client=str(CLIENT), methods=["get"])


def _allowed(settings: NodeSettings, client: SubsystemId, method: str = "GET") -> bool:
    try:
        settings.policy().check(client, frozenset(), SERVICE, method, "/personen/1")
    except GatewayError:
        return False
    return True


def _refused(code: SettingsCode) -> pytest.RaisesExc[SettingsError]:
    return pytest.raises(SettingsError, match=f"^{code.value}: ")


# ---------------------------------------------------------------------- documents


def test_a_document_round_trips_to_equal_settings() -> None:
    settings = m.add_local_group(_base(), str(PROVIDER), "aemter", "Soest's offices", [str(SECOND)])
    settings = m.grant_access(settings, str(SERVICE), local_group="aemter", paths=["/personen/*"])
    settings = m.add_endpoint(settings, str(SERVICE), "GET", "/personen/{id}")
    document = settings.to_document()
    assert document["format"] == 1
    assert NodeSettings.from_document(document) == settings
    assert NodeSettings.from_document(settings.to_json()) == settings
    assert json.loads(settings.to_json()) == document


def test_toml_export_reads_back_to_equal_settings(tmp_path: Path) -> None:
    settings = m.add_subsystem(_base(), str(CLIENT), ConnectionType.HTTP)
    settings = m.add_local_group(settings, str(PROVIDER), 'q"uote', "tab\there ü", [str(CLIENT)])
    settings = m.grant_access(settings, str(SERVICE), local_group='q"uote')
    settings = m.set_purpose_binding(settings, str(SERVICE), require_issue=True)
    settings = m.add_endpoint(settings, str(SERVICE), "post", "/suche")
    text = settings.to_toml()
    assert "[[services]]" in text and "[[local_groups]]" in text
    assert NodeSettings.from_toml(text, tmp_path) == settings
    path = tmp_path / "node-settings.toml"
    path.write_text(text, "utf-8")
    assert NodeSettings.read_toml(path) == settings


def test_toml_import_resolves_tls_paths_against_the_file(tmp_path: Path) -> None:
    text = f"""
[node]
id = "ignored: an import takes only the settings sections"

[[services]]
id = "{SERVICE}"
url = "https://registry.example/personen"
tls_ca = "registry-ca.pem"
"""
    settings = NodeSettings.from_toml(text, tmp_path)
    section = settings.service(str(SERVICE))
    assert section is not None and section.tls_ca == tmp_path / "registry-ca.pem"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[[acess]]\nservice = 'x'\n", "acess"),
        ("[[services]]\nid = 'DE/GOV/1/a/b'\nurl = 'ftp://x'\n", "services.0.url"),
        ("[[services]]\nid = 'not a service'\nurl = 'http://x'\n", "services.0.id"),
        ("[[clients]]\nid = 'DE/GOV/1/a'\nconnection_type = 'telnet'\n", "clients.0"),
        ("[[access]]\nservice = 'DE/GOV/1/a/b'\n", "exactly one of client"),
        ("this is = not toml =", "not valid TOML"),
    ],
)
def test_bad_toml_is_refused_saying_where(text: str, where: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=where) as refused:
        NodeSettings.from_toml(text, tmp_path)
    assert refused.value.code is SettingsCode.INVALID


def test_a_document_is_refused_whole() -> None:
    with _refused(SettingsCode.INVALID):
        NodeSettings.from_document(b"[1, 2]")
    with _refused(SettingsCode.INVALID):
        NodeSettings.from_document({"format": 2})
    with _refused(SettingsCode.INVALID):
        NodeSettings.from_document({"services": [], "surprise": True})
    twice = {"clients": [{"id": str(CLIENT)}, {"id": str(CLIENT)}]}
    with _refused(SettingsCode.DUPLICATE):
        NodeSettings.from_document(twice)
    dangling = {"access": [{"service": str(SERVICE), "local_group": "nobody"}]}
    with _refused(SettingsCode.UNKNOWN_LOCAL_GROUP):
        NodeSettings.from_document(dangling)


# ---------------------------------------------------------------------- access


def test_grant_and_revoke_per_client_and_endpoint() -> None:
    settings = _base()
    assert _allowed(settings, CLIENT)
    assert not _allowed(settings, CLIENT, "POST")  # the grant names GET only
    assert not _allowed(settings, SECOND)
    wider = m.grant_access(settings, str(SERVICE), client=str(SECOND))
    assert _allowed(wider, SECOND, "POST")
    narrower = m.revoke_access(wider, str(SERVICE), client=str(CLIENT), methods=["GET"])
    assert not _allowed(narrower, CLIENT)
    assert _allowed(narrower, SECOND)
    with _refused(SettingsCode.UNKNOWN_ACCESS):  # the GET-only right is gone already
        m.revoke_access(narrower, str(SERVICE), client=str(CLIENT), methods=["GET"])
    with _refused(SettingsCode.DUPLICATE):
        m.grant_access(wider, str(SERVICE), client=str(SECOND))
    with _refused(SettingsCode.UNKNOWN_SERVICE):
        m.grant_access(settings, str(OTHER), client=str(CLIENT))


def test_a_global_group_grant() -> None:
    settings = m.grant_access(_base(), str(SERVICE), group=str(CITIES))
    policy = settings.policy()
    assert policy.grants_for(SECOND, frozenset({CITIES}), SERVICE)
    assert not policy.grants_for(SECOND, frozenset(), SERVICE)


def test_local_group_membership_is_resolved_when_checked() -> None:
    settings = m.add_local_group(_base(), str(PROVIDER), "aemter", "", [])
    settings = m.grant_access(settings, str(SERVICE), local_group="aemter")
    assert not _allowed(settings, SECOND)
    joined = m.add_local_group_members(settings, str(PROVIDER), "aemter", [str(SECOND)])
    assert _allowed(joined, SECOND)  # the grant is unchanged; the membership counts
    left = m.remove_local_group_members(joined, str(PROVIDER), "aemter", [str(SECOND)])
    assert not _allowed(left, SECOND)
    assert left.local_group_members() == {LocalGroupId(PROVIDER, "aemter"): frozenset()}
    with _refused(SettingsCode.DUPLICATE):
        m.add_local_group_members(joined, str(PROVIDER), "aemter", [str(SECOND)])
    with _refused(SettingsCode.UNKNOWN_MEMBER):
        m.remove_local_group_members(left, str(PROVIDER), "aemter", [str(SECOND)])
    with _refused(SettingsCode.IN_USE):
        m.remove_local_group(joined, str(PROVIDER), "aemter")
    revoked = m.revoke_access(joined, str(SERVICE), local_group="aemter")
    assert m.remove_local_group(revoked, str(PROVIDER), "aemter").local_groups == ()


def test_a_local_group_of_another_subsystem_grants_nothing() -> None:
    other_owner = str(CLIENT)  # a group of Soest's, not of the service's subsystem
    settings = m.add_local_group(_base(), other_owner, "aemter", "", [str(SECOND)])
    with _refused(SettingsCode.UNKNOWN_LOCAL_GROUP):
        m.grant_access(settings, str(SERVICE), local_group="aemter")


def test_local_group_changes_are_refused_clearly() -> None:
    settings = m.add_local_group(_base(), str(PROVIDER), "aemter")
    with _refused(SettingsCode.DUPLICATE):
        m.add_local_group(settings, str(PROVIDER), "aemter")
    with _refused(SettingsCode.UNKNOWN_LOCAL_GROUP):
        m.set_local_group_description(settings, str(PROVIDER), "keine", "x")
    with _refused(SettingsCode.INVALID):
        m.add_local_group(settings, str(PROVIDER), "a/b")
    with _refused(SettingsCode.INVALID):
        m.add_local_group_members(settings, str(PROVIDER), "aemter", ["not a client"])
    described = m.set_local_group_description(settings, str(PROVIDER), "aemter", "Ämter")
    assert described.local_groups[0].description == "Ämter"


# ---------------------------------------------------------------------- services and clients


def test_service_changes() -> None:
    settings = _base()
    off = m.disable_service(settings, str(SERVICE))
    section = off.service(str(SERVICE))
    assert section is not None and not section.enabled and section.timeout_seconds == 2.5
    on = m.enable_service(off, str(SERVICE))
    assert on == settings
    moved = m.set_service_url(settings, str(SERVICE), "http://127.0.0.1:10/neu/")
    timed = m.set_service_timeout(moved, str(SERVICE), 7)
    section = timed.service(str(SERVICE))
    assert section is not None and (section.url, section.timeout_seconds) == (
        "http://127.0.0.1:10/neu",
        7,
    )
    with _refused(SettingsCode.INVALID):
        m.set_service_timeout(settings, str(SERVICE), 0)
    with _refused(SettingsCode.INVALID):
        m.set_service_url(settings, str(SERVICE), "https://needs-a-trust-anchor")
    with _refused(SettingsCode.INVALID):
        m.update_service(settings, str(SERVICE), colour="blue")
    with _refused(SettingsCode.UNKNOWN_SERVICE):
        m.disable_service(settings, str(OTHER))
    with _refused(SettingsCode.DUPLICATE):
        m.add_service(settings, {"id": str(SERVICE), "url": "http://127.0.0.1:9"})


def test_removing_a_service_takes_its_access_rights() -> None:
    gone = m.remove_service(_base(), str(SERVICE))
    assert gone.services == () and gone.access == ()
    back = m.add_service(gone, {"id": str(SERVICE), "url": "http://127.0.0.1:9"})
    assert not _allowed(back, CLIENT)


def test_endpoints() -> None:
    settings = m.add_endpoint(_base(), str(SERVICE), "get", "/personen/*")
    section = settings.service(str(SERVICE))
    assert section is not None and [(e.method, e.path) for e in section.endpoints] == [
        ("GET", "/personen/*")
    ]
    with _refused(SettingsCode.DUPLICATE):
        m.add_endpoint(settings, str(SERVICE), "GET", "/personen/*")
    assert m.remove_endpoint(settings, str(SERVICE), "GET", "/personen/*") == _base()
    with _refused(SettingsCode.INVALID):
        m.remove_endpoint(_base(), str(SERVICE), "GET", "/personen/*")


def test_clients_and_connection_types() -> None:
    settings = _base()
    assert settings.connection_type(CLIENT) is ConnectionType.HTTPS  # not listed: https
    listed = m.add_subsystem(settings, str(CLIENT), ConnectionType.HTTPS_NO_AUTH)
    assert listed.connection_type(CLIENT) is ConnectionType.HTTPS_NO_AUTH
    assert not listed.serves_plain_http()
    plain = m.set_connection_type(listed, str(CLIENT), ConnectionType.HTTP)
    assert plain.connection_type(CLIENT) is ConnectionType.HTTP and plain.serves_plain_http()
    with _refused(SettingsCode.DUPLICATE):
        m.add_subsystem(listed, str(CLIENT))
    with _refused(SettingsCode.UNKNOWN_CLIENT):
        m.set_connection_type(settings, str(SECOND), ConnectionType.HTTP)
    with _refused(SettingsCode.INVALID):
        m.add_subsystem(settings, "DE/GOV/only-a-member")
    assert m.remove_subsystem(listed, str(CLIENT)) == settings
    with _refused(SettingsCode.UNKNOWN_CLIENT):
        m.remove_subsystem(settings, str(CLIENT))


def test_settings_are_immutable() -> None:
    settings = _base()
    with pytest.raises(AttributeError):
        settings.access = ()  # type: ignore[misc]


def test_revoke_all_of_a_clients_rights_on_a_service() -> None:
    settings = m.grant_access(_base(), str(SERVICE), client=str(CLIENT), paths=["/a"])
    settings = m.grant_access(settings, str(SERVICE), client=str(SECOND))
    kept = m.revoke_all_access(settings, str(SERVICE), client=str(CLIENT))
    assert [a.client for a in kept.access] == [str(SECOND)]
    with _refused(SettingsCode.UNKNOWN_ACCESS):
        m.revoke_all_access(kept, str(SERVICE), client=str(CLIENT))
    with _refused(SettingsCode.INVALID):
        m.revoke_all_access(kept, str(SERVICE), client="no client")


@pytest.mark.parametrize("code", list(SettingsCode), ids=lambda c: c.value)
def test_every_refusal_code_is_documented(code: SettingsCode) -> None:
    deployment = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
    assert f"`{code.value}`" in deployment.read_text("utf-8")
