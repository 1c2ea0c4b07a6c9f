"""Which message bodies the log keeps: logging modes and the logged body size limit.

Data minimisation (as X-Road's per-subsystem message log settings): a subsystem whose
``[[logging.subsystems]]`` mode is ``metadata`` has its bodies logged as their SHA-256
only, and any body larger than ``[logging] max_body_bytes`` is logged the same way, so
the log keeps evidence of *what* was exchanged without holding the personal data.

Either way the entry's Merkle leaf is unchanged: it commits to the body's digest
(``gateway.core.logtree``), the signed header names the same digest, and every proof
and audit check still works; only the body itself cannot be shown from the log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from gateway.core.ids import InvalidIdentifierError, ServiceId
from gateway.messagelog.records import LogRecord

__all__ = ["METADATA", "SIZE", "body_policy", "local_subsystem"]

METADATA: Final = "metadata"
"""``body_omitted`` of an entry whose subsystem logs metadata only."""
SIZE: Final = "size"
"""``body_omitted`` of an entry whose body exceeded the logged body limit."""


def local_subsystem(record: LogRecord) -> str:
    """This node's party to the exchange: the client on the consumer side, the
    service's subsystem on the provider side (whose settings apply here)."""
    if record.role == "consumer":
        return record.client
    try:
        return str(ServiceId.parse(record.service).provider)
    except InvalidIdentifierError:
        return record.service


def body_policy(
    metadata_only: frozenset[str], max_body_bytes: int | None
) -> Callable[[LogRecord], str] | None:
    """The message log's ``body_policy`` for these settings, or None to keep every body."""
    if not metadata_only and max_body_bytes is None:
        return None

    def omitted(record: LogRecord) -> str:
        if record.body and local_subsystem(record) in metadata_only:
            return METADATA
        if max_body_bytes is not None and len(record.body) > max_body_bytes:
            return SIZE
        return ""

    return omitted
