"""Faults at given times: a schedule of named faults, run in a thread beside the load.

A fault is a function that breaks something, waits ``hold`` seconds, heals it and
returns once what it broke is back (its process answers its readiness check); the
schedule records when each fault began, when it was healed and when it was ready, so the
report can say what each fault cost (refusals inside its window, time to recover).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Inject = Callable[[float], None]
"""Break, hold for the given seconds, heal, and return when ready again."""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    at: float
    """Seconds after the run began."""
    name: str
    hold: float
    """How long the fault lasts before it is healed."""


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """What happened to one scheduled fault, in seconds since the run began."""

    name: str
    started: float
    healed: float
    ready: float
    error: str | None = None

    @property
    def recovery_s(self) -> float:
        """From healing to the broken part answering its readiness check again."""
        return self.ready - self.healed


def random_schedule(
    names: Sequence[str],
    duration: float,
    *,
    first: float = 20.0,
    gap: tuple[float, float] = (30.0, 60.0),
    hold: tuple[float, float] = (2.0, 8.0),
    seed: int = 18,
) -> list[FaultSpec]:
    """A fault every ``gap`` seconds (uniformly drawn), chosen at random from ``names``,
    ending before ``duration``; seeded, so a soak can be repeated exactly."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable schedule, not secrets
    specs: list[FaultSpec] = []
    at = first
    while at + hold[1] < duration:
        specs.append(FaultSpec(round(at, 1), rng.choice(list(names)), round(rng.uniform(*hold), 1)))
        at += rng.uniform(*gap)
    return specs


class Schedule:
    """Runs ``specs`` in order in a daemon thread; ``events`` when ``join`` returns."""

    def __init__(self, specs: Sequence[FaultSpec], faults: Mapping[str, Inject]) -> None:
        unknown = sorted({s.name for s in specs} - set(faults))
        if unknown:
            raise ValueError(f"no such faults: {', '.join(unknown)}")
        self.specs = sorted(specs, key=lambda s: s.at)
        self.faults = faults
        self.events: list[FaultEvent] = []
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def start(self, t0: float) -> None:
        self._t0 = t0
        self._thread = threading.Thread(target=self._run, daemon=True, name="faults")
        self._thread.start()

    def join(self, timeout: float | None = None) -> list[FaultEvent]:
        if self._thread is not None:
            self._thread.join(timeout)
        return list(self.events)

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _run(self) -> None:
        for spec in self.specs:
            wait = spec.at - self._now()
            if wait > 0:
                time.sleep(wait)
            started = self._now()
            error: str | None = None
            try:
                self.faults[spec.name](spec.hold)
            except Exception as exc:  # recorded and reported: the run's check fails on it
                error = f"{type(exc).__name__}: {exc}"
            ready = self._now()
            healed = started + spec.hold
            self.events.append(FaultEvent(spec.name, started, min(healed, ready), ready, error))
