"""The console's part of a loopback federation: ``gateway console serve`` over the
running central (and one node's management API), and demo API keys to sign in with.

The central's keys are its own (``POST /admin/v1/api-keys``), one per role a visitor
would try, each written 0600 under ``<root>/console/``; the node's is the system
administrator key it made at its first start (``admin.key`` beside its ``node.toml``).
The topology names the files, not the secrets.
"""

from __future__ import annotations

from typing import Any

from gateway.central.service import write_secret
from gateway.sandbox.localnet import LocalNet
from gateway.sandbox.netfiles import HOST, free_port
from gateway.sandbox.processes import wait_http

DEMO_ROLES = ("system_administrator", "registration_officer", "observer")


def start_console(
    net: LocalNet, node: str | None = None, port: int | None = None
) -> dict[str, Any]:
    """Start the console over ``net``'s central (which must run) and, if named, the
    management API of the node of AGS ``node``; its URL and the demo credentials, for
    ``topology.json``."""
    central = net.topology()["central_url"]
    port = port or free_port()
    args = ["console", "serve", "--central-url", central, "--listen", f"{HOST}:{port}"]
    if node is not None:
        args += ["--node-url", net.nodes[node].metrics_url]
    proc = net._spawn(args, "console")
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
        credentials.append(
            {"api": "central", "role": role, "name": name, "api_key_file": str(key_file)}
        )
    if node is not None:
        files = net.nodes[node]
        credentials.append(
            {
                "api": "node",
                "node": str(files.city.node),
                "role": "system_administrator",
                "name": "admin",
                "api_key_file": str(files.directory / "admin.key"),
            }
        )
    return {"url": url, "credentials": credentials}
