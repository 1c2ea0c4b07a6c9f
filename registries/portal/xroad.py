"""The portal's calls through Soest's gateway node, isolated from the web pages.

Every call the portal makes to another organisation goes through its own node's consumer
edge (X-Road REST ``r1``) as the client subsystem of the trade office, with the case
number in ``X-Road-Issue`` and the portal in ``X-Road-UserId``, so the exchange is signed,
access-checked and logged on both sides, and the citizen's data tracker can later name the
case. This module knows the wire formats (r1 paths, the X-Road error format, the
Melderegister's answer) and turns them into values and :class:`GatewayCallError`; the
pages only render what it returns.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import date
from typing import Any, Final
from urllib.parse import quote

import httpx

from gateway.core.ids import ServiceId, SubsystemId
from registries.edgetls import EdgeTls

__all__ = [
    "GatewayCallError",
    "MeldeDaten",
    "UsageEntry",
    "XRoadClient",
]

PERSON_NOT_FOUND: Final = "person_not_found"
"""Our code (not the gateway's) for the Melderegister's "nicht gefunden" answer."""
PERSON_AMBIGUOUS: Final = "person_ambiguous"
UPSTREAM_INVALID: Final = "upstream_invalid"
GATEWAY_UNREACHABLE: Final = "gateway_unreachable"


class GatewayCallError(Exception):
    """A call through the gateway did not give the portal what it needs.

    ``code`` is the gateway's stable error code (``X-Road-Error``, e.g.
    ``server.serverproxy.access_denied``) when the gateway refused, or one of this
    module's codes when the registry answered but not with data (person not found).
    """

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class MeldeDaten:
    """What the portal takes from the Melderegister's § 38 answer for a Gewerbeanmeldung."""

    familienname: str
    vornamen: str
    doktorgrad: str | None
    geschlecht: str
    geburtsdatum: date
    geburtsort: str
    geburtsstaat: str | None
    strasse: str
    hausnummer: str
    postleitzahl: str
    wohnort: str

    def as_dict(self) -> dict[str, str | None]:
        """JSON form, stored with the case and shown for review."""
        return {
            "familienname": self.familienname,
            "vornamen": self.vornamen,
            "doktorgrad": self.doktorgrad,
            "geschlecht": self.geschlecht,
            "geburtsdatum": self.geburtsdatum.isoformat(),
            "geburtsort": self.geburtsort,
            "geburtsstaat": self.geburtsstaat,
            "strasse": self.strasse,
            "hausnummer": self.hausnummer,
            "postleitzahl": self.postleitzahl,
            "wohnort": self.wohnort,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeldeDaten:
        return cls(
            familienname=str(data["familienname"]),
            vornamen=str(data["vornamen"]),
            doktorgrad=data.get("doktorgrad"),
            geschlecht=str(data["geschlecht"]),
            geburtsdatum=date.fromisoformat(str(data["geburtsdatum"])),
            geburtsort=str(data["geburtsort"]),
            geburtsstaat=data.get("geburtsstaat"),
            strasse=str(data["strasse"]),
            hausnummer=str(data["hausnummer"]),
            postleitzahl=str(data["postleitzahl"]),
            wohnort=str(data["wohnort"]),
        )


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """One read of the citizen's data as a provider node's data tracker reports it."""

    provider_service: str
    client: str
    service: str
    time: str
    issue: str | None
    user_id: str | None
    message_id: str | None


def r1_path(service: ServiceId) -> str:
    """``/r1/INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE``, each part percent-encoded."""
    parts = str(service).split("/")
    return "/r1/" + "/".join(quote(p, safe="") for p in parts)


def _gateway_error(response: httpx.Response) -> GatewayCallError | None:
    """The gateway's refusal in ``response``, if it is one (X-Road error format)."""
    code = response.headers.get("X-Road-Error")
    if code is None:
        return None
    message = code
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]
    except ValueError:
        pass
    return GatewayCallError(code, message, status=response.status_code)


