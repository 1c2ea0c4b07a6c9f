"""Settings as TOML: the export of the settings in force and the file import reads.

The format is ``node.toml``'s own four sections (``[[clients]]``, ``[[services]]``,
``[[access]]``, ``[[local_groups]]``), so an export can be read back, diffed against
``node.toml`` or pasted into it. Import also accepts a whole ``node.toml`` and takes only
those sections from it. The writer is this small one because the standard library reads
TOML but does not write it, and the values are only strings, numbers, booleans, lists
and the endpoints' inline tables.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

from gateway.node.settings.errors import SettingsCode, SettingsError

SECTIONS = ("clients", "services", "access", "local_groups")
"""The parts of a settings document, in the order they are written."""

NODE_TOML_SECTIONS = frozenset({"node", "signing", "globalconf", "audit", "logging", "tracker"})
"""``node.toml``'s other sections: an import of a whole ``node.toml`` skips them."""

_SERVICE_PATHS = ("tls_ca", "tls_client_cert", "tls_client_key")


def dump_toml(document: dict[str, Any]) -> str:
    """A settings document as TOML, one array of tables per section (empty ones left out)."""
    out = [
        "# A node's settings (gateway node settings export): clients, services,",
        "# access rights and local groups. Read back with gateway node settings import.",
    ]
    for section in SECTIONS:
        for entry in document.get(section, []):
            out.append("")
            out.append(f"[[{section}]]")
            out.extend(f"{key} = {_value(value)}" for key, value in entry.items())
    return "\n".join(out) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SettingsError(SettingsCode.INVALID, f"{value} cannot be written as TOML")
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes of a string without \/ are TOML's basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + "}"
    raise SettingsError(SettingsCode.INVALID, f"{value!r} cannot be written as TOML")


def load_toml(text: str, base: Path) -> dict[str, Any]:
    """The settings document in TOML text (validated by the caller); relative TLS file
    paths of a service are taken from ``base`` (the file's directory), as in
    ``node.toml``. Unknown sections are refused: a misspelt ``[[acess]]`` must not
    import as "no access rights"."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(SettingsCode.INVALID, f"not valid TOML: {exc}") from None
    unknown = set(data) - set(SECTIONS) - NODE_TOML_SECTIONS
    if unknown:
        raise SettingsError(
            SettingsCode.INVALID,
            f"unknown section(s) {', '.join(sorted(unknown))}; settings are "
            f"{', '.join(f'[[{s}]]' for s in SECTIONS)}",
        )
    document: dict[str, Any] = {s: data[s] for s in SECTIONS if s in data}
    for service in document.get("services", []):
        if isinstance(service, dict):
            for key in _SERVICE_PATHS:
                if isinstance(service.get(key), str):
                    service[key] = str(base / service[key])
    return document
