"""The recorded closed-loop load: every request the harness sent and what came back.

Each worker sends its next request when the last one returned (closed loop, as an
information system does), optionally paced to a target rate. Every request is kept as
an :class:`Outcome`: its sequence number, the body size, the status, the ``X-Road-Error``
code, the ``X-Road-Request-Id`` (the message id both nodes log it under) and its start
and end, in seconds since the run began. The checks (``checker.py``) compare this
history with the nodes' logs, so a request the harness did not record cannot pass.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

BIG_BODY = 1024 * 1024
"""The soak's large body: 1 MiB, below the node's default ``max_body_bytes``."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request and its answer; ``status`` None: no HTTP answer at all (``error``)."""

    seq: int
    worker: int
    body_bytes: int
    started: float
    ended: float
    status: int | None
    code: str | None
    request_id: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class Target:
    """Where the load goes: the consumer node's ``/r1/...`` URL and the calling client."""

    url: str
    client: str


class History:
    """Outcomes in the order they ended; safe to append from many threads."""

    def __init__(self, outcomes: Iterable[Outcome] = ()) -> None:
        self._lock = threading.Lock()
        self._outcomes = list(outcomes)

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            self._outcomes.append(outcome)

    @property
    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes)

    def write(self, path: Path) -> None:
        """One JSON object per line: the history an operator can re-check later."""
        lines = [json.dumps(asdict(o), sort_keys=True) for o in self.outcomes]
        path.write_text("\n".join(lines) + ("\n" if lines else ""), "utf-8")

    @classmethod
    def read(cls, path: Path) -> History:
        text = path.read_text("utf-8")
        return cls(Outcome(**json.loads(line)) for line in text.splitlines() if line)


class ClosedLoop:
    """``workers`` threads sending requests until ``stop``; each outcome into ``history``.

    ``big_every``: every n-th request of a worker carries a 1 MiB body (0: never);
    ``rate``: the target requests per second of all workers together (None: as fast as
    answers come). ``timeout`` is generous: a stalled peer must end in the node's own
    refusal, not in the harness giving up.
    """

    def __init__(
        self,
        target: Target,
        history: History,
        *,
        workers: int = 4,
        big_every: int = 0,
        rate: float | None = None,
        timeout: float = 60.0,
        seed: int = 18,
    ) -> None:
        self.target = target
        self.history = history
        self.workers = workers
        self.big_every = big_every
        self.rate = rate
        self.timeout = timeout
        self._seed = seed
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seq = 0
        self._seq_lock = threading.Lock()
        self.t0 = time.monotonic()

    def start(self, t0: float | None = None) -> None:
        self.t0 = time.monotonic() if t0 is None else t0
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, args=(n,), daemon=True, name=f"load-{n}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def _next_seq(self) -> int:
        with self._seq_lock:
            self._seq += 1
            return self._seq

    def _work(self, worker: int) -> None:
        rng = random.Random(self._seed * 1000 + worker)  # noqa: S311 - load shape, not secrets
        interval = self.workers / self.rate if self.rate else 0.0
        headers = {"X-Road-Client": self.target.client, "Content-Type": "application/json"}
        count = 0
        with httpx.Client(timeout=self.timeout) as http:
            while not self._stop.is_set():
                count += 1
                big = self.big_every > 0 and count % self.big_every == 0
                size = BIG_BODY if big else rng.randrange(64, 4096)
                seq = self._next_seq()
                body = json.dumps({"seq": seq, "pad": "x" * size}).encode()
                started = time.monotonic()
                self.history.add(self._send(http, headers, body, seq, worker, started))
                if interval:
                    self._stop.wait(max(0.0, started + interval - time.monotonic()))

    def _send(
        self,
        http: httpx.Client,
        headers: dict[str, str],
        body: bytes,
        seq: int,
        worker: int,
        started: float,
    ) -> Outcome:
        try:
            response = http.post(self.target.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(
                seq,
                worker,
                len(body),
                started - self.t0,
                time.monotonic() - self.t0,
                None,
                None,
                None,
                f"{type(exc).__name__}: {exc}"[:300],
            )
        return Outcome(
            seq,
            worker,
            len(body),
            started - self.t0,
            time.monotonic() - self.t0,
            response.status_code,
            response.headers.get("X-Road-Error"),
            response.headers.get("X-Road-Request-Id"),
        )
