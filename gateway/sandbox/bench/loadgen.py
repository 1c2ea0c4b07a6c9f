"""A closed-loop load generator: N workers, each sends its next request when one returns.

It runs in its own process (with uvloop) so its CPU is measured apart from the system
under test, and every scenario in one run is driven by the same code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp


@dataclass
class LoadResult:
    concurrency: int
    ok: int
    errors: int
    elapsed_s: float
    exchanges_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    first_error: str | None


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def run(
    url: str,
    concurrency: int,
    duration: float,
    count: int | None,
    headers: dict[str, str],
    body: bytes,
    ids_out: Path | None,
    method: str = "POST",
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    ids: list[str] = []
    sent = 0
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors, first_error, sent
            while True:
                if count is not None:
                    if sent >= count:
                        return
                    sent += 1
                elif time.perf_counter() >= deadline:
                    return
                start = time.perf_counter()
                try:
                    async with session.request(
                        method, url, data=body or None, headers=headers
                    ) as resp:
                        await resp.read()
                        ok = resp.status == 200
                        if ok:
                            request_id = resp.headers.get("X-Road-Request-Id")
                            if request_id and ids_out is not None:
                                ids.append(request_id)
                        elif first_error is None:
                            first_error = f"{resp.status} {resp.headers.get('X-Road-Error')}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    ok = False
                    if first_error is None:
                        first_error = f"{type(exc).__name__}: {exc}"
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if ids_out is not None:
        ids_out.write_text("\n".join(ids), "ascii")
    latencies.sort()
    return LoadResult(
        concurrency=concurrency,
        ok=len(latencies),
        errors=errors,
        elapsed_s=elapsed,
        exchanges_per_s=len(latencies) / elapsed if elapsed else 0.0,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        first_error=first_error,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="closed-loop HTTP load generator")
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--count", type=int, default=None, help="total requests instead")
    parser.add_argument("--header", action="append", default=[], help="NAME: VALUE")
    parser.add_argument("--body-bytes", type=int, default=1024)
    parser.add_argument("--ids-out", type=Path, default=None)
    parser.add_argument("--method", default="POST", help="GET sends no body")
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    headers.setdefault("Content-Type", "application/json")
    filler = max(0, args.body_bytes - len('{"pad":""}'))
    body = json.dumps({"pad": "x" * filler}).encode() if args.method != "GET" else b""
    work = run(
        args.url,
        args.concurrency,
        args.duration,
        args.count,
        headers,
        body,
        args.ids_out,
        args.method,
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        result = asyncio.run(work)
    else:
        result = uvloop.run(work)
    payload = asdict(result)
    payload["pid"] = os.getpid()
    sys.stdout.write(json.dumps(payload) + "\n")


if __name__ == "__main__":
    main()