@dataclass(frozen=True, slots=True)
class XRoadClient:
    """Calls through one consumer node as one client subsystem.

    ``transport`` lets tests inject an httpx transport; production uses the network.
    """

    consumer_url: str
    client: SubsystemId
    user_id: str
    timeout_seconds: float = 15.0
    transport: httpx.BaseTransport | None = None
    tls: EdgeTls | None = None
    """The node's consumer TLS port: its certificate to trust and the client's own
    registered certificate; None for a plain-HTTP consumer URL."""

    def _http(self) -> httpx.Client:
        verify: ssl.SSLContext | bool = True if self.tls is None else self.tls.context()
        return httpx.Client(timeout=self.timeout_seconds, transport=self.transport, verify=verify)

    def _get(
        self, service: ServiceId, params: dict[str, str], issue: str, request_id: str
    ) -> httpx.Response:
        headers = {
            "X-Road-Client": str(self.client),
            "X-Road-UserId": self.user_id,
            "X-Road-Issue": issue,
            "X-Road-Id": request_id,
            "Accept": "application/json",
        }
        url = self.consumer_url.rstrip("/") + r1_path(service)
        try:
            with self._http() as http:
                return http.get(url, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise GatewayCallError(
                GATEWAY_UNREACHABLE, f"Das Gateway ist nicht erreichbar ({type(exc).__name__})."
            ) from exc

    def read_person(
        self,
        service: ServiceId,
        *,
        familienname: str,
        vornamen: str,
        geburtsdatum: date,
        issue: str,
        request_id: str,
    ) -> MeldeDaten:
        """Ask the Melderegister (§ 38 BMG) for one person through the gateway.

        A "not found" and a blocked person look the same by design (§ 38(2) BMG), so the
        portal cannot and does not tell them apart.
        """
        response = self._get(
            service,
            {
                "familienname": familienname,
                "vornamen": vornamen,
                "geburtsdatum": geburtsdatum.isoformat(),
            },
            issue,
            request_id,
        )
        refused = _gateway_error(response)
        if refused is not None:
            raise refused
        try:
            body = response.json()
        except ValueError as exc:
            raise GatewayCallError(
                UPSTREAM_INVALID, "Antwort des Melderegisters ist kein JSON."
            ) from exc
        ergebnis = body.get("ergebnis") if isinstance(body, dict) else None
        if response.status_code == 404 or ergebnis == "nicht_gefunden":
            raise GatewayCallError(
                PERSON_NOT_FOUND,
                "Im Melderegister wurde keine Person mit diesen Angaben gefunden.",
                status=response.status_code,
            )
        if response.status_code == 409 or ergebnis == "nicht_eindeutig":
            raise GatewayCallError(
                PERSON_AMBIGUOUS,
                "Die Angaben passen auf mehrere Personen.",
                status=response.status_code,
            )
        if response.status_code != 200 or ergebnis != "gefunden":
            raise GatewayCallError(
                UPSTREAM_INVALID,
                f"Unerwartete Antwort des Melderegisters (HTTP {response.status_code}).",
                status=response.status_code,
            )
        try:
            person = body["person"]
            return MeldeDaten.from_dict({**person, **person["anschrift"]})
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayCallError(
                UPSTREAM_INVALID, "Die Antwort des Melderegisters ist unvollständig."
            ) from exc

    def find_usage(
        self, service: ServiceId, *, subject: str, issue: str, request_id: str
    ) -> list[UsageEntry]:
        """Ask one provider node's data tracker who read this person's data.

        The only place that knows the tracker's wire format (docs/data-tracker.md):
        ``GET {consumer}/r1/{provider subsystem}/findUsage?subject=...`` answered with
        ``{"subject", "provider", "usage": [{time, client, service, user_id, issue,
        message_id, ...}]}``. A node that answers otherwise is reported, not guessed at.
        """
        response = self._get(service, {"subject": subject}, issue, request_id)
        refused = _gateway_error(response)
        if refused is not None:
            raise refused
        try:
            body = response.json()
            raw = body["usage"] if isinstance(body, dict) else None
            if response.status_code != 200 or not isinstance(raw, list):
                raise ValueError("no usage list")
            return [
                UsageEntry(
                    provider_service=str(service),
                    client=str(u["client"]),
                    service=str(u["service"]),
                    time=str(u["time"]),
                    issue=None if u.get("issue") is None else str(u["issue"]),
                    user_id=None if u.get("user_id") is None else str(u["user_id"]),
                    message_id=None if u.get("message_id") is None else str(u["message_id"]),
                )
                for u in raw
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayCallError(
                UPSTREAM_INVALID,
                f"Unerwartete Antwort des Datencockpits (HTTP {response.status_code}).",
                status=response.status_code,
            ) from exc

    def member_names(self) -> dict[str, str]:
        """``{member id: name}`` from the node's ``listClients`` (the global configuration).

        The names the central authority registered ("Stadt Lippstadt") are the honest
        source for naming an organisation to a citizen: the portal keeps no list of its
        own that could drift. Best effort: if the node cannot answer, the tracker shows
        the identifiers instead, which is less friendly but still true.
        """
        url = self.consumer_url.rstrip("/") + "/listClients"
        try:
            with self._http() as http:
                response = http.get(url, headers={"Accept": "application/json"})
            members = response.json()["member"] if response.status_code == 200 else []
            names: dict[str, str] = {}
            for m in members:
                ident = m["id"]
                if ident.get("object_type") != "MEMBER":
                    continue
                member = "/".join(
                    str(ident[k]) for k in ("xroad_instance", "member_class", "member_code")
                )
                names[member] = str(m["name"])
            return names
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return {}
