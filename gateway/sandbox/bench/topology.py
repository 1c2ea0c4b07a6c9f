"""The processes of one bench run: the registry stub, the baselines and the two nodes.

Each scenario is a URL to load and the processes whose CPU time counts for it. The lean
relay pair and the nginx pair stand where the nodes stand, with the nodes' own
authentication certificates and the federation's CA, so every hop between the two
"nodes" is mutual TLS in all three; only the gateway signs, verifies and logs.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway.sandbox.bench import nginx
from gateway.sandbox.cities import BENCH_SERVICE, LIPPSTADT, SOEST
from gateway.sandbox.cities import TRADE_OFFICE as CLIENT
from gateway.sandbox.localnet import (
    LocalNet,
    ServiceSpec,
    free_port,
    wait_http,
)


@dataclass
class Scenario:
    name: str
    url: str
    headers: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]]


@dataclass
class Topology:
    net: LocalNet
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def stop(self) -> None:
        for proc in self.extra:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.extra:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.net.stop()


def _spawn(module: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", module, *args], stdout=out, stderr=subprocess.STDOUT
        )


def start_topology(root: Path, *, with_nginx: bool = True) -> Topology:
    net = LocalNet.create(root, [SOEST, LIPPSTADT], datetime.now(UTC))
    stub_port = free_port()
    stub_url = f"http://127.0.0.1:{stub_port}"
    net.add_service(
        ServiceSpec(
            id=BENCH_SERVICE,
            url=f"{stub_url}/echo",
            openapi_url=None,
            allowed=(CLIENT,),
            methods=("POST",),
        )
    )
    # Signed global configuration from LocalNet's in-process publisher; refreshed at the
    # production default so configuration polling stays out of the measured CPU time.
    net.write_configs(globalconf_refresh_seconds=60)
    topo = Topology(net)
    try:
        _start_processes(topo, root, stub_port, with_nginx=with_nginx)
    except BaseException:
        topo.stop()  # what did start must not outlive a start that failed
        raise
    return topo


def _start_processes(topo: Topology, root: Path, stub_port: int, *, with_nginx: bool) -> None:
    net = topo.net
    stub_url = f"http://127.0.0.1:{stub_port}"
    stub = _spawn(
        "gateway.sandbox.bench.stub", ["--port", str(stub_port)], root / "logs" / "stub.log"
    )
    topo.extra.append(stub)
    wait_http(f"{stub_url}/health", stub)

    soest, lippstadt = net.nodes[SOEST.ags], net.nodes[LIPPSTADT.ags]
    back_port, front_port = free_port(), free_port()
    back = _spawn(
        "gateway.sandbox.bench.relay",
        [
            "--port", str(back_port), "--upstream", stub_url, "--tls-in",
            "--cert", str(lippstadt.auth_cert), "--key", str(lippstadt.directory / "auth.key"),
            "--key-passphrase-file", str(lippstadt.key_passphrase_file), "--ca", str(net.ca_cert),
        ],
        root / "logs" / "relay-back.log",
    )  # fmt: skip
    front = _spawn(
        "gateway.sandbox.bench.relay",
        [
            "--port", str(front_port), "--upstream", f"https://127.0.0.1:{back_port}",
            "--cert", str(soest.auth_cert), "--key", str(soest.directory / "auth.key"),
            "--key-passphrase-file", str(soest.key_passphrase_file), "--ca", str(net.ca_cert),
        ],
        root / "logs" / "relay-front.log",
    )  # fmt: skip
    topo.extra += [back, front]
    wait_http(f"http://127.0.0.1:{front_port}/health", front)

    nginx_pair = _start_nginx(topo, root, stub_port) if with_nginx else None

    consumer = net.start_node(SOEST.ags)
    provider = net.start_node(LIPPSTADT.ags)
    topo.scenarios = {
        "direct": Scenario("direct", f"{stub_url}/echo", {}, {"registry": stub}),
        "relay": Scenario(
            "relay",
            f"http://127.0.0.1:{front_port}/echo",
            {},
            {"front": front, "back": back, "registry": stub},
        ),
        "gateway": Scenario(
            "gateway",
            f"{soest.consumer_url}/r1/{BENCH_SERVICE}",
            {"X-Road-Client": str(CLIENT)},
            {"consumer": consumer, "provider": provider, "registry": stub},
        ),
    }
    if nginx_pair is not None:
        url, front_nginx, back_nginx = nginx_pair
        topo.scenarios["nginx"] = Scenario(
            "nginx", url, {}, {"front": front_nginx, "back": back_nginx, "registry": stub}
        )


def _start_nginx(
    topo: Topology, root: Path, stub_port: int
) -> tuple[str, subprocess.Popen[bytes], subprocess.Popen[bytes]] | None:
    """The nginx pair in the nodes' places with their certificates, or None (and a note)
    when nginx is not installed."""
    if nginx.executable() is None:
        topo.notes.append(
            "nginx baseline skipped: nginx is not installed (Debian: apt-get install nginx)"
        )
        return None
    net = topo.net
    soest, lippstadt = net.nodes[SOEST.ags], net.nodes[LIPPSTADT.ags]
    back_port, front_port = free_port(), free_port()
    back = nginx.start(
        root / "nginx-back",
        port=back_port,
        upstream_port=stub_port,
        cert=lippstadt.auth_cert,
        key=lippstadt.directory / "auth.key",
        password_file=lippstadt.key_passphrase_file,
        ca=net.ca_cert,
        tls_in=True,
        tls_out=False,
    )
    topo.extra.append(back)
    front = nginx.start(
        root / "nginx-front",
        port=front_port,
        upstream_port=back_port,
        cert=soest.auth_cert,
        key=soest.directory / "auth.key",
        password_file=soest.key_passphrase_file,
        ca=net.ca_cert,
        tls_in=False,
        tls_out=True,
        peer_name=nginx.common_name(lippstadt.auth_cert),
    )
    topo.extra.append(front)
    url = f"http://127.0.0.1:{front_port}"
    wait_http(f"{url}/health", front)
    return f"{url}/echo", front, back
