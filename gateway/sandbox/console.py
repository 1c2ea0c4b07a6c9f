"""The console's part of a loopback federation: ``gateway console serve`` over the
running central, and demo API keys to sign in with.

The keys are the central's own (``POST /admin/v1/api-keys``), one per role a visitor
would try, each written 0600 under ``<root>/console/``; the topology names the files,
not the secrets.
"""

from __future__ import annotations

from typing import Any

from gateway.central.service import write_secret
from gateway.sandbox.localnet import LocalNet
from gateway.sandbox.netfiles import HOST, free_port
from gateway.sandbox.processes import wait_http

DEMO_ROLES = ("system_administrator", "registration_officer", "observer")


def start_console(net: LocalNet, port: int | None = None) -> dict[str, Any]:
    """Start the console over ``net``'s central (which must run); its URL and the demo
    credentials, for ``topology.json``."""
    central = net.topology()["central_url"]
    port = port or free_port()
    proc = net._spawn(
        ["console", "serve", "--central-url", central, "--listen", f"{HOST}:{port}"], "console"
    )
    url = f"http://{HOST}:{port}"
    wait_http(f"{url}/", proc)
    folder = net.root / "console"
    folder.mkdir(parents=True, exist_ok=True)
    credentials = []
    for role in DEMO_ROLES:
        name = f"demo-{role.replace('_', '-')}"
        key_file = folder / f"{name}.key"
        if not key_file.exists():
            made = net.central_admin("POST", "/api-keys", {"name": name, "role": role})
            write_secret(key_file, made["key"].encode("ascii") + b"\n")
        credentials.append({"role": role, "name": name, "api_key_file": str(key_file)})
    return {"url": url, "credentials": credentials}
