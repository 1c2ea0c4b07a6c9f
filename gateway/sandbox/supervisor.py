"""Keep a loopback federation's processes running: report a death, restart with backoff.

``gateway demo --serve`` leaves a federation up for trying faults by hand: ``kill -9``
a node or a register and watch what the others do. A death is reported (which process,
its exit code or signal, the last lines of its log, which holds its stdout and stderr)
and the process is started again with the same command after a delay that doubles
with each quick death (1, 2, 4, ... s, at most 30 s by default) and starts over once it
has run for a while. The other processes are never touched. ``--exit-on-failure``
restores stopping the whole federation at the first death.

The policy (``Backoff``) is pure and takes the time as an argument; ``Supervisor.poll``
takes ``now`` from an injected monotonic clock.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.sandbox.localnet import Launch, LocalNet

TAIL_LINES = 10
"""Lines of a dead process's log shown in its report."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between restarts of one process."""

    initial: float = 1.0
    maximum: float = 30.0
    stable_after: float = 60.0
    """A process that ran at least this long before dying starts over at ``initial``."""

    def delay(self, previous: float | None, ran_for: float) -> float:
        """The wait before the next start, given the last wait (``None``: first death)
        and how long the process ran: a process that keeps dying at once is not
        restarted in a tight loop, one that dies after a long run comes back at once."""
        if previous is None or ran_for >= self.stable_after:
            return self.initial
        return min(previous * 2, self.maximum)


def describe_exit(returncode: int) -> str:
    """``exited with code 1`` or ``killed by signal SIGKILL (9)``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {name} ({-returncode})"
    return f"exited with code {returncode}"


def log_tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a log (read from its end: logs grow across restarts)."""
    try:
        with path.open("rb") as log:
            log.seek(0, 2)
            size = log.tell()
            log.seek(max(0, size - 16 * 1024))
            text = log.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return [f"(log unreadable: {exc})"]
    return text.splitlines()[-lines:]


@dataclass
class _Pending:
    launch: Launch
    due: float
    delay: float


@dataclass
class Supervisor:
    """Watches ``net.processes``; ``poll`` reports deaths and restarts when due."""

    net: LocalNet
    backoff: Backoff = field(default_factory=Backoff)
    report: Callable[[str], None] = print
    clock: Callable[[], float] = time.monotonic
    exit_on_failure: bool = False
    restarts: dict[str, int] = field(default_factory=dict, init=False)
    """Restarts made so far, by process name."""
    _started: dict[int, float] = field(default_factory=dict, init=False, repr=False)
    _delays: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _pending: list[_Pending] = field(default_factory=list, init=False, repr=False)

    def poll(self) -> bool:
        """One round: report dead processes, schedule and make due restarts.

        Returns ``False`` once a process died and ``exit_on_failure`` is set (the caller
        stops the federation), ``True`` otherwise.
        """
        now = self.clock()
        for proc in list(self.net.processes):
            self._started.setdefault(proc.pid, now)
            if proc.poll() is None:
                continue
            launch = self.net.launch_of(proc)
            name = launch.name if launch is not None else f"pid {proc.pid}"
            self._report_death(name, proc, launch)
            if self.exit_on_failure:
                self.report(f"stopping the federation: {name} died (--exit-on-failure)")
                return False
            self.net.forget(proc)
            if launch is None:
                continue
            ran_for = now - self._started.pop(proc.pid, now)
            delay = self.backoff.delay(self._delays.get(name), ran_for)
            self._delays[name] = delay
            self._pending.append(_Pending(launch, now + delay, delay))
            self.report(f"restarting {name} in {delay:g} s")
        for pending in [p for p in self._pending if p.due <= now]:
            self._pending.remove(pending)
            self._restart(pending.launch, now)
        return True

    def _report_death(
        self, name: str, proc: subprocess.Popen[bytes], launch: Launch | None
    ) -> None:
        lines = [f"process {name} (pid {proc.pid}) {describe_exit(proc.returncode)}"]
        if launch is not None:
            tail = log_tail(launch.log)
            lines.append(f"last lines of {launch.log}:" if tail else f"{launch.log} is empty")
            lines += [f"  | {line}" for line in tail]
        self.report("\n".join(lines))

    def _restart(self, launch: Launch, now: float) -> None:
        try:
            proc = self.net.respawn(launch)
        except OSError as exc:
            delay = self.backoff.delay(self._delays.get(launch.name), 0.0)
            self._delays[launch.name] = delay
            self._pending.append(_Pending(launch, now + delay, delay))
            self.report(f"cannot restart {launch.name}: {exc}; trying again in {delay:g} s")
            return
        self._started[proc.pid] = now
        self.restarts[launch.name] = self.restarts.get(launch.name, 0) + 1
        self.report(f"restarted {launch.name} as pid {proc.pid}")

    def run(self, interval: float = 0.5) -> None:
        """Poll until a process dies under ``exit_on_failure`` (or KeyboardInterrupt)."""
        while self.poll():
            time.sleep(interval)
