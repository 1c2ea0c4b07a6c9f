"""The message log's typed side writes: each one small transaction of the writer.

The configuration history, the node's own OCSP answers, witness co-signatures and
alerts and operational records of refusals each go through ``MessageLog.write``, so
they get the durability of entries and never compete with the writer for the
database's lock. Kept apart from the writer's thread and group commit
(``writer.py``), which they only use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from gateway.messagelog.records import CosignatureRow, OpRecord, StoredStatus
from gateway.messagelog.writer_queue import WriterDb

__all__ = ["SideWrites"]


class SideWrites:
    """The side writes ``MessageLog`` offers, over its ``write`` and its backend's
    module of side writes (``sqlite_writes`` or ``postgres_writes``)."""

    _db: WriterDb

    async def write(self, work: Callable[[Any], object]) -> object:
        """Run ``work`` in its own transaction on the writer thread (``MessageLog``)."""
        raise NotImplementedError

    async def record_configuration(
        self, files: Sequence[tuple[str, bytes]], serial: int, applied_at: str
    ) -> bool:
        """Durably add a configuration version to the log's history unless it is the one
        recorded last; True if it was added (docs/message-log.md 8.1)."""
        return bool(
            await self.write(
                functools.partial(
                    self._db.side.record_version, files=files, serial=serial, applied_at=applied_at
                )
            )
        )

    async def keep_own_status(self, ref: str, status: StoredStatus | None) -> None:
        """Keep a good OCSP answer for one of the node's own certificates for the next
        start-up, or forget the kept one (``None``: the certificate was revoked)."""
        await self.write(functools.partial(self._db.side.store_status, ref=ref, status=status))

    async def add_cosignature(
        self, row: CosignatureRow, cert: tuple[str, bytes, str], ocsp_der: bytes
    ) -> None:
        """Store a witness co-signature with the certificate ``(ref, DER, JWS header)``
        and OCSP response it relies on (ignored if that co-signature is already kept)."""
        await self.write(
            functools.partial(
                self._db.side.insert_cosignature, row=row, cert=cert, ocsp_der=ocsp_der
            )
        )

    async def add_witness_alert(
        self, peer: str, code: str, detail: str, evidence: str, detected_at: str
    ) -> None:
        """Record a peer's split view or refused tree head with its evidence."""
        await self.write(
            functools.partial(
                self._db.side.insert_alert,
                peer=peer,
                code=code,
                detail=detail,
                evidence=evidence,
                detected_at=detected_at,
            )
        )

    async def record_operational(self, records: Sequence[OpRecord]) -> None:
        """Write a batch of operational records (refusals: no entry to commit them with)."""
        await self.write(functools.partial(self._db.side.insert_operational, records=records))

    async def prune_operational(self, before: str) -> int:
        """Delete the operational records whose request came in before ``before``."""
        removed = await self.write(
            functools.partial(self._db.side.prune_operational, before=before)
        )
        return removed if isinstance(removed, int) else 0
