"""The writer does not preload the log's stored certificate and OCSP references: it
remembers a bounded number of those it stored, and a reference it does not remember
(stored before a restart, or forgotten past the bound) is inserted idempotently, never
twice and never refused."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path

from gateway.messagelog import Kind, LogRecord, MessageLog, Role, open_store

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
CERT = b"0\x82fake-cert-der"


def ocsp_der(n: int) -> bytes:
    return b"0\x82fake-ocsp-" + n.to_bytes(4, "big")


def ref(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def record(ocsp: bytes) -> LogRecord:
    return LogRecord(
        role=Role.PROVIDER,
        kind=Kind.REQUEST,
        message_id=str(uuid.uuid4()),
        xroad_id=f"DE-NRW-{uuid.uuid4()}",
        client="DE-NRW/GOV/05974040/gewerbeamt",
        service="DE-NRW/GOV/05974028/melderegister/einfacheAuskunft",
        created="2026-06-01T08:00:00.000Z",
        header=b'{"h":1}',
        body=b"{}",
        signature="eyJ9..c2ln",
        cert_ref=ref(CERT),
        ocsp_ref=ref(ocsp),
    )


async def log_with(location: Path | str, numbers: list[int]) -> None:
    log = MessageLog(location, clock=lambda: NOW)
    log.start()
    try:
        await asyncio.gather(
            *(
                log.append(
                    [record(ocsp_der(n))],
                    certs={ref(CERT): (CERT, '{"alg":"ES256"}')},
                    ocsp={ref(ocsp_der(n)): ocsp_der(n)},
                )
                for n in numbers
            )
        )
    finally:
        await log.close()


def test_references_stored_before_a_restart_or_forgotten_are_stored_once(
    log_location: Path | str,
) -> None:
    first = list(range(5000))  # more than a writer remembers
    asyncio.run(log_with(log_location, first))
    asyncio.run(log_with(log_location, [0, 1, 4999, 5000]))  # known to the log, not the writer
    store = open_store(log_location)
    wanted = [ref(ocsp_der(n)) for n in range(5001)]
    stored = store.ocsp_responses(wanted)
    assert len(stored) == 5001
    assert stored[ref(ocsp_der(0))] == ocsp_der(0)
    assert store.count_entries() == 5004
