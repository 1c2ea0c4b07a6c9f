"""The central's online TUF key files under the node's rule: encrypted PKCS#8, or plain
only in a development set-up (docs/adr/0041, docs/adr/0053).

``gateway central init`` encrypts the online keys it writes to ``keys/`` with the
passphrase (``--key-passphrase-file``, else ``GATEWAY_KEY_PASSPHRASE``, else a prompt);
``--insecure-plain-keys`` writes them plain and records the choice in the file
``development-keys`` of the central's directory, where it is as visible as a node's
``development = true``. Every process that signs (``serve``, ``federate``,
``rotate-root``) opens the keys with the same passphrase; a plain key in a central not so
marked is refused with the fix. Keys in a token (``online-token.toml``) need neither.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

from gateway.central.repo import RepoError
from gateway.keys.files import is_encrypted_key_file
from gateway.keys.passphrase import PassphraseError, resolve_passphrase

__all__ = [
    "DEVELOPMENT_NAME",
    "check_key_files",
    "init_key_passphrase",
    "key_passphrase_of",
    "mark_development",
]

DEVELOPMENT_NAME: Final = "development-keys"


def mark_development(directory: Path) -> None:
    (directory / DEVELOPMENT_NAME).write_text(
        "This central keeps its online TUF keys in plain files: a development set-up\n"
        "(gateway central init --insecure-plain-keys). Delete this file once the keys\n"
        "are encrypted (gateway keys encrypt keys/*.pem).\n",
        encoding="utf-8",
    )


def check_key_files(directory: Path) -> None:
    """Refuse a plain key file in a central not marked as a development set-up. (An
    encrypted one without the passphrase is refused when something is to be signed:
    reading the repository needs no key.)"""
    if (directory / DEVELOPMENT_NAME).exists():
        return
    for path in sorted((directory / "keys").glob("*.pem")):
        if not is_encrypted_key_file(path):
            raise RepoError(
                f"{path} is an unencrypted private key: encrypt the online keys with "
                f"'gateway keys encrypt {directory / 'keys'}/*.pem', or mark a development "
                f"set-up with the file {directory / DEVELOPMENT_NAME}"
            )


def key_passphrase_of(directory: Path, args: argparse.Namespace) -> bytes | None:
    """The passphrase of the central's encrypted key files, asked for only when one is."""
    keys = (directory / "keys").glob("*.pem")
    if not any(is_encrypted_key_file(k) for k in keys):
        return None
    return _resolve(args)


def init_key_passphrase(args: argparse.Namespace) -> bytes | None:
    """What ``init`` encrypts the online keys with; None with ``--insecure-plain-keys``
    or when a token holds them."""
    if args.insecure_plain_keys or args.online_token is not None:
        return None
    return _resolve(args)


def _resolve(args: argparse.Namespace) -> bytes:
    given = getattr(args, "key_passphrase_file", None)  # not every command offers it
    file = Path(given) if given else None
    try:
        return resolve_passphrase(
            file, what="the central's online TUF keys", file_option="--key-passphrase-file"
        )
    except PassphraseError as exc:
        raise RepoError(str(exc)) from None
