"""``gateway node data-key``: the node's data key file, kept under a passphrase or by an
AES key in a PKCS#11 token (``--token``; docs/adr/0053). Apart from ``node/cli.py``,
which is near its size limit."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    AddFn = Callable[
        [Subparsers, str, Callable[[argparse.Namespace], None], str], argparse.ArgumentParser
    ]


def cmd_node_data_key(args: argparse.Namespace) -> None:
    from gateway.core.atrest import DataKey
    from gateway.keys.datakey import DataKeyError, create_data_key, read_passphrase
    from gateway.keys.datakey_token import create_token_data_key
    from gateway.keys.pkcs11 import TokenKeyRef, read_pin

    out = Path(args.out)
    key: DataKey
    try:
        if args.token is not None:
            if args.module is None or args.key_label is None or args.passphrase_file:
                raise ValueError(
                    "--token needs --module and --key-label, and takes no --passphrase-file"
                )
            pin_file = Path(args.pin_file) if args.pin_file else None
            ref = TokenKeyRef(Path(args.module), args.token, args.key_label, pin_file, args.pin_env)
            key = create_token_data_key(out, ref, read_pin(ref))
            print(f"wrote {out}: data key {key.key_id}, kept by {ref.describe()}")
            print(
                "  [logging] data_key_token = { module, label, key_label, pin_file } names it; "
                "back up the file and the token"
            )
            return
        passphrase_file = Path(args.passphrase_file) if args.passphrase_file else None
        key = create_data_key(out, read_passphrase(passphrase_file))
    except DataKeyError as exc:
        raise ValueError(str(exc)) from None
    print(f"wrote {out}: data key {key.key_id}; back it up with its passphrase")


def add_data_key_command(node: Subparsers, add: AddFn) -> None:
    p = add(
        node,
        "data-key",
        cmd_node_data_key,
        "make the node's data key file ([logging] data_key): personal data in the log is "
        "sealed under it (docs/message-log.md#at-rest)",
    )
    p.add_argument("--out", required=True, help="the data key file to create (0600)")
    p.add_argument(
        "--passphrase-file",
        default=None,
        help="its passphrase (first line; default: $GATEWAY_DATA_KEY_PASSPHRASE)",
    )
    p.add_argument(
        "--token", default=None, help="keep it by a new AES key in this PKCS#11 token instead"
    )
    p.add_argument("--module", default=None, help="the token's PKCS#11 library (.so)")
    p.add_argument("--key-label", default=None, help="the new AES key's label (must be unused)")
    pin = p.add_mutually_exclusive_group()
    pin.add_argument("--pin-file", default=None, help="a file holding the token's PIN")
    pin.add_argument("--pin-env", default=None, help="an environment variable holding the PIN")
