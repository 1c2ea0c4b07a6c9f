"""The demo federation's members, in one place: who they are and what they serve.

Soest, Lippstadt and Iserlohn are cities of the instance ``DE-NRW``; the IHK Arnsberg
(chamber of commerce for all three, Hellweg-Sauerland) is not a city and not part of any
city's administration, so it is its own member with its own node
(docs/adr/0013-portal-and-ihk-notification.md). The loopback federation
(:mod:`gateway.sandbox.localnet`), the demo, the compose set-up, the benchmark and the
portal's processes (:mod:`gateway.sandbox.federation`) all take them from here, so a
member's identifier, name, subsystems and services are written once.

The product never imports this module: a real deployment names its members in its own
configuration (docs/adr/0017-product-apart-from-its-sandbox.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway.core.ids import MemberId, NodeId, SubsystemId

INSTANCE = "DE-NRW"
EE_INSTANCE = "EE-TEST"
"""The federated Estonian test instance: its own central, CA and trust services."""


@dataclass(frozen=True, slots=True)
class City:
    """A member of the instance running one node."""

    name: str
    ags: str
    subsystems: tuple[str, ...]
    server_code: str = "ss1"
    instance: str = INSTANCE

    @property
    def member(self) -> MemberId:
        return MemberId(self.instance, "GOV", self.ags)

    @property
    def node(self) -> NodeId:
        return NodeId(self.instance, "GOV", self.ags, self.server_code)

    def subsystem(self, code: str) -> SubsystemId:
        return self.member.subsystem(code)

    @property
    def key(self) -> str:
        """The federation's name for this node (``LocalNet.nodes``, its directory): the
        AGS, with the server code for a member's further nodes (``05974028-ss2``)."""
        return self.ags if self.server_code == "ss1" else f"{self.ags}-{self.server_code}"

    def on_server(self, server_code: str) -> City:
        """The same member on another node of its own: listed beside this one, it makes
        the federation host the member (its subsystems and services) on both."""
        return replace(self, server_code=server_code)


SOEST = City("Stadt Soest", "05974040", ("gewerbeamt",))
"""The consumer: its trade office (``gewerbeamt``) runs the portal and the Gewerberegister."""
LIPPSTADT = City("Stadt Lippstadt", "05974028", ("melderegister",))
"""The first provider: its Melderegister answers the § 38 BMG query."""
ISERLOHN = City("Stadt Iserlohn", "05962024", ("melderegister",))
"""The third city: its node serves its own Melderegister (``--city iserlohn``)."""
IHK = City("IHK Arnsberg", "IHK-ARNSBERG", ("kammer",))
"""The chamber of commerce, notified of each new trade through the gateway."""

RIK = City(
    "Registrite ja Infosüsteemide Keskus", "70000310", ("ariregister", "registriosakond"),
    instance=EE_INSTANCE,
)  # fmt: skip
"""The Estonian member (Centre of Registers and Information Systems): its node serves the
e-Business Register (``ariregister``); its registration department (``registriosakond``)
is the Estonian agency that asks Lippstadt's Melderegister where Lippstadt granted it."""

TRADE_OFFICE = SOEST.subsystem("gewerbeamt")
"""The client every exchange of the story is made as (the portal's default client)."""
MELDEREGISTER_SERVICE = LIPPSTADT.subsystem("melderegister").service("einfacheAuskunft")
ISERLOHN_MELDEREGISTER_SERVICE = ISERLOHN.subsystem("melderegister").service("einfacheAuskunft")
IHK_SERVICE = IHK.subsystem("kammer").service("gewerbemeldungen")
"""The IHK's inbox for Gewerbeanzeigen; only Soest's trade office may post."""

MELDEREGISTER_TRACKER = LIPPSTADT.subsystem("melderegister").service("findUsage")
"""Lippstadt's data tracker for the Melderegister (built into its node)."""
ISERLOHN_TRACKER = ISERLOHN.subsystem("melderegister").service("findUsage")
"""Iserlohn's data tracker for its Melderegister (built into its node)."""
TRACKERS = (MELDEREGISTER_TRACKER, ISERLOHN_TRACKER)
"""Every tracker "Meine Daten" asks in the three-city federation."""

ARIREGISTER_SERVICE = RIK.subsystem("ariregister").service("ettevotted")
"""The Estonian business register's company query (``/ettevotted/{registry code}``)."""

BENCH_SERVICE = LIPPSTADT.subsystem("melderegister").service("echo")
"""The benchmark's service: a stub registry that echoes, behind Lippstadt's node."""
