"""The Makefile's system-package step: installs only what is missing, and without root or
sudo stops with one sentence naming the package, so `make test` never fails later with a
missing browser."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "system-packages"


def _run(
    *pairs: str, env: dict[str, str] | None = None, user: bool = False
) -> subprocess.CompletedProcess[str]:
    command = ["/bin/bash", str(SCRIPT), *pairs]
    if user:
        setpriv = shutil.which("setpriv")
        if os.geteuid() != 0 or setpriv is None:
            pytest.skip("dropping to an unprivileged user needs root and setpriv")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_present_files_install_nothing(tmp_path: Path) -> None:
    present = tmp_path / "tool"
    present.write_text("")
    # No apt-get, no sudo on PATH: any install attempt would fail loudly.
    env = {"PATH": str(tmp_path / "empty-bin")}
    result = _run(f"{present}=some-package", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_without_root_or_sudo_names_the_missing_package(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    # An unprivileged user for whom `sudo -n` (if sudo exists at all) is refused.
    env = {"PATH": "/usr/bin:/bin"}
    result = _run(f"{tmp_path}/missing=frobnicator-tools", env=env, user=True)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "frobnicator-tools" in lines[0]
    assert "apt-get install frobnicator-tools" in lines[0]
