"""The passphrase that opens a node's encrypted key files, as X-Road's software token
has a PIN.

It comes from a passphrase file (``[node] key_passphrase_file``; readable by the owner
only, so a passphrase is never kept looser than the keys it opens), else from the
environment variable ``GATEWAY_KEY_PASSPHRASE``, else from a prompt when the process
runs on a terminal. A process started by a service manager has no terminal: there a
missing file or variable is an error, not a prompt that would wait for ever. The
passphrase is never put in a message or a log line (docs/adr/0041).
"""

from __future__ import annotations

import getpass
import os
import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

PASSPHRASE_ENV = "GATEWAY_KEY_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)


class PassphraseError(ValueError):
    """No usable passphrase; the message names the source and the fix, never the value."""


def read_passphrase_file(path: Path) -> bytes:
    """The passphrase in ``path`` (one line; a trailing newline is not part of it).

    A file that group or others may read is refused: it would leave every key it opens
    as readable as itself.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_bytes()
    except OSError as exc:
        raise PassphraseError(
            f"cannot read the key passphrase file {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    if stat.S_IMODE(mode) & 0o077:
        raise PassphraseError(
            f"the key passphrase file {path} has mode {stat.S_IMODE(mode):04o}; "
            f"make it readable by its owner only (chmod 600 {path})"
        )
    passphrase = text.rstrip(b"\r\n")
    if not passphrase:
        raise PassphraseError(f"the key passphrase file {path} is empty")
    return passphrase


def resolve_passphrase(
    file: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    prompt: Callable[[str], str] | None = getpass.getpass,
    interactive: bool | None = None,
    what: str = "the node's key files",
    file_option: str = "key_passphrase_file in [node] of node.toml",
    env_name: str = PASSPHRASE_ENV,
) -> bytes:
    """The passphrase from ``file``, else the environment variable ``env_name``
    (``GATEWAY_KEY_PASSPHRASE`` for the key files), else a prompt on a terminal; raises
    :class:`PassphraseError` naming the sources when there is none. Every secret that
    opens key material (key files, the data key) is read here, under the same rules."""
    if file is not None:
        return read_passphrase_file(file)
    env = os.environ if environ is None else environ
    from_env = env.get(env_name)
    if from_env is not None:
        if not from_env:
            raise PassphraseError(f"the environment variable {env_name} is empty")
        return from_env.encode("utf-8")
    if interactive is None:
        interactive = sys.stdin.isatty()
    if prompt is None or not interactive:
        ask = "" if prompt is None else ", or run on a terminal to be asked for it"
        raise PassphraseError(
            f"no passphrase for {what}: set {file_option}, or the environment variable "
            f"{env_name}{ask}"
        )
    entered = prompt(f"Passphrase of {what}: ")
    if not entered:
        raise PassphraseError(f"an empty passphrase was entered for {what}")
    return entered.encode("utf-8")
