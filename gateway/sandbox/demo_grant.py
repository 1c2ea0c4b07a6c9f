"""The demo's operator chapter: an access right granted and revoked on a running node.

Iserlohn's trade office asks Lippstadt's Melderegister through Iserlohn's node. Lippstadt's
node refuses it (no access right); Lippstadt's operator grants the right with
``gateway node admin access grant`` (a real subprocess holding Lippstadt's system
administrator key file, as an operator would type it), the same call then succeeds
without a restart, and after ``access revoke`` it is refused again. Kept apart from
``demo.py`` so the chapter is one readable unit.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from gateway.core.ids import ServiceId, SubsystemId
from gateway.sandbox.cities import LIPPSTADT, MELDEREGISTER_SERVICE, City
from gateway.sandbox.localnet import LocalNet
from gateway.sandbox.netfiles import NodeFiles

__all__ = ["TRADE_OFFICE_CODE", "GrantStory", "grant_and_revoke", "operator_grants"]

TRADE_OFFICE_CODE = "gewerbeamt"
"""The subsystem of Iserlohn's trade office (added to Iserlohn for the demo)."""
QUERY = {"familienname": "Schmidt", "vornamen": "Anna", "geburtsdatum": "1988-03-14"}
IN_FORCE_SECONDS = 5.0
"""How long the chapter waits for a change to show in an exchange (the node applies it
within one second; the margin is for a loaded machine)."""


@dataclass
class GrantStory:
    """What the chapter saw: the refusal codes and statuses, in order, and its text."""

    before: str = ""
    after_grant: int = 0
    after_revoke: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        denied = "server.serverproxy.access_denied"
        return self.before == denied and self.after_grant == 200 and self.after_revoke == denied


def _call(consumer: NodeFiles, client: SubsystemId, service: ServiceId) -> httpx.Response:
    """The trade office's information system calls the register through its own node."""
    tls = consumer.edge_tls(client.subsystem_code)
    return httpx.get(
        f"{consumer.client_url}/r1/{service}",
        params=QUERY,
        headers={
            "X-Road-Client": str(client),
            "X-Road-Issue": "GA-ISERLOHN-2026-17",
            "X-Road-UserId": "gewerbeamt-iserlohn-03",
        },
        timeout=30,
        verify=True if tls is None else tls.context(),
    )


def _admin(provider: NodeFiles, *args: str) -> tuple[str, subprocess.CompletedProcess[str]]:
    """``gateway node admin`` as its own process, with the provider's admin key file."""
    argv = [
        "gateway",
        "node",
        "admin",
        "--url",
        provider.metrics_url,
        "--key-file",
        str(provider.directory / "admin.key"),
        *args,
    ]
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", *argv], capture_output=True, text=True, timeout=60, check=False
    )
    return " ".join(argv), done


def _until(
    consumer: NodeFiles, client: SubsystemId, service: ServiceId, want_ok: bool
) -> httpx.Response:
    """The call, repeated until it succeeds (``want_ok``) or is refused, or time is up."""
    deadline = time.monotonic() + IN_FORCE_SECONDS
    while True:
        answer = _call(consumer, client, service)
        if (answer.status_code == 200) == want_ok or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def grant_and_revoke(
    consumer: NodeFiles, provider: NodeFiles, client: SubsystemId, service: ServiceId
) -> GrantStory:
    """Refused, granted through the CLI, allowed, revoked, refused: the provider's node
    runs throughout."""
    story = GrantStory()
    lines = story.lines
    refused = _call(consumer, client, service)
    story.before = refused.headers.get("X-Road-Error", f"HTTP {refused.status_code}")
    lines += [
        f"{client} asks {service} through Iserlohn's node:",
        f"  refused: HTTP {refused.status_code} {story.before}",
        "Lippstadt's operator grants the right on the running node:",
    ]
    for verb in ("grant", "revoke"):
        command, done = _admin(provider, "access", verb, str(service), "--client", str(client))
        lines.append(f"$ {command}")
        lines += [f"  {line}" for line in (done.stdout + done.stderr).strip().splitlines()]
        lines.append(f"  exit status {done.returncode}")
        if done.returncode != 0:
            return story
        answer = _until(consumer, client, service, want_ok=verb == "grant")
        if verb == "grant":
            story.after_grant = answer.status_code
            person = answer.json().get("person", {}) if answer.status_code == 200 else {}
            lines += [
                f"the same call: HTTP {answer.status_code}"
                + (f", {person.get('vornamen')} {person.get('familienname')}" if person else ""),
                "(no restart: the change is recorded in Lippstadt's log, then in force)",
                "then the operator revokes it:",
            ]
        else:
            story.after_revoke = answer.headers.get("X-Road-Error", f"HTTP {answer.status_code}")
            lines.append(
                f"the same call: refused again, HTTP {answer.status_code} {story.after_revoke}"
            )
    lines.append("both changes are admin records in Lippstadt's log: gateway node admin audit")
    return story


def operator_grants(net: LocalNet, city: City, say: Callable[[str, str], None]) -> bool:
    """The chapter for ``city``'s trade office and Lippstadt's Melderegister, told with
    ``say``; whether each step came out as it should."""
    story = grant_and_revoke(
        net.nodes[city.ags],
        net.nodes[LIPPSTADT.ags],
        city.subsystem(TRADE_OFFICE_CODE),
        MELDEREGISTER_SERVICE,
    )
    say(
        "11. An operator grants Iserlohn's trade office access on Lippstadt's running node",
        "\n".join(story.lines),
    )
    return story.ok
