"""The lookups' short way through the app: a plain ASGI layer before FastAPI's router.

A lookup through FastAPI's router pays for its dependency injection, the nine declared
query parameters validated one by one, the exit stacks and the response model's checks:
about as much CPU as the search and the protocol row together, which kept a lone lookup
above the register's budget of 0.5 ms. :class:`LookupFastPath` answers ``GET /personen``
and ``GET /datenuebermittlung/personen`` itself when the query is one FastAPI would
accept as it stands, with the very handlers the routes call, so answer, headers and
protocol row are the same. Anything else (a parameter that is not a § 38(4) search key,
a repeated one, a value FastAPI would refuse or that this module is not sure about, any
other method or path) goes to FastAPI unchanged, so every refusal keeps FastAPI's exact
422 body. The OpenAPI document is FastAPI's, from the routes, as before.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from typing import Any, Final
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from registries.melderegister.models import MAX_NAME_LENGTH
from registries.melderegister.search import SEARCH_KEYS, Suche

__all__ = ["Lookup", "LookupApp", "request_headers", "suche_or_none"]

Lookup = Callable[[Suche, Mapping[str, str]], Awaitable[Response]]
"""A route's handler: the validated search and the request's headers (lower-case names,
:func:`request_headers`) to its answer."""

_ISO_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_POSTLEITZAHL: Final = re.compile(r"[0-9]{5}")
_GESCHLECHT: Final = frozenset({"m", "w", "d", "x"})
_REQUIRED: Final = ("familienname", "vornamen", "geburtsdatum")
_TEXT_LIMITS: Final = {
    "familienname": MAX_NAME_LENGTH,
    "vornamen": MAX_NAME_LENGTH,
    "geburtsort": MAX_NAME_LENGTH,
    "strasse": MAX_NAME_LENGTH,
    "hausnummer": 20,
    "wohnort": MAX_NAME_LENGTH,
}
"""The text keys and their ``max_length`` in :mod:`registries.melderegister.search`."""


def suche_or_none(query_string: bytes) -> Suche | None:
    """The search FastAPI would build from ``query_string``, or None to let it decide.

    Accepts only what :func:`registries.melderegister.search.suche_aus_query` accepts
    with these very values (each key a § 38(4) search key given once, the three required
    ones present, text within its length and not blank, the date ``YYYY-MM-DD`` and
    real, the Geschlecht one of its four letters, the Postleitzahl five digits); when in
    doubt it answers None, never a different search.
    """
    # Parsed as Starlette parses it for FastAPI (starlette.datastructures.QueryParams).
    items = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    values: dict[str, str] = {}
    for key, value in items:
        if key in values or key not in SEARCH_KEYS or not _plainly_valid(key, value):
            return None  # a key repeated or unknown, a value in doubt: FastAPI decides
        values[key] = value
    if any(key not in values for key in _REQUIRED):
        return None
    raw_date = values.pop("geburtsdatum")
    if not _ISO_DATE.fullmatch(raw_date):
        return None
    try:
        geburtsdatum = date.fromisoformat(raw_date)
    except ValueError:
        return None
    return Suche(geburtsdatum=geburtsdatum, **values)


def _plainly_valid(key: str, value: str) -> bool:
    """Whether FastAPI's checks of the search key ``key`` pass ``value`` as it is (the
    date is checked by the caller)."""
    if key in _TEXT_LIMITS:
        return 0 < len(value) <= _TEXT_LIMITS[key] and bool(value.strip())
    if key == "geschlecht":
        return value in _GESCHLECHT
    if key == "postleitzahl":
        return _POSTLEITZAHL.fullmatch(value) is not None
    return True


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name, the first of a repeated one winning, as
    :class:`starlette.datastructures.Headers` reads them."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


class LookupApp(FastAPI):
    """A FastAPI app that answers the plain GETs of its :attr:`lookups` paths itself.

    It sits before FastAPI's whole middleware stack, which (even with no middleware of
    the app's own) asks OpenTelemetry for its providers and wraps ``send`` on every
    request. A handler that raises reaches uvicorn, which answers 500 and logs it, as
    the stack's error middleware would.
    """

    lookups: dict[str, Lookup]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lookups = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            handler = self.lookups.get(scope["path"])
            if handler is not None:
                suche = suche_or_none(scope["query_string"])
                if suche is not None:
                    response = await handler(suche, request_headers(scope))
                    await response(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)
