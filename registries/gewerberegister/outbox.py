"""Notifying the IHK of every Gewerbeanzeige through the gateway: a transactional outbox.

§ 14(8) GewO makes the trade office pass each An-, Um- and Abmeldung to the chamber of
commerce. The IHK is another organisation, so the notification is an X-Road exchange: the
Gewerberegister, as the trade office's client subsystem, POSTs to the IHK's service via
Soest's node (consumer edge, ``r1``), with the Aktenzeichen as ``X-Road-Issue``.

Design choices, and why:

* **Outbox in the register's own database, written in the Anzeige's transaction.** The
  Anzeige and "the IHK must hear of it" are committed together, so a crash can lose
  neither, and filing never waits for (or fails because of) the IHK or the gateway.
* **Delivered in the background, retried with capped exponential backoff**
  (:func:`backoff`, pure). A retry is safe because the IHK is idempotent on
  (Aktenzeichen, Anzeigeart): a repeat answers 200 with the stored entry, which counts as
  delivered, so "IHK down, then up" ends with exactly one notification there.
* **Permanent refusals stop.** A 409 or 422 *from the IHK itself* (no ``X-Road-Error``)
  will not change on retry; the row is marked ``abgewiesen`` with the reason for an
  operator. Refusals by the gateway (access denied, node or peer unreachable) are
  retried: they are operational and an operator can fix them.
* **Time is injected** (the clock decides what is due); only the wait between rounds is
  real time.
"""

from __future__ import annotations

import argparse
import json
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

import httpx
from sqlalchemy import JSON, Column, Engine, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field as SQLField
from sqlmodel import Session, SQLModel, col, select

from gateway.core.ids import ServiceId, SubsystemId
from registries.edgetls import EdgeTls
from registries.gewerberegister.outbox_args import DEFAULT_IHK_SERVICE, add_arguments

__all__ = [
    "DEFAULT_IHK_SERVICE",
    "IhkOutbox",
    "IhkTarget",
    "OutboxDeliverer",
    "add_arguments",
    "backoff",
    "enqueue",
]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

PENDING: Final = "offen"
DELIVERED: Final = "zugestellt"
REFUSED: Final = "abgewiesen"


@dataclass(frozen=True, slots=True)
class IhkTarget:
    """Where and as whom the register notifies the IHK."""

    consumer_url: str
    """The trade office's own gateway node (consumer edge)."""
    client: SubsystemId
    service: ServiceId
    user_id: str = "gewerberegister-soest"
    timeout_seconds: float = 15.0
    retry_initial_seconds: float = 2.0
    retry_max_seconds: float = 600.0
    tls: EdgeTls | None = None
    """The node's consumer TLS port: its certificate to trust and the trade office's
    registered certificate; None for a plain-HTTP consumer URL."""


