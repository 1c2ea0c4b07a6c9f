"""The Gewerberegister's IHK outbox: queued with the Anzeige, delivered, retried, refused.

The gateway is replaced by an httpx transport here (the real path runs in
tests/integration/test_ihk_notification.py); the clock is injected, so "due" is decided
without waiting.
"""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from gateway.core.ids import ServiceId, SubsystemId
from registries.gewerberegister.app import create_app
from registries.gewerberegister.outbox import IhkOutbox, IhkTarget, OutboxDeliverer, backoff

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

TARGET = IhkTarget(
    consumer_url="http://soest.invalid",
    client=SubsystemId.parse("DE-NRW/GOV/05974040/gewerbeamt"),
    service=ServiceId.parse("DE-NRW/GOV/IHK-ARNSBERG/kammer/gewerbemeldungen"),
    retry_initial_seconds=2,
    retry_max_seconds=30,
)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class FakeGateway:
    """Answers like the consumer node would, with a status chosen per call."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 201
        if status == 599:
            raise httpx.ConnectError("refused", request=request)
        headers = {}
        if status == 503:
            headers["X-Road-Error"] = "server.serverproxy.service_failed.network_error"
        return httpx.Response(status, json={"ok": status < 300}, headers=headers)


def anmeldung() -> dict[str, Any]:
    return {
        "anzeigeart": "anmeldung",
        "gueltigAb": "2026-04-01",
        "grundAnmeldungSchluessel": "neugruendung",
        "betriebsinhaber": {
            "art": "natuerlichePerson",
            "familienname": "Schmidt",
            "vorname": "Anna",
            "geburtsdatum": "1988-03-14",
            "geburtsort": "Soest",
            "anschrift": {
                "strasse": "Lange Straße",
                "hausNrVon": "12",
                "plz": "59555",
                "ort": "Lippstadt",
            },
        },
        "betriebsstaette": {
            "anschrift": {"strasse": "Markt", "hausNrVon": "5", "plz": "59494", "ort": "Soest"}
        },
        "taetigkeit": {"beschreibung": "Friseursalon", "taetigkeitSchluessel": "96021"},
        "betriebArt": "handwerk",
    }


def setup(tmp_path: Path) -> tuple[TestClient, OutboxDeliverer, FakeGateway, Clock]:
    """The app without its lifespan (no background thread): the test drives delivery."""
    gateway, clock = FakeGateway(), Clock()
    transport = httpx.MockTransport(gateway.handler)
    app = create_app(tmp_path / "gr.sqlite", clock=clock, ihk=TARGET, ihk_transport=transport)
    deliverer = app.state.ihk_outbox
    assert isinstance(deliverer, OutboxDeliverer)
    return TestClient(app), deliverer, gateway, clock


def rows(deliverer: OutboxDeliverer) -> list[IhkOutbox]:
    with Session(deliverer.engine) as session:
        return list(session.exec(select(IhkOutbox)).all())


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, 2, 30) for n in range(6)] == [0, 2, 4, 8, 16, 30]
    assert backoff(10_000, 2, 30) == 30


def test_an_anzeige_is_queued_in_its_transaction_and_delivered_through_the_node(
    tmp_path: Path,
) -> None:
    client, deliverer, gateway, _ = setup(tmp_path)
    filed = client.post("/gewerbeanzeigen", json=anmeldung())
    assert filed.status_code == 201
    aktenzeichen = filed.json()["aktenzeichen"]
    [row] = rows(deliverer)  # the seed is not notified, only what was filed
    assert (row.aktenzeichen, row.status) == (aktenzeichen, "offen")

    deliverer.deliver_due()
    [request] = gateway.requests
    assert str(request.url) == (
        "http://soest.invalid/r1/DE-NRW/GOV/IHK-ARNSBERG/kammer/gewerbemeldungen/benachrichtigungen"
    )
    assert request.headers["X-Road-Client"] == "DE-NRW/GOV/05974040/gewerbeamt"
    assert request.headers["X-Road-Issue"] == aktenzeichen
    body = json.loads(request.content)
    assert body["aktenzeichen"] == aktenzeichen
    assert "geburtsort" not in body["betriebsinhaber"]  # only what the IHK may get
    assert rows(deliverer)[0].status == "zugestellt"
    deliverer.deliver_due()
    assert len(gateway.requests) == 1  # delivered is delivered


def test_failures_are_retried_after_the_backoff_and_never_fail_the_filing(
    tmp_path: Path,
) -> None:
    client, deliverer, gateway, clock = setup(tmp_path)
    gateway.statuses = [599, 503]  # node unreachable, then the IHK's node refuses
    assert client.post("/gewerbeanzeigen", json=anmeldung()).status_code == 201

    assert deliverer.deliver_due() == pytest.approx(2)
    row = rows(deliverer)[0]
    assert (row.status, row.versuche) == ("offen", 1)
    assert row.letzter_fehler is not None and "nicht erreichbar" in row.letzter_fehler

    deliverer.deliver_due()  # not due yet: nothing sent
    assert len(gateway.requests) == 1
    clock.now += timedelta(seconds=2)
    deliverer.deliver_due()
    row = rows(deliverer)[0]
    assert (row.status, row.versuche) == ("offen", 2)
    assert row.letzter_fehler is not None and "service_failed" in row.letzter_fehler

    clock.now += timedelta(seconds=4)
    deliverer.deliver_due()
    assert rows(deliverer)[0].status == "zugestellt"
    assert len(gateway.requests) == 3


def test_a_refusal_by_the_ihk_itself_is_not_retried(tmp_path: Path) -> None:
    client, deliverer, gateway, clock = setup(tmp_path)
    gateway.statuses = [409]
    client.post("/gewerbeanzeigen", json=anmeldung())
    deliverer.deliver_due()
    clock.now += timedelta(days=1)
    deliverer.deliver_due()
    row = rows(deliverer)[0]
    assert row.status == "abgewiesen"
    assert row.letzter_fehler is not None and "409" in row.letzter_fehler
    assert len(gateway.requests) == 1
