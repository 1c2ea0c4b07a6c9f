"""Where the central's online TUF keys live when they are in a PKCS#11 token.

``DIR/online-token.toml`` (written by ``gateway central init --online-token ...``) names
the token; without it the online keys are files in ``DIR/keys/`` as before. The file
holds no secret: the PIN comes from ``pin_file`` (mode 0600 or stricter), else the
variable ``pin_env`` (default ``GATEWAY_CENTRAL_TOKEN_PIN``), else a prompt on a
terminal, by the rules of ``gateway.keys.passphrase`` (docs/adr/0053).

Example::

    module = "/usr/lib/softhsm/libsofthsm2.so"
    token = "central-online"
    pin_file = "/etc/gateway/central-token.pin"
"""

from __future__ import annotations

import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gateway.central.repo import RepoError
from gateway.keys.passphrase import PassphraseError, resolve_passphrase
from gateway.keys.pkcs11 import TokenError, TokenKeyRef
from gateway.keys.tuftoken import TokenKeyring

__all__ = ["ONLINE_TOKEN_NAME", "OnlineToken", "online_keyring", "read_online_token"]

ONLINE_TOKEN_NAME: Final = "online-token.toml"  # noqa: S105 (a file name, not a secret)
PIN_ENV: Final = "GATEWAY_CENTRAL_TOKEN_PIN"

_KEYRINGS: dict[tuple[Path, str], TokenKeyring] = {}
_KEYRINGS_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class OnlineToken:
    """The token of the online keys and where its PIN comes from."""

    module: Path
    token: str
    pin_file: Path | None = None
    pin_env: str | None = None

    def ref(self) -> TokenKeyRef:
        return TokenKeyRef(self.module, self.token, "", self.pin_file, self.pin_env)

    def to_toml(self) -> str:
        lines = [
            "# The central's online TUF keys (targets, snapshot, timestamp) in this token.",
            f'module = "{self.module}"',
            f'token = "{self.token}"',
        ]
        if self.pin_file is not None:
            lines.append(f'pin_file = "{self.pin_file}"')
        if self.pin_env is not None:
            lines.append(f'pin_env = "{self.pin_env}"')
        return "\n".join(lines) + "\n"


def read_online_token(directory: Path) -> OnlineToken | None:
    """The central's ``online-token.toml``, or None when its online keys are files."""
    path = directory / ONLINE_TOKEN_NAME
    if not path.exists():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        pin_file = data.get("pin_file")
        pin_env = data.get("pin_env")
        token = OnlineToken(
            Path(str(data["module"])),
            str(data["token"]),
            None if pin_file is None else Path(str(pin_file)),
            None if pin_env is None else str(pin_env),
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise RepoError(f"{path} does not name a token (module, token): {exc}") from None
    unknown = set(data) - {"module", "token", "pin_file", "pin_env"}
    if unknown:
        raise RepoError(f"{path}: unknown keys {sorted(unknown)}")
    return token


def write_online_token(directory: Path, token: OnlineToken) -> None:
    """Record the token at init; refuses to replace a file a central already uses."""
    path = directory / ONLINE_TOKEN_NAME
    with path.open("x", encoding="utf-8") as f:
        f.write(token.to_toml())


def _pin(token: OnlineToken, path: Path) -> str:
    try:
        return resolve_passphrase(
            token.pin_file,
            what=f"the PIN of token {token.token!r}",
            file_option=f"pin_file in {path}",
            env_name=token.pin_env or PIN_ENV,
        ).decode("utf-8")
    except PassphraseError as exc:
        raise RepoError(str(exc)) from None


def online_keyring(directory: Path) -> TokenKeyring | None:
    """The logged-in key ring of the central's online token, opened once per process
    (the PIN is read then), or None when the online keys are files."""
    token = read_online_token(directory)
    if token is None:
        return None
    cache_key = (token.module, token.token)
    with _KEYRINGS_LOCK:
        keyring = _KEYRINGS.get(cache_key)
        if keyring is None:
            try:
                keyring = TokenKeyring(token.ref(), _pin(token, directory / ONLINE_TOKEN_NAME))
            except TokenError as exc:
                raise RepoError(str(exc)) from None
            _KEYRINGS[cache_key] = keyring
        return keyring