def backoff(attempts: int, initial: float, maximum: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling, capped."""
    if attempts < 1:
        return 0.0
    return float(min(maximum, initial * (2 ** min(attempts - 1, 30))))


class _OutboxBase(SQLModel, registry=registry()):
    """The outbox's own metadata; its table lives in the Gewerberegister's database."""


class IhkOutbox(_OutboxBase, table=True):
    """One notification the IHK must receive; unique per Anzeige."""

    __tablename__ = "ihk_outbox"
    __table_args__ = (UniqueConstraint("aktenzeichen", "anzeigeart"),)

    id: int | None = SQLField(default=None, primary_key=True)
    aktenzeichen: str = SQLField(max_length=40)
    anzeigeart: str = SQLField(max_length=20)
    inhalt: dict[str, Any] = SQLField(sa_column=Column(JSON, nullable=False))
    status: str = SQLField(default=PENDING, max_length=20, index=True)
    versuche: int = 0
    naechster_versuch: datetime
    zugestellt_am: datetime | None = None
    letzter_fehler: str | None = SQLField(default=None, max_length=500)


def create_tables(engine: Engine) -> None:
    _OutboxBase.metadata.create_all(engine)


def enqueue(session: Session, payload: dict[str, Any], now: datetime) -> None:
    """Add the notification to the caller's transaction (the one filing the Anzeige)."""
    session.add(
        IhkOutbox(
            aktenzeichen=str(payload["aktenzeichen"]),
            anzeigeart=str(payload["anzeigeart"]),
            inhalt=payload,
            naechster_versuch=now.astimezone(UTC),
        )
    )


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a naive value read back from SQLite is UTC by construction."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class OutboxDeliverer:
    """Sends due notifications; :meth:`start` runs it in a background thread."""

    def __init__(
        self,
        engine: Engine,
        target: IhkTarget,
        clock: Clock,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.engine = engine
        self.target = target
        self.clock = clock
        self.transport = transport
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        path = "/".join(quote(p, safe="") for p in str(self.target.service).split("/"))
        return f"{self.target.consumer_url.rstrip('/')}/r1/{path}/benachrichtigungen"

    def wake(self) -> None:
        """Something new is in the outbox: deliver now instead of at the next round."""
        self._wake.set()

    def _send(self, http: httpx.Client, row: IhkOutbox) -> tuple[str, str | None]:
        """Try one notification; the new status and, if not delivered, why."""
        try:
            response = http.post(
                self.url,
                content=json.dumps(row.inhalt, ensure_ascii=False).encode(),
                headers={
                    "Content-Type": "application/json",
                    "X-Road-Client": str(self.target.client),
                    "X-Road-UserId": self.target.user_id,
                    "X-Road-Issue": row.aktenzeichen,
                    "X-Road-Id": f"ihk-{row.aktenzeichen}-{row.anzeigeart}",
                },
            )
        except httpx.HTTPError as exc:
            return PENDING, f"Gateway nicht erreichbar: {type(exc).__name__}"
        if response.status_code in (200, 201):
            return DELIVERED, None
        gateway_error = response.headers.get("X-Road-Error")
        if gateway_error is not None:
            return PENDING, f"Gateway: {gateway_error} (HTTP {response.status_code})"
        reason = f"IHK: HTTP {response.status_code} {response.text[:300]}"
        if response.status_code in (400, 409, 422):
            return REFUSED, reason
        return PENDING, reason

    def deliver_due(self) -> float:
        """Send every due notification once; seconds until the next one is due (or 60)."""
        now = self.clock()
        with Session(self.engine) as session:
            due = session.exec(
                select(IhkOutbox)
                .where(
                    col(IhkOutbox.status) == PENDING,
                    col(IhkOutbox.naechster_versuch) <= _utc(now),
                )
                .order_by(col(IhkOutbox.id))
            ).all()
            if due:
                verify: ssl.SSLContext | bool = (
                    True if self.target.tls is None else self.target.tls.context()
                )
                with httpx.Client(
                    timeout=self.target.timeout_seconds, transport=self.transport, verify=verify
                ) as http:
                    for row in due:
                        status, reason = self._send(http, row)
                        row.status = status
                        row.letzter_fehler = reason[:500] if reason else None
                        if status == DELIVERED:
                            row.zugestellt_am = _utc(self.clock())
                        else:
                            row.versuche += 1
                            delay = backoff(
                                row.versuche,
                                self.target.retry_initial_seconds,
                                self.target.retry_max_seconds,
                            )
                            row.naechster_versuch = _utc(self.clock() + timedelta(seconds=delay))
                            log.warning("IHK notification %s: %s", row.aktenzeichen, reason)
                        session.add(row)
                        session.commit()
            following = session.exec(
                select(IhkOutbox.naechster_versuch)
                .where(col(IhkOutbox.status) == PENDING)
                .order_by(col(IhkOutbox.naechster_versuch))
            ).first()
        if following is None:
            return 60.0
        return max(0.0, (_utc(following) - _utc(self.clock())).total_seconds())

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.deliver_due()
            except Exception:  # keep delivering after a database hiccup
                log.exception("IHK outbox round failed")
                wait = self.target.retry_initial_seconds
            self._wake.wait(timeout=min(wait, 60.0))
            self._wake.clear()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ihk-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


def target_from(args: argparse.Namespace) -> IhkTarget | None:
    if not args.ihk_consumer_url:
        return None
    return IhkTarget(
        consumer_url=args.ihk_consumer_url,
        client=SubsystemId.parse(args.ihk_client),
        service=ServiceId.parse(args.ihk_service),
        retry_initial_seconds=args.ihk_retry_seconds,
        retry_max_seconds=args.ihk_retry_max_seconds,
        tls=EdgeTls.from_args(args, "ihk-"),
    )
