"""Access rights: deny by default; grants per client or group, narrowed by method and path."""

from __future__ import annotations

import pytest

from gateway.core.errors import Code, GatewayError
from gateway.core.ids import GroupId, MemberId, ServiceId, SubsystemId
from gateway.core.policy import AccessPolicy, Grant, LocalGroupId, path_matches

CLIENT = SubsystemId("EE", "GOV", "70000001", "population-app")
OTHER = SubsystemId("EE", "GOV", "70000003", "tax-app")
CLIENT_MEMBER = CLIENT.member
PROVIDER = SubsystemId("EE", "GOV", "70000002", "melderegister")
SERVICE = PROVIDER.service("persons")
OTHER_SERVICE = PROVIDER.service("addresses")
CITIES = GroupId("EE", "cities")
NO_GROUPS: frozenset[GroupId] = frozenset()


def _allowed(
    policy: AccessPolicy,
    client: SubsystemId | MemberId = CLIENT,
    groups: frozenset[GroupId] = NO_GROUPS,
    method: str = "GET",
    path: str = "/persons/1",
    service: ServiceId = SERVICE,
) -> bool:
    try:
        policy.check(client, groups, service, method, path)
    except GatewayError as refusal:
        assert refusal.code is Code.SP_ACCESS_DENIED
        assert refusal.code.value == "server.serverproxy.access_denied"
        assert refusal.status == 500
        return False
    return True


def test_deny_by_default() -> None:
    assert not _allowed(AccessPolicy([]))
    assert not _allowed(AccessPolicy([]), method="", path="")


def test_refusal_names_client_method_path_and_service() -> None:
    with pytest.raises(GatewayError) as caught:
        AccessPolicy([]).check(CLIENT, NO_GROUPS, SERVICE, "GET", "")
    assert caught.value.code is Code.SP_ACCESS_DENIED
    assert str(CLIENT) in caught.value.message
    assert "GET /" in caught.value.message
    assert str(SERVICE) in caught.value.message


def test_client_grant() -> None:
    policy = AccessPolicy([Grant(SERVICE, CLIENT)])
    assert _allowed(policy)
    assert _allowed(policy, method="DELETE", path="/anything/at/all")
    assert _allowed(policy, path="")
    assert not _allowed(policy, client=OTHER)
    assert not _allowed(policy, service=OTHER_SERVICE)


def test_grant_to_a_subsystem_does_not_cover_its_member_and_vice_versa() -> None:
    assert not _allowed(AccessPolicy([Grant(SERVICE, CLIENT)]), client=CLIENT_MEMBER)
    assert not _allowed(AccessPolicy([Grant(SERVICE, CLIENT_MEMBER)]), client=CLIENT)
    assert _allowed(AccessPolicy([Grant(SERVICE, CLIENT_MEMBER)]), client=CLIENT_MEMBER)


def test_group_grant() -> None:
    policy = AccessPolicy([Grant(SERVICE, CITIES)])
    assert _allowed(policy, groups=frozenset({CITIES}))
    assert _allowed(policy, client=OTHER, groups=frozenset({GroupId("EE", "x"), CITIES}))
    assert not _allowed(policy)
    assert not _allowed(policy, groups=frozenset({GroupId("EE", "towns")}))
    assert not _allowed(policy, groups=frozenset({GroupId("FI", "cities")}))


def test_method_restriction() -> None:
    policy = AccessPolicy([Grant(SERVICE, CLIENT, methods=frozenset({"GET", "HEAD"}))])
    assert _allowed(policy, method="GET")
    assert _allowed(policy, method="HEAD")
    assert not _allowed(policy, method="POST")
    assert not _allowed(policy, method="get")


def test_empty_method_set_allows_nothing() -> None:
    assert not _allowed(AccessPolicy([Grant(SERVICE, CLIENT, methods=frozenset())]))


