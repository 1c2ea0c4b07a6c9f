"""The central's commands and options for TUF keys in PKCS#11 tokens.

- ``gateway central init --online-token LABEL --online-token-module SO`` generates the
  online keys (targets, snapshot, timestamp) in the token and records it in
  ``DIR/online-token.toml``;
- ``gateway central root token-key`` generates a root key in a holder's own token and
  writes its public key for ``root prepare --add-public-key``;
- ``gateway central root sign --token LABEL --token-module SO --key-label L`` signs a
  prepared root through the holder's token.

Kept apart from ``gateway.central.cli`` (near its size limit); that module calls these.
PINs follow ``gateway.keys.passphrase``: a 0600 file, else a variable, else a prompt on
a terminal, never logged (docs/adr/0053).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module at start: the rest is loaded when used
    from gateway.central.onlinekeys import OnlineToken
    from gateway.keys.pkcs11 import TokenKeyRef

TOKEN_PIN_ENV = "GATEWAY_TOKEN_PIN"  # noqa: S105 (a variable name, not a secret)


def add_online_token_arguments(p: argparse.ArgumentParser) -> None:
    """``init``'s options for online keys in a token."""
    p.add_argument(
        "--online-token", default=None, help="generate the online TUF keys in this token (label)"
    )
    p.add_argument("--online-token-module", default=None, help="its PKCS#11 library (.so)")
    pin = p.add_mutually_exclusive_group()
    pin.add_argument("--online-pin-file", default=None, help="the token's PIN file (0600)")
    pin.add_argument(
        "--online-pin-env",
        default=None,
        help="the variable holding the PIN (default GATEWAY_CENTRAL_TOKEN_PIN)",
    )


def online_token_from_args(args: argparse.Namespace) -> OnlineToken | None:
    from gateway.central.onlinekeys import OnlineToken

    if args.online_token is None:
        if args.online_token_module is not None:
            raise ValueError("--online-token-module needs --online-token")
        return None
    if args.online_token_module is None:
        raise ValueError("--online-token needs --online-token-module")
    return OnlineToken(
        Path(args.online_token_module).absolute(),
        args.online_token,
        None if args.online_pin_file is None else Path(args.online_pin_file).absolute(),
        args.online_pin_env,
    )


def add_holder_token_arguments(p: argparse.ArgumentParser, *, required: bool) -> None:
    """A root key holder's token: module, label, key label and the PIN's source."""
    p.add_argument("--token", required=required, default=None, help="the token's label")
    p.add_argument("--token-module", required=required, default=None, help="PKCS#11 library")
    p.add_argument("--key-label", required=required, default=None, help="the root key's label")
    pin = p.add_mutually_exclusive_group()
    pin.add_argument("--pin-file", default=None, help="a file (0600) holding the token's PIN")
    pin.add_argument(
        "--pin-env", default=None, help=f"variable holding the PIN (default {TOKEN_PIN_ENV})"
    )


def _holder_ref(args: argparse.Namespace) -> tuple[TokenKeyRef, str]:
    from gateway.keys.passphrase import resolve_passphrase
    from gateway.keys.pkcs11 import TokenKeyRef

    if not (args.token and args.token_module and args.key_label):
        raise ValueError("a key in a token needs --token, --token-module and --key-label")
    pin_file = None if args.pin_file is None else Path(args.pin_file)
    ref = TokenKeyRef(Path(args.token_module), args.token, args.key_label, pin_file, args.pin_env)
    pin = resolve_passphrase(
        pin_file,
        what=f"the PIN of token {args.token!r}",
        file_option="--pin-file",
        env_name=args.pin_env or TOKEN_PIN_ENV,
    )
    return ref, pin.decode("utf-8")


def cmd_central_root_token_key(args: argparse.Namespace) -> None:
    """A new root key in the holder's token; its public key to a new file for the
    operator's ``root prepare --add-public-key``."""
    from gateway.keys.pkcs11 import generate_token_key
    from gateway.keys.tuftoken import TokenTufSigner, public_key_document

    ref, pin = _holder_ref(args)
    out = Path(args.out)
    signer = TokenTufSigner(generate_token_key(ref, pin))
    try:
        document = json.dumps(public_key_document(signer), indent=2, sort_keys=True) + "\n"
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(document)
    finally:
        signer.close()
    print(f"generated root key {signer.public_key.keyid} as {ref.describe()}")
    print(f"  public key   {out}: hand it to the operator (root prepare --add-public-key)")


def sign_root_with_token(args: argparse.Namespace) -> tuple[str, int]:
    """``root sign`` through the holder's token."""
    from gateway.central.rootceremony import sign_root
    from gateway.keys.pkcs11 import load_token_key
    from gateway.keys.tuftoken import TokenTufSigner

    ref, pin = _holder_ref(args)
    signer = TokenTufSigner(load_token_key(ref, pin))
    try:
        return sign_root(Path(args.root), signer)
    finally:
        signer.close()


def add_root_token_key_command(p: argparse.ArgumentParser) -> None:
    add_holder_token_arguments(p, required=True)
    p.add_argument("--out", required=True, help="the public key file to write (new)")


def add_key_passphrase_argument(p: argparse.ArgumentParser) -> None:
    """For a command that signs with the central's online key files (``keyfiles``)."""
    p.add_argument(
        "--key-passphrase-file",
        default=None,
        help="file (0600) with the online TUF keys' passphrase (else GATEWAY_KEY_PASSPHRASE "
        "or a prompt)",
    )


def key_passphrase_of(directory: Path, args: argparse.Namespace) -> bytes | None:
    """``gateway.central.keyfiles.key_passphrase_of``, imported when a command runs."""
    from gateway.central.keyfiles import key_passphrase_of as of

    return of(directory, args)
