"""One process of a running federation dies: it is reported and restarted, the others
keep answering. The supervisor of ``gateway demo --serve`` over real processes:
two nodes, their trust services and Lippstadt's Melderegister, each ``kill -9``-ed in
turn.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.sandbox.cities import LIPPSTADT, SOEST
from gateway.sandbox.localnet import HOST, LocalNet, ServiceSpec, free_port
from gateway.sandbox.supervisor import Backoff, Supervisor

pytestmark = pytest.mark.integration

SERVICE = LIPPSTADT.subsystem("melderegister").service("einfacheAuskunft")
GEWERBEAMT = SOEST.subsystem("gewerbeamt")


@dataclass
class Supervised:
    net: LocalNet
    supervisor: Supervisor
    reports: list[str]

    def process(self, name: str) -> subprocess.Popen[bytes]:
        (proc,) = [
            p
            for p in self.net.processes
            if (launch := self.net.launch_of(p)) is not None and launch.name == name
        ]
        return proc

    def pids(self) -> dict[str, int]:
        return {
            launch.name: p.pid
            for p in self.net.processes
            if (launch := self.net.launch_of(p)) is not None
        }


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervised]:
    root: Path = tmp_path_factory.mktemp("supervised")
    net = LocalNet.create(root, [SOEST, LIPPSTADT], datetime.now(UTC))
    port = free_port()
    net.add_service(ServiceSpec(SERVICE, f"http://{HOST}:{port}", None, (GEWERBEAMT,)))
    net.write_configs()
    reports: list[str] = []
    supervisor = Supervisor(net, backoff=Backoff(initial=0.5, maximum=4.0), report=reports.append)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            supervisor.poll()
            stop.wait(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    try:
        net.start_node(SOEST.ags)
        net.start_node(LIPPSTADT.ags)
        net.start_melderegister(port)
        thread.start()
        yield Supervised(net, supervisor, reports)
    finally:
        stop.set()
        thread.join(timeout=10)
        net.stop()


def _call(net: LocalNet) -> httpx.Response:
    """Soest's trade office asks Lippstadt's Melderegister (its health path)."""
    return httpx.get(
        f"{net.nodes[SOEST.ags].consumer_url}/r1/{SERVICE}/health",
        headers={"X-Road-Client": str(GEWERBEAMT)},
        timeout=30,
    )


def _eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"not within {timeout} s: {what}")


def _answers(net: LocalNet) -> bool:
    try:
        return _call(net).status_code == 200
    except httpx.HTTPError:
        return False


def _kill_and_watch(s: Supervised, name: str) -> str:
    """``kill -9`` the process ``name``; return the report of its death once it has been
    restarted, after checking nothing else was restarted meanwhile."""
    before = s.pids()
    victim = s.process(name)
    restarts = s.supervisor.restarts.get(name, 0)
    os.kill(victim.pid, signal.SIGKILL)
    _eventually(lambda: s.supervisor.restarts.get(name, 0) == restarts + 1, f"{name} restarted")
    after = s.pids()
    assert after[name] != victim.pid
    assert {k: v for k, v in after.items() if k != name} == {
        k: v for k, v in before.items() if k != name
    }, "only the dead process is restarted"
    (death,) = [r for r in s.reports if r.startswith(f"process {name} (pid {victim.pid})")]
    return death


def test_a_killed_register_is_reported_and_restarted(supervised: Supervised) -> None:
    net = supervised.net
    assert _call(net).status_code == 200
    death = _kill_and_watch(supervised, "melderegister")
    assert "killed by signal SIGKILL (9)" in death, death
    assert str(net.root / "logs" / "melderegister.log") in death, death  # where to look
    assert "restarting melderegister in 0.5 s" in supervised.reports
    # The nodes never stopped; the exchange works again once the register is back.
    assert httpx.get(f"{net.nodes[SOEST.ags].consumer_url}/health", timeout=10).is_success
    _eventually(lambda: _answers(net), "the exchange answers again after the restart")


def test_a_killed_node_is_reported_and_restarted_while_the_other_answers(
    supervised: Supervised,
) -> None:
    net = supervised.net
    soest = net.nodes[SOEST.ags]
    _eventually(lambda: _answers(net), "the federation answers")
    name = f"node-{LIPPSTADT.ags}"
    death = _kill_and_watch(supervised, name)
    assert "killed by signal SIGKILL (9)" in death, death
    assert "  | " in death, death  # the node's own last log lines
    # Soest's node kept running and answers its clients; exchanges resume.
    assert httpx.get(f"{soest.consumer_url}/health", timeout=10).is_success
    _eventually(lambda: _answers(net), "Lippstadt's restarted node answers exchanges")


def test_a_process_that_keeps_dying_waits_longer_each_time(supervised: Supervised) -> None:
    name = "trust"
    _kill_and_watch(supervised, name)
    _kill_and_watch(supervised, name)  # within a second of its restart
    waits = [r for r in supervised.reports if r.startswith(f"restarting {name} in ")]
    assert waits[-2:] == [f"restarting {name} in 0.5 s", f"restarting {name} in 1 s"], waits


def test_exit_on_failure_stops_at_the_first_death(tmp_path: Path) -> None:
    """``--exit-on-failure``: the death is reported and nothing is restarted."""
    net = LocalNet.create(tmp_path, [], datetime.now(UTC))
    reports: list[str] = []
    supervisor = Supervisor(net, report=reports.append, exit_on_failure=True)
    try:
        register = net.start_melderegister(free_port())
        assert supervisor.poll()
        register.kill()
        register.wait(timeout=10)
        assert not supervisor.poll()
        assert reports[0].startswith(f"process melderegister (pid {register.pid}) killed")
        assert reports[-1] == "stopping the federation: melderegister died (--exit-on-failure)"
        assert supervisor.restarts == {}
    finally:
        net.stop()
