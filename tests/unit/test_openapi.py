"""The pure OpenAPI parser: service descriptions, their endpoints as policy patterns,
each refusal with its stable code, and the diff of a refresh."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.core.errors import Code, GatewayError
from gateway.core.openapi import (
    ANY_METHOD,
    DescribedEndpoint,
    diff_endpoints,
    parse_openapi,
    path_pattern,
)
from gateway.core.policy import path_matches
from gateway.node.config import Endpoint


def document(paths: Any = None, **fields: Any) -> bytes:
    doc: dict[str, Any] = {"openapi": "3.1.0", "info": {"title": "Register", "version": "2.1"}}
    if paths is not None:
        doc["paths"] = paths
    doc.update(fields)
    return json.dumps(doc).encode()


def test_title_version_and_every_operation_as_an_endpoint() -> None:
    desc = parse_openapi(
        document(
            {
                "/personen": {"get": {}, "post": {}, "parameters": [], "summary": "x"},
                "/gewerbeanzeigen/{aktenzeichen}": {"get": {}, "delete": {}},
                "/a/{x}/b/{y}.json": {"put": {}},
            }
        )
    )
    assert (desc.title, desc.version, desc.openapi) == ("Register", "2.1", "3.1.0")
    assert desc.endpoints == (
        DescribedEndpoint("DELETE", "/gewerbeanzeigen/*"),
        DescribedEndpoint("GET", "/gewerbeanzeigen/*"),
        DescribedEndpoint("GET", "/personen"),
        DescribedEndpoint("POST", "/personen"),
        DescribedEndpoint("PUT", "/a/*/b/*.json"),
    )


def test_a_templated_pattern_matches_one_segment_as_the_policy_reads_it() -> None:
    pattern = path_pattern("/gewerbeanzeigen/{aktenzeichen}")
    assert path_matches(pattern, "/gewerbeanzeigen/GA-2026-17")
    assert not path_matches(pattern, "/gewerbeanzeigen/GA/17")
    assert not path_matches(pattern, "/gewerbeanzeigen")


def test_literal_wildcard_characters_are_escaped() -> None:
    pattern = path_pattern("/suche*/[alt]?/{id}")
    assert path_matches(pattern, "/suche*/[alt]?/7")
    assert not path_matches(pattern, "/sucheX/a?/7")
    assert not path_matches(pattern, "/suche*/[alt]x/7")


def test_a_path_item_given_as_a_reference_allows_any_method() -> None:
    desc = parse_openapi(document({"/extern": {"$ref": "#/components/pathItems/x"}}))
    assert desc.endpoints == (DescribedEndpoint(ANY_METHOD, "/extern"),)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\xff\xfe", Code.DESCRIPTION_NOT_JSON),
        (b"openapi: 3.0.0\n", Code.DESCRIPTION_NOT_JSON),
        (b"[1, 2]", Code.DESCRIPTION_NOT_JSON),
        (
            json.dumps({"swagger": "2.0", "info": {}, "paths": {}}).encode(),
            Code.DESCRIPTION_NOT_OPENAPI,
        ),
        (document({"/x": {"get": {}}}, openapi="2.0"), Code.DESCRIPTION_NOT_OPENAPI),
        (document({"/x": {"get": {}}}, openapi=3), Code.DESCRIPTION_NOT_OPENAPI),
        (document({"/x": {"get": {}}}, info={"title": "t"}), Code.DESCRIPTION_NOT_OPENAPI),
        (document(["/x"]), Code.DESCRIPTION_NOT_OPENAPI),
        (document({"x": {"get": {}}}), Code.DESCRIPTION_NOT_OPENAPI),
        (document({"/x": "get"}), Code.DESCRIPTION_NOT_OPENAPI),
        (document(), Code.DESCRIPTION_NO_PATHS),
        (document({}), Code.DESCRIPTION_NO_PATHS),
        (document({"/x": {"summary": "no operation"}}), Code.DESCRIPTION_NO_PATHS),
    ],
)
def test_each_bad_document_is_refused_with_its_code(body: bytes, code: Code) -> None:
    with pytest.raises(GatewayError) as caught:
        parse_openapi(body)
    assert caught.value.code is code


def test_a_refresh_diff_names_added_and_removed_endpoints() -> None:
    old = [Endpoint(method="GET", path="/personen"), Endpoint(method="POST", path="/personen")]
    new = parse_openapi(document({"/personen": {"get": {}}, "/personen/{id}": {"get": {}}}))
    diff = diff_endpoints(old, new.endpoints)
    assert diff.added == (DescribedEndpoint("GET", "/personen/*"),)
    assert diff.removed == (DescribedEndpoint("POST", "/personen"),)
    assert diff.changed
    assert not diff_endpoints(new.endpoints, new.endpoints).changed
