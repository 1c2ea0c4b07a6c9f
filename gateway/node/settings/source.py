"""Which settings a node starts with, and how two versions differ.

The log's newest settings version is in force when there is one; ``node.toml``'s
``[[clients]]``, ``[[services]]``, ``[[access]]`` and ``[[local_groups]]`` are only the
bootstrap of a new log (recorded as version 1 when the node starts). The node says at
start which source is in force, and warns when ``node.toml`` says something else, since
an operator who edits it and restarts would otherwise wonder why nothing changed
(``gateway node settings diff`` shows what differs).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from gateway.messagelog import MessageLog
from gateway.node.config import ConfigError, NodeConfig
from gateway.node.settings.errors import SettingsError
from gateway.node.settings.model import NodeSettings
from gateway.node.settings.snapshot import SettingsSnapshot, build_snapshot
from gateway.node.settings.toml import SECTIONS

log = logging.getLogger("gateway.node")

Changed = dict[str, list[dict[str, Any]]]
"""Per settings section, the entries one side has that the other has not."""


def settings_in_force(config: NodeConfig, message_log: MessageLog) -> SettingsSnapshot:
    """The snapshot to start with: the log's newest version, else ``node.toml``'s
    settings as version 0 (persisted as version 1 by ``SettingsManager.bootstrap``)."""
    node_id = config.node.node_id
    stored = message_log.store.latest_settings()
    try:
        bootstrap: NodeSettings | None = NodeSettings.from_config(config)
        problem = ""
    except SettingsError as exc:
        bootstrap, problem = None, str(exc)
    if stored is None:
        if bootstrap is None:
            raise ConfigError(f"node {node_id}: the settings in node.toml: {problem}")
        log.info(
            "%s: settings from node.toml (the log holds none yet; recorded as version 1)", node_id
        )
        return _snapshot(bootstrap, 0)
    try:
        settings = NodeSettings.from_document(stored.document)
    except SettingsError as exc:
        raise ConfigError(
            f"node {node_id}: settings version {stored.version} in the log cannot be used: {exc}"
        ) from None
    log.info(
        "%s: settings version %d from the log (changed %s) in force; node.toml's settings "
        "sections are only the bootstrap of a new log",
        node_id,
        stored.version,
        stored.changed_at,
    )
    if settings != bootstrap:
        log.warning(
            "%s: node.toml's [[clients]], [[services]], [[access]] or [[local_groups]] differ "
            "from the settings in force (see gateway node settings diff; apply a file with "
            "gateway node settings import)",
            node_id,
        )
    return _snapshot(settings, stored.version)


def _snapshot(settings: NodeSettings, version: int) -> SettingsSnapshot:
    try:
        return build_snapshot(settings, version)
    except SettingsError as exc:
        raise ConfigError(exc.detail) from None


def _keyed(document: Mapping[str, Any], section: str) -> dict[str, dict[str, Any]]:
    """A section's entries by what identifies them (their canonical text for access)."""
    entries: list[dict[str, Any]] = document.get(section, [])
    if section in ("clients", "services"):
        return {e["id"]: e for e in entries}
    if section == "local_groups":
        return {f"{e['owner']}#{e['code']}": e for e in entries}
    return {repr(sorted(e.items())): e for e in entries}


def changed_parts(old: NodeSettings, new: NodeSettings) -> tuple[Changed, Changed]:
    """Per section, the entries only ``old`` has and those only ``new`` has (a changed
    service is in both, as it was and as it is)."""
    before: Changed = {}
    after: Changed = {}
    old_doc, new_doc = old.to_document(), new.to_document()
    for section in SECTIONS:
        was, now = _keyed(old_doc, section), _keyed(new_doc, section)
        gone = [e for k, e in was.items() if now.get(k) != e]
        came = [e for k, e in now.items() if was.get(k) != e]
        if gone:
            before[section] = gone
        if came:
            after[section] = came
    return before, after


def describe_changes(before: Changed, after: Changed) -> list[str]:
    """``changed_parts`` as lines a person reads: ``- `` what only the first has,
    ``+ `` what only the second has, per section."""
    lines: list[str] = []
    for section in SECTIONS:
        for entry in before.get(section, []):
            lines.append(f"- {section}: {_line(entry)}")
        for entry in after.get(section, []):
            lines.append(f"+ {section}: {_line(entry)}")
    return lines


def _line(entry: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in entry.items())
