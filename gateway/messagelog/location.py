"""Which backend a log location names, decided without loading that backend.

A location is a SQLite file or a ``postgresql://`` URL; the node, the CLI and the
package's own factories ask this before anything else, and the answer must not import
psycopg (``postgres_schema`` re-exports these names for the PostgreSQL modules).
"""

from __future__ import annotations

__all__ = ["URL_SCHEMES", "is_postgres_url"]

URL_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: object) -> bool:
    """True for a libpq URL (``postgresql://...``): the log lives in PostgreSQL."""
    return isinstance(location, str) and location.startswith(URL_SCHEMES)