def test_grants_add_up() -> None:
    policy = AccessPolicy(
        [
            Grant(SERVICE, CLIENT, methods=frozenset({"GET"}), paths=("/persons/*",)),
            Grant(SERVICE, CITIES, methods=frozenset({"POST"}), paths=("/persons/search",)),
        ]
    )
    cities = frozenset({CITIES})
    assert _allowed(policy, method="GET", path="/persons/1")
    assert not _allowed(policy, method="POST", path="/persons/search")
    assert _allowed(policy, groups=cities, method="POST", path="/persons/search")
    assert not _allowed(policy, groups=cities, method="GET", path="/persons/search/x")


def test_method_and_path_must_hold_in_the_same_grant() -> None:
    policy = AccessPolicy(
        [
            Grant(SERVICE, CLIENT, methods=frozenset({"GET"}), paths=("/a",)),
            Grant(SERVICE, CLIENT, methods=frozenset({"POST"}), paths=("/b",)),
        ]
    )
    assert _allowed(policy, method="GET", path="/a")
    assert _allowed(policy, method="POST", path="/b")
    assert not _allowed(policy, method="GET", path="/b")
    assert not _allowed(policy, method="POST", path="/a")


def test_grants_for() -> None:
    grant = Grant(SERVICE, CITIES)
    policy = AccessPolicy([grant, Grant(OTHER_SERVICE, CLIENT)])
    assert policy.grants_for(CLIENT, frozenset({CITIES}), SERVICE) == [grant]
    assert policy.grants_for(CLIENT, NO_GROUPS, SERVICE) == []


@pytest.mark.parametrize(
    ("pattern", "path", "ok"),
    [
        ("/persons/*", "/persons/1", True),
        ("/persons/*", "/persons/38001010001", True),
        ("/persons/*", "/persons/1/addresses", False),
        ("/persons/*", "/persons", False),
        ("/persons/*", "/people/1", False),
        ("/persons/*/addresses", "/persons/1/addresses", True),
        ("/persons/*/addresses", "/persons/1/2/addresses", False),
        ("/persons/1*", "/persons/123", True),
        ("/persons/1*", "/persons/23", False),
        ("/persons/**", "/persons", True),
        ("/persons/**", "/persons/1", True),
        ("/persons/**", "/persons/1/addresses/2", True),
        ("/persons/**", "/personsX/1", False),
        ("/persons/**", "/people/1", False),
        ("/**/addresses", "/persons/1/addresses", True),
        ("/**/addresses", "/addresses", True),
        ("/**/addresses", "/persons/1/addresses/2", False),
        ("/**", "/", True),
        ("/**", "/a/b/c", True),
        ("/**", "", True),
        ("/", "", True),
        ("/", "/", True),
        ("/", "/a", False),
        ("/persons", "/persons", True),
        ("/persons", "/Persons", False),
        ("/persons", "/persons/", False),
        ("/persons/search", "/persons/searchx", False),
    ],
)
def test_path_patterns(pattern: str, path: str, ok: bool) -> None:
    assert path_matches(pattern, path) is ok
    policy = AccessPolicy([Grant(SERVICE, CLIENT, paths=(pattern,))])
    assert _allowed(policy, path=path) is ok


def test_star_never_crosses_a_slash() -> None:
    assert not path_matches("/a/*", "/a/b/c")
    assert not path_matches("/a*", "/a/b")


def test_any_of_several_patterns() -> None:
    policy = AccessPolicy([Grant(SERVICE, CLIENT, paths=("/persons/*", "/search"))])
    assert _allowed(policy, path="/persons/1")
    assert _allowed(policy, path="/search")
    assert not _allowed(policy, path="/admin")


def test_empty_pattern_list_allows_nothing() -> None:
    assert not _allowed(AccessPolicy([Grant(SERVICE, CLIENT, paths=())]))


def test_a_local_group_grant_follows_the_groups_members() -> None:
    group = LocalGroupId(PROVIDER, "trusted")
    grant = Grant(SERVICE, group)
    assert _allowed(AccessPolicy([grant], {group: frozenset({CLIENT})}))
    assert not _allowed(AccessPolicy([grant], {group: frozenset({OTHER})}))
    assert not _allowed(AccessPolicy([grant]))  # a group the policy does not know: nobody
    other_owner = LocalGroupId(OTHER, "trusted")  # the same code, another subsystem's group
    assert not _allowed(AccessPolicy([grant], {other_owner: frozenset({CLIENT})}))
