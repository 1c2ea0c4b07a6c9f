"""``gateway keys ...``: what an operator does to the key files themselves.

``gateway keys encrypt FILE`` turns a plain private key file (a development set-up's,
or one made before keys were encrypted by default) into an encrypted one in place, so a
node that refuses plain keys starts on it (docs/adr/0041).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    AddFn = Callable[
        [Subparsers, str, Callable[[argparse.Namespace], None], str], argparse.ArgumentParser
    ]


def _new_passphrase(args: argparse.Namespace) -> bytes:
    """The passphrase to encrypt with; typed twice when it comes from the prompt, since a
    typo here would lock the key for good."""
    from gateway.keys.passphrase import PASSPHRASE_ENV, PassphraseError, resolve_passphrase

    file = Path(args.passphrase_file) if args.passphrase_file else None
    if file is not None or PASSPHRASE_ENV in os.environ or not sys.stdin.isatty():
        return resolve_passphrase(file, what="the key", file_option="--passphrase-file")
    first = getpass.getpass("New passphrase of the key: ")
    if first != getpass.getpass("The same passphrase again: "):
        raise PassphraseError("the two passphrases differ; nothing was changed")
    if not first:
        raise PassphraseError("an empty passphrase was entered; nothing was changed")
    return first.encode("utf-8")


def add_new_key_arguments(p: argparse.ArgumentParser) -> None:
    """The options of a command that writes a new private key: encrypted by default."""
    p.add_argument(
        "--passphrase-file",
        default=None,
        help="file (0600) with the key's passphrase (else GATEWAY_KEY_PASSPHRASE or a prompt)",
    )
    p.add_argument(
        "--insecure-plain-keys",
        action="store_true",
        help="write the key unencrypted (a development set-up only: a node refuses it "
        "unless [node] development = true)",
    )


def new_key_passphrase(args: argparse.Namespace, what: str) -> bytes | None:
    """The passphrase a new key is written with, or None for ``--insecure-plain-keys``."""
    from gateway.keys.passphrase import resolve_passphrase

    if args.insecure_plain_keys:
        return None
    file = Path(args.passphrase_file) if args.passphrase_file else None
    return resolve_passphrase(file, what=what, file_option="--passphrase-file")


def cmd_keys_encrypt(args: argparse.Namespace) -> None:
    from gateway.keys.files import encrypt_key_file

    passphrase = _new_passphrase(args)
    for name in args.file:
        others = encrypt_key_file(Path(name), passphrase)
        print(f"encrypted {name} in place (0600, PKCS#8 with the passphrase)")
        if others:
            print(
                f"  note: {others} other hard link(s) of {name} (a .bak kept by a key "
                "rotation) still hold the plain key: encrypt or remove them too"
            )


def add_commands(sub: Subparsers, add: AddFn) -> None:
    """Register ``keys`` under the top-level ``gateway`` parser."""
    keys = sub.add_parser("keys", help="encrypt private key files").add_subparsers(
        dest="keys_command", required=True, metavar="KEYS_COMMAND"
    )
    p = add(
        keys,
        "encrypt",
        cmd_keys_encrypt,
        "encrypt plain private key files in place with a passphrase (keeps 0600, no backup)",
    )
    p.add_argument("file", nargs="+", help="a plain PEM private key file")
    p.add_argument(
        "--passphrase-file",
        default=None,
        help="file (0600) with the passphrase (else GATEWAY_KEY_PASSPHRASE or a prompt)",
    )
