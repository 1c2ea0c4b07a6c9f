"""A throwaway SoftHSM2 token for the tests of keys in PKCS#11 tokens.

Each token lives in its own directory, named by its own ``softhsm2.conf``, which
``SOFTHSM2_CONF`` points to for this process and the nodes it starts. SoftHSM2 is
installed by ``make system-packages`` (the Makefile's ``SYSTEM_PACKAGES``); a machine
without it fails these tests with that instruction rather than skipping them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pkcs11
import pytest

from gateway.keys.pkcs11 import TokenKeyRef

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN_PIN = "246810"
SO_PIN = "13579135"


@dataclass(frozen=True, slots=True)
class SoftToken:
    """One initialised token: its configuration, label, PIN and a PIN file (0600)."""

    conf: Path
    label: str
    pin: str
    pin_file: Path

    def ref(self, key_label: str) -> TokenKeyRef:
        return TokenKeyRef(SOFTHSM_MODULE, self.label, key_label, pin_file=self.pin_file)


def init_soft_token(directory: Path, label: str) -> SoftToken:
    """Initialise a token in ``directory`` with its own ``softhsm2.conf``, for a process
    started with ``SOFTHSM2_CONF`` pointing there (another holder's machine, say)."""
    util = shutil.which("softhsm2-util")
    if util is None or not SOFTHSM_MODULE.exists():
        pytest.fail("SoftHSM2 is missing: run `make system-packages` (Debian package softhsm2)")
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--pin", TOKEN_PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
        timeout=60,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    pin_file = directory / "pin"
    pin_file.write_text(TOKEN_PIN + "\n")
    pin_file.chmod(0o600)
    return SoftToken(conf, label, TOKEN_PIN, pin_file)


def make_soft_token(directory: Path, monkeypatch: pytest.MonkeyPatch, label: str) -> SoftToken:
    """Initialise a token in ``directory`` and point ``SOFTHSM2_CONF`` at it.

    The PKCS#11 library is loaded once per process and reads its configuration when it
    initialises, so it is reinitialised here to see this token.
    """
    token = init_soft_token(directory, label)
    monkeypatch.setenv("SOFTHSM2_CONF", str(token.conf))
    pkcs11.lib(str(SOFTHSM_MODULE)).reinitialize()
    return token
