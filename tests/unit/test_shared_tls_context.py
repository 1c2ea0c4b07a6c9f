"""The tests' httpx clients share one default TLS context (``tests/conftest.py``,
ADR 0056), and only the default one: verification is what it was."""

from __future__ import annotations

import ssl

import httpx


def _context(client: httpx.Client) -> ssl.SSLContext:
    pool = client._transport._pool  # type: ignore[attr-defined]
    context: ssl.SSLContext = pool._ssl_context
    return context


def test_default_clients_share_one_verifying_context() -> None:
    with httpx.Client() as one, httpx.Client() as two:
        assert _context(one) is _context(two)
        assert _context(one).verify_mode is ssl.CERT_REQUIRED
        assert _context(one).check_hostname
        assert _context(one).cert_store_stats()["x509_ca"] > 0  # the usual roots


def test_clients_with_a_context_of_their_own_keep_it() -> None:
    own = ssl.create_default_context()
    with httpx.Client() as default, httpx.Client(verify=own) as mine:
        assert _context(mine) is own
        assert _context(default) is not own
    unverified_client = httpx.Client(verify=False)  # noqa: S501 - it never connects
    with unverified_client as unverified, httpx.Client() as default:
        assert _context(unverified) is not _context(default)
        assert _context(unverified).verify_mode is ssl.CERT_NONE
