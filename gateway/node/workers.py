"""Running a node: one process, or a parent process and N workers sharing its ports.

``gateway node serve --workers N`` lets one node use more than one core. The parent binds
every listening port the node's configuration uses, once, and starts N worker
processes that inherit those sockets (the kernel spreads connections over the
processes accepting on one socket); a port configured as ``:0`` is chosen once and
shared. The workers are ordinary node processes of a node cluster: each writes the
shared PostgreSQL log, one of them is elected to run the timestamper and the witness
(``gateway/node/cluster.py``). A SQLite log has one writer per file, so several workers
are refused on it.

The parent only supervises: a worker that dies is started again (the others serve
meanwhile, and leadership moves if the dead one led); a worker that keeps dying right
after it starts (a broken configuration, a database that refuses it) ends the node;
SIGTERM or SIGINT stops every worker, each draining and closing its log.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

from gateway.messagelog.leader import Leadership
from gateway.net.heap import keep_freed_pages
from gateway.node.config import ConfigError, NodeConfig
from gateway.node.server import Endpoints, Node

__all__ = ["listen_addresses", "parse_fds", "run_node", "supervise"]

log = logging.getLogger("gateway.node")

QUICK_EXIT_SECONDS = 5.0
"""A worker that ends sooner than this after its start counts as failing to start."""
QUICK_EXITS_ALLOWED = 5
"""Failed starts in a row after which the parent gives up and stops the node."""


async def run_node(
    config: NodeConfig,
    *,
    ready: Callable[[Endpoints], None] | None = None,
    sockets: Mapping[str, socket.socket] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM, then drain and close the log."""
    keep_freed_pages()  # a large body's pages reused, not given back (gateway/net/heap.py)
    node = Node(config, sockets=sockets)
    endpoints = await node.start()
    if ready is not None:
        ready(endpoints)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await node.stop()


def listen_addresses(config: NodeConfig) -> dict[str, str]:
    """The ports a node with ``config`` listens on, by the names ``Node`` gives them."""
    node = config.node
    ports: dict[str, str] = {}
    if node.metrics_listen:
        ports["admin"] = node.metrics_listen
    if node.internal_tls_cert is not None and node.internal_tls_key is not None:
        ports["consumer_tls"] = node.consumer_tls_listen
    if config.serves_plain_http():
        ports["consumer"] = node.consumer_listen
    ports["peer"] = node.peer_listen
    return ports


def _bind(hostport: str) -> socket.socket:
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {hostport}: {exc}") from None
    sock.set_inheritable(True)
    return sock


def parse_fds(spec: str) -> dict[str, socket.socket]:
    """The sockets a worker inherited, from the parent's ``name=fd,...``."""
    sockets: dict[str, socket.socket] = {}
    for part in filter(None, spec.split(",")):
        name, _, fd = part.partition("=")
        sockets[name] = socket.socket(fileno=int(fd))
    return sockets


def supervise(config_path: Path, config: NodeConfig, workers: int) -> int:
    """Bind the node's ports, run ``workers`` worker processes until SIGTERM/SIGINT.

    Returns the exit status: 0 after a stop, 1 if workers kept failing to start.
    """
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if not Leadership.elects(config.node.log_location):
        raise ConfigError(
            f"--workers {workers} needs the message log in PostgreSQL ([node] database_url):"
            f" a SQLite log ({config.node.log_location}) has one writer process"
        )
    sockets = {name: _bind(address) for name, address in listen_addresses(config).items()}
    spec = ",".join(f"{name}={sock.fileno()}" for name, sock in sockets.items())
    command = [sys.executable, "-m", "gateway", "node", "serve", "--config", str(config_path)]
    command += ["--listen-fds", spec]
    fds = tuple(sock.fileno() for sock in sockets.values())
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)

    def spawn() -> tuple[subprocess.Popen[bytes], float]:
        worker = subprocess.Popen(command, pass_fds=fds)  # noqa: S603 - our interpreter, our module
        return worker, time.monotonic()

    procs = [spawn() for _ in range(workers)]
    bound = ", ".join(f"{n} {s.getsockname()[0]}:{s.getsockname()[1]}" for n, s in sockets.items())
    print(
        f"node {config.node.id}: {workers} workers (pids "
        f"{', '.join(str(p.pid) for p, _ in procs)}) on {bound}",
        flush=True,
    )
    quick_exits = 0
    status = 0
    while not stopping.wait(0.2):
        for i, (proc, started) in enumerate(procs):
            code = proc.poll()
            if code is None:
                continue
            quick_exits = quick_exits + 1 if time.monotonic() - started < QUICK_EXIT_SECONDS else 0
            if quick_exits > QUICK_EXITS_ALLOWED:
                print(
                    f"node {config.node.id}: workers keep exiting at start (last: code {code});"
                    " stopping",
                    file=sys.stderr,
                    flush=True,
                )
                stopping.set()
                status = 1
                break
            procs[i] = spawn()
            print(
                f"node {config.node.id}: worker {proc.pid} exited with code {code};"
                f" started worker {procs[i][0].pid}",
                file=sys.stderr,
                flush=True,
            )
    for proc, _ in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc, _ in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for sock in sockets.values():
        sock.close()
    return status
