"""Load from ``wrk`` (Debian's package) when installed, in the load generator's place.

A Python load generator spends about as much CPU per request as a lean proxy hop, on the
same two cores as the processes it measures; wrk (C, one thread, closed loop per
connection like ``loadgen``) spends a fraction of that, so the figures are less
depressed by their own measurement. The Python generator stays the fallback and drives
the runs that count a fixed number of requests (the soak), which wrk cannot.

wrk sends a POST with headers and a body only from a Lua script; the one generated here
also counts successes and failures itself (a status other than 200 is a failure, as in
``loadgen``), keeps the first failure's status and ``X-Road-Error``, collects each
success's ``X-Road-Request-Id`` for the log check when asked, and prints one JSON line
in ``loadgen``'s shape.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

_SCRIPT = """
wrk.method = %(method)s
wrk.body = %(body)s
%(headers)s
%(numbered)s
local threads = {}
local ids_path = %(ids_path)s

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  bad = 0
  first = ""
  ids = {}
end

local function header(headers, wanted)
  local value = headers[wanted]
  if value ~= nil then return value end
  local lower = string.lower(wanted)
  for name, v in pairs(headers) do
    if string.lower(name) == lower then return v end
  end
  return nil
end

function response(status, headers, body)
  if status == %(ok_status)d then
    ok = ok + 1
    if ids_path ~= nil then
      local id = header(headers, "X-Road-Request-Id")
      if id ~= nil then ids[#ids + 1] = id end
    end
  else
    bad = bad + 1
    if first == "" then
      first = tostring(status) .. " " .. tostring(header(headers, "X-Road-Error"))
    end
  end
end

function done(summary, latency, requests)
  local total_ok, total_bad, first_error = 0, 0, ""
  local out = nil
  if ids_path ~= nil then out = io.open(ids_path, "w") end
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_bad = total_bad + thread:get("bad")
    local f = thread:get("first")
    if first_error == "" and f ~= "" then first_error = f end
    if out ~= nil then
      for _, id in ipairs(thread:get("ids")) do out:write(id, "\\n") end
    end
  end
  if out ~= nil then out:close() end
  local e = summary.errors
  total_bad = total_bad + e.connect + e.read + e.write + e.timeout
  if first_error == "" and (e.connect + e.read + e.write + e.timeout) > 0 then
    first_error = string.format("socket errors: connect %%d, read %%d, write %%d, timeout %%d",
      e.connect, e.read, e.write, e.timeout)
  end
  io.write(string.format(
    "WRK-RESULT {\\"ok\\": %%d, \\"errors\\": %%d, \\"elapsed_s\\": %%.6f, " ..
    "\\"p50_ms\\": %%.4f, \\"p95_ms\\": %%.4f, \\"p99_ms\\": %%.4f, \\"first_error\\": %%q}\\n",
    total_ok, total_bad, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, first_error))
end
"""


def executable() -> str | None:
    return shutil.which("wrk")


def _lua_string(value: str | bytes) -> str:
    """A Lua long-bracket-free string literal (escapes every byte that needs it)."""
    data = value.encode() if isinstance(value, str) else value
    text = data.decode("latin-1")
    return (
        '"'
        + "".join(c if " " <= c <= "~" and c not in '"\\' else f"\\{ord(c):03d}" for c in text)
        + '"'
    )


_NUMBERED = """
local sent = 0
function request()
  sent = sent + 1
  return wrk.format(nil, nil, nil, %(before)s .. sent .. %(after)s)
end
"""


def script(
    *,
    method: str,
    headers: dict[str, str],
    body: bytes,
    ids_out: Path | None,
    numbered: tuple[bytes, bytes] | None = None,
    ok_status: int = 200,
) -> str:
    """The Lua script for one run: the request, the counting and the JSON line.

    With ``numbered`` (the text before and after a number), each request's body is its
    own: the two parts around the request's number in the run, so a service that keeps
    what it receives stores a new record each time. ``ok_status`` is the status counted
    as a success.
    """
    lines = "\n".join(
        f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}"
        for name, value in headers.items()
    )
    return _SCRIPT % {
        "method": _lua_string(method),
        "body": _lua_string(body) if body else "nil",
        "headers": lines,
        "ids_path": _lua_string(str(ids_out)) if ids_out is not None else "nil",
        "numbered": ""
        if numbered is None
        else _NUMBERED % {"before": _lua_string(numbered[0]), "after": _lua_string(numbered[1])},
        "ok_status": ok_status,
    }


def run(
    url: str,
    *,
    concurrency: int,
    duration: float,
    headers: dict[str, str],
    body: bytes,
    method: str,
    workdir: Path,
    ids_out: Path | None = None,
    numbered: tuple[bytes, bytes] | None = None,
    ok_status: int = 200,
) -> dict[str, Any]:
    """One closed-loop run with ``concurrency`` connections on one wrk thread
    (``numbered`` and ``ok_status``: :func:`script`).

    wrk counts whole seconds, so ``duration`` is rounded up to at least one.
    """
    exe = executable()
    if exe is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    workdir.mkdir(parents=True, exist_ok=True)
    lua = workdir / "wrk-request.lua"
    lua.write_text(
        script(
            method=method,
            headers=headers,
            body=body,
            ids_out=ids_out,
            numbered=numbered,
            ok_status=ok_status,
        ),
        "utf-8",
    )
    seconds = max(1, math.ceil(duration))
    done = subprocess.run(  # noqa: S603 - a fixed program with our own arguments
        [
            exe, "--threads", "1", "--connections", str(concurrency),
            "--duration", f"{seconds}s", "--timeout", "60s", "--script", str(lua), url,
        ],
        capture_output=True,
        check=True,
        timeout=seconds + 120,
    )  # fmt: skip
    line = next(
        (ln for ln in done.stdout.decode().splitlines() if ln.startswith("WRK-RESULT ")), None
    )
    if line is None:
        raise RuntimeError(f"wrk printed no result: {done.stdout!r} {done.stderr!r}")
    result: dict[str, Any] = json.loads(line.removeprefix("WRK-RESULT "))
    result["concurrency"] = concurrency
    elapsed = result["elapsed_s"]
    result["exchanges_per_s"] = result["ok"] / elapsed if elapsed else 0.0
    result["first_error"] = result["first_error"] or None
    result["loadgen"] = "wrk"
    return result
