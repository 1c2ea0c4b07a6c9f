"""The Gewerberegister notifies the IHK through the gateway, and survives the IHK being down.

Soest's node and the IHK's node run as processes; the IHK endpoint starts only after the
first delivery has failed. The Anmeldung is accepted at once regardless, and once the IHK
is up the notification arrives exactly once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.sandbox.cities import IHK, SOEST
from gateway.sandbox.federation import (
    ihk_service,
    start_gewerberegister,
    start_ihk,
    start_nodes,
)
from gateway.sandbox.localnet import LocalNet, free_port

pytestmark = pytest.mark.integration


def anmeldung() -> dict[str, Any]:
    return {
        "anzeigeart": "anmeldung",
        "gueltigAb": (date.today() + timedelta(days=10)).isoformat(),
        "grundAnmeldungSchluessel": "neugruendung",
        "betriebsinhaber": {
            "art": "natuerlichePerson",
            "familienname": "Krüger",
            "vorname": "Bernd",
            "geburtsdatum": "1975-07-02",
            "geburtsort": "Lippstadt",
            "anschrift": {"strasse": "Markt", "hausNrVon": "3", "plz": "59555", "ort": "Lippstadt"},
        },
        "betriebsstaette": {
            "anschrift": {"strasse": "Markt", "hausNrVon": "9", "plz": "59494", "ort": "Soest"}
        },
        "taetigkeit": {"beschreibung": "Fahrradwerkstatt", "taetigkeitSchluessel": "95290"},
        "betriebArt": "handwerk",
    }


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    root = tmp_path_factory.mktemp("ihk")
    federation = LocalNet.create(root, [SOEST, IHK], datetime.now(UTC))
    try:
        yield federation
    finally:
        federation.stop()


def test_ihk_down_then_up_gets_the_notification_exactly_once(net: LocalNet) -> None:
    ihk_port, gr_port = free_port(), free_port()
    net.add_service(ihk_service(ihk_port))
    net.write_configs()
    start_nodes(net, [SOEST.ags, IHK.ags])
    start_gewerberegister(net, gr_port, retry_seconds=0.2)

    filed = httpx.post(f"http://127.0.0.1:{gr_port}/gewerbeanzeigen", json=anmeldung(), timeout=30)
    assert filed.status_code == 201, filed.text  # the IHK being down does not matter here
    aktenzeichen = filed.json()["aktenzeichen"]

    outbox = net.root / "registries" / "gewerberegister.sqlite"

    def row() -> tuple[str, int, str | None]:
        with sqlite3.connect(outbox) as conn:
            found: tuple[str, int, str | None] = conn.execute(
                "SELECT status, versuche, letzter_fehler FROM ihk_outbox WHERE aktenzeichen = ?",
                (aktenzeichen,),
            ).fetchone()
        return found

    status, _attempts, error = wait_for(lambda: row()[1] >= 1 and row(), "a failed delivery")
    assert status == "offen"
    assert error is not None and "Gateway" in error  # the IHK's node could not reach it

    start_ihk(net, ihk_port)
    wait_for(lambda: row()[0] == "zugestellt", "the delivery")
    listing = httpx.get(
        f"http://127.0.0.1:{ihk_port}/benachrichtigungen", params={"aktenzeichen": aktenzeichen}
    ).json()
    assert listing["anzahl"] == 1
    assert listing["benachrichtigungen"][0]["benachrichtigung"]["taetigkeit"] == {
        "beschreibung": "Fahrradwerkstatt",
        "taetigkeitSchluessel": "95290",
    }
    # Nothing else was sent: every row in the outbox is delivered, the IHK holds one.
    assert row()[0] == "zugestellt"
    everything = httpx.get(f"http://127.0.0.1:{ihk_port}/benachrichtigungen").json()
    assert everything["anzahl"] == 1
