"""``make fuzz``: each target of ``tests/fuzz/targets.py`` fuzzed for a fixed time.

    python -m tests.fuzz.run [--seconds N] [TARGET ...]  (all targets, FUZZ_SECONDS or 60 s)
    python -m tests.fuzz.run --replay FILE TARGET        (run one saved input again)

Each target runs in a process of its own: coverage-guided with atheris (libFuzzer) when
it is installed (``pip install -e '.[fuzz]'``), else a loop of random damage to the
seeds for the same time. Inputs that raise anything but the target's documented
refusal are saved under ``crashes/<target>/`` (gitignored) and the run fails; the
corpus libFuzzer grows is kept in ``.fuzz/corpus/<target>/`` so the next run starts
where this one ended. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CRASHES = ROOT / "crashes"
WORK = ROOT / ".fuzz"
INSTRUMENTED = ["gateway", "registries", "asn1crypto", "tuf", "securesystemslib"]
_RESULT = "FUZZ-RESULT "


def _atheris() -> Any:
    """atheris, if installed (an optional extra: it is not in every environment)."""
    try:
        return importlib.import_module("atheris")
    except ImportError:
        return None


def _child(name: str, seconds: int) -> None:
    """Fuzz one target in this process and print a result line (the parent reads it)."""
    atheris = _atheris()
    crashes = CRASHES / name
    crashes.mkdir(parents=True, exist_ok=True)
    if atheris is not None:
        with atheris.instrument_imports(include=INSTRUMENTED):
            from tests.fuzz import targets
    else:
        from tests.fuzz import targets
    target = targets.TARGETS[name]
    with target.open() as run:
        if atheris is None:
            _loop(target, run, seconds, crashes)
            return
        corpus = WORK / "corpus" / name
        corpus.mkdir(parents=True, exist_ok=True)
        for seed in target.seeds():
            (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)  # noqa: S324 - a file name

        def one(data: bytes) -> None:
            targets.refused(target, run, data)

        atheris.Setup(
            [
                sys.argv[0],
                str(corpus),
                f"-max_total_time={seconds}",
                f"-artifact_prefix={crashes}/",
                "-max_len=65536",
                "-timeout=20",
                "-rss_limit_mb=3072",
                "-print_final_stats=1",
            ],
            one,
        )
        atheris.Fuzz()


def _loop(target: Any, run: Any, seconds: int, crashes: Path) -> None:
    from tests.fuzz.mutate import random_input
    from tests.fuzz.targets import refused

    rng = random.Random()
    seeds = target.seeds()
    seen: set[str] = set()
    runs = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = random_input(seeds, rng)
        runs += 1
        try:
            refused(target, run, data)
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            key = f"{type(exc).__name__}:{where.filename}:{where.lineno}"
            if key in seen:
                continue
            seen.add(key)
            path = crashes / f"crash-{hashlib.sha1(data).hexdigest()}"  # noqa: S324 - a name
            path.write_bytes(data)
            path.with_suffix(".txt").write_text(traceback.format_exc())
    print(_RESULT + json.dumps({"runs": runs, "crashes": len(seen)}), flush=True)


def _replay(path: Path, name: str) -> int:
    from tests.fuzz.targets import TARGETS, refused

    target = TARGETS[name]
    with target.open() as run:
        outcome = refused(target, run, path.read_bytes())
    print(f"{name}: refused as documented: {outcome!r}" if outcome else f"{name}: accepted")
    return 0


def _parent(names: list[str], seconds: int) -> int:
    engine = "atheris (libFuzzer, coverage-guided)" if _atheris() else "random damage (no atheris)"
    print(f"fuzzing {len(names)} target(s), {seconds} s each, with {engine}", flush=True)
    failed = 0
    for name in names:
        before = set((CRASHES / name).glob("crash-*")) if (CRASHES / name).exists() else set()
        tmp = WORK / "tmp" / name
        tmp.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "tests.fuzz.run", "--child", name, "--seconds", str(seconds)],
            cwd=ROOT,
            env={**os.environ, "TMPDIR": str(tmp), "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
        shutil.rmtree(tmp, ignore_errors=True)
        output = proc.stdout + proc.stderr
        (WORK / f"{name}.log").write_text(output)
        runs = _runs(output)
        new = sorted(
            p for p in (CRASHES / name).glob("crash-*") if p not in before and p.suffix != ".txt"
        )
        elapsed = time.monotonic() - started
        status = "ok" if proc.returncode == 0 and not new else "CRASH"
        print(f"{name:18} {runs:>10} executions in {elapsed:5.0f} s  {status}", flush=True)
        for crash in new:
            print(f"    input saved: {crash.relative_to(ROOT)}")
        if status != "ok":
            failed += 1
            tail = [line for line in output.splitlines() if line.strip()][-25:]
            print("    " + "\n    ".join(tail))
    print(f"{failed} target(s) crashed; logs in {WORK.relative_to(ROOT)}/")
    return 1 if failed else 0


def _runs(output: str) -> int:
    for pattern in (
        r"stat::number_of_executed_units: (\d+)",
        r'"runs": (\d+)',
        r"Done (\d+) runs",
    ):
        found = re.findall(pattern, output)
        if found:
            return int(found[-1])
    progress = re.findall(r"^#(\d+)\s", output, re.MULTILINE)
    return int(progress[-1]) if progress else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run")
    parser.add_argument("targets", nargs="*", help="default: every target")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", 60)))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--replay", type=Path, help="run one saved input against TARGET")
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.seconds)  # imports the targets itself, instrumented
        return 0
    from tests.fuzz.targets import TARGETS

    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; known: {', '.join(TARGETS)}")
    if args.replay:
        if len(args.targets) != 1:
            parser.error("--replay needs exactly one TARGET")
        return _replay(args.replay, args.targets[0])
    return _parent(args.targets or list(TARGETS), args.seconds)


if __name__ == "__main__":
    sys.exit(main())
