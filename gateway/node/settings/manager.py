"""Changing a running node's settings: validate, persist with its audit record, apply.

:class:`SettingsManager` is the one writer of ``NodeContext.settings``. A change is a
pure function of the settings in force (``mutations.py``); under one lock the manager
applies it, derives the new snapshot (refusing settings that cannot be used, such as a
TLS file that does not load), appends the admin record and the new settings document to
the log in one transaction, and only then swaps the snapshot in: a change is never in
force without its durable record, and a change that could not be recorded is not in
force at all. Exchanges admitted before the swap finish under the snapshot they took.

In a node cluster every process has its own manager on one shared log. A change is
recorded only while the version it was derived from is still the newest (the database
decides, ``SettingsConflict``); otherwise the manager takes the newer version up and
applies the change again on top of it, so no process undoes another's change. A
version another process recorded comes in through :meth:`SettingsManager.adopt`
(``follow.py``), and a process never goes back to an older version (docs/adr/0050).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from gateway.core.adminrecord import AdminRecord, AdminRecordError
from gateway.core.roles import ApiRole
from gateway.messagelog import LogStoreError, MessageLogError, SettingsConflict, StoredSettings
from gateway.messagelog.leader import Leadership
from gateway.node.context import NodeContext
from gateway.node.settings.errors import SettingsCode, SettingsError
from gateway.node.settings.model import NodeSettings
from gateway.node.settings.mutations import SettingsChange
from gateway.node.settings.snapshot import SettingsSnapshot, build_snapshot
from gateway.node.settings.source import Changed, changed_parts
from gateway.node.settings.toml import SECTIONS

log = logging.getLogger("gateway.node")

BOOTSTRAP_ACTOR = "bootstrap"
"""The actor of version 1, the settings taken from ``node.toml`` at the first start."""
CONFLICT_ATTEMPTS = 5
"""How often a change is applied again on a newer version another process recorded
before it is refused with ``settings.conflict`` (each attempt is one commit)."""


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """A change in force: its settings version, what it changed (each section's
    entries before and after, only those that differ) and the log entry recording it
    (``None`` and the old version when the change changed nothing)."""

    version: int
    before: Changed
    after: Changed
    entry_id: int | None


def _signable(value: Any) -> Any:
    """The value as the admin record can sign it: canonical JSON has no floats, so a
    number like a timeout of 2.5 s is recorded as the text "2.5" (whole ones as ints)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else repr(value)
    if isinstance(value, dict):
        return {k: _signable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_signable(v) for v in value]
    return value


class SettingsManager:
    """Serialised, durable, atomic changes of one node's settings."""

    def __init__(self, context: NodeContext) -> None:
        self._ctx = context
        self._lock = asyncio.Lock()
        self._shared = Leadership.elects(context.config.node.log_location)
        """Whether other processes may record versions in this log (PostgreSQL)."""

    @property
    def current(self) -> SettingsSnapshot:
        """The snapshot in force (what the next exchange will be admitted under)."""
        return self._ctx.settings

    async def bootstrap(self) -> ChangeResult | None:
        """At the first start of a log: record the settings taken from ``node.toml`` as
        version 1 (actor ``bootstrap``). Nothing when the log already holds a version."""
        async with self._lock:
            return await self._bootstrap()

    async def _bootstrap(self) -> ChangeResult | None:
        current = self._ctx.settings
        if current.version > 0:
            return None
        document = current.settings.to_document()
        try:
            return await self._persist(
                current,
                current.settings,
                ({}, {k: document[k] for k in SECTIONS if document.get(k)}),
                actor=BOOTSTRAP_ACTOR,
                role=ApiRole.SYSTEM_ADMINISTRATOR,
                action="settings.bootstrap",
                target=str(self._ctx.id),
            )
        except SettingsConflict:  # another process of the cluster recorded it first
            await self._catch_up()
            return None

    async def adopt(self, stored: StoredSettings) -> bool:
        """Put ``stored``, a version another process of the cluster recorded, in force
        if it is newer than the one in force (never an older one); whether it was.
        Raises :class:`SettingsError` if it cannot be used here (the old one stays)."""
        async with self._lock:
            return self._adopt(stored)

    def _adopt(self, stored: StoredSettings) -> bool:
        current = self._ctx.settings
        if stored.version <= current.version:
            return False
        settings = NodeSettings.from_document(stored.document)
        # Derived exactly as a local change is, so both processes serve the same thing.
        self._ctx.settings = build_snapshot(settings, stored.version, current)
        log.info(
            "%s: settings version %d in force (recorded by another process of the cluster)",
            self._ctx.id,
            stored.version,
        )
        return True

    async def _catch_up(self) -> None:
        """The newest version in force before a change is made (or made again)."""
        try:
            stored = await asyncio.to_thread(self._ctx.log.store.latest_settings)
        except LogStoreError as exc:  # the recording's own check still guards the change
            log.warning("%s: the newest settings version could not be read: %s", self._ctx.id, exc)
            return
        if stored is not None:
            self._adopt(stored)

    async def change(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        target: str,
        mutate: SettingsChange,
    ) -> ChangeResult:
        """Apply ``mutate`` to the settings in force, as one change: validated, recorded
        (who, in which role, did what to what, from which value to which) together with
        the new settings version in one log transaction, then in force for every
        exchange admitted from then on. Raises :class:`SettingsError` (nothing changed)
        for a refused change or one that could not be made durable."""
        async with self._lock:
            # A change is always relative to a recorded version: node.toml's first.
            await self._bootstrap()
            if self._shared:
                # On the cluster's newest version, even one not heard of yet: a revoke
                # of a right granted through another process a moment ago is found.
                await self._catch_up()
            for _ in range(CONFLICT_ATTEMPTS):
                current = self._ctx.settings
                new = mutate(current.settings)
                if not isinstance(new, NodeSettings):
                    raise TypeError("a settings change must return NodeSettings")
                if new == current.settings:
                    return ChangeResult(current.version, {}, {}, None)
                changed = changed_parts(current.settings, new)
                try:
                    return await self._persist(
                        current, new, changed, actor=actor, role=role, action=action, target=target
                    )
                except SettingsConflict:
                    # Another process recorded a version meanwhile: the change is made
                    # again on top of it (and refused if it no longer applies there).
                    await self._catch_up()
            raise SettingsError(
                SettingsCode.CONFLICT,
                f"other processes of the node's cluster changed the settings {CONFLICT_ATTEMPTS}"
                " times while this change was being recorded; nothing changed, try again",
            )

    async def _persist(
        self,
        current: SettingsSnapshot,
        new: NodeSettings,
        changed: tuple[Changed, Changed],
        *,
        actor: str,
        role: str,
        action: str,
        target: str,
    ) -> ChangeResult:
        """Record ``new`` (``changed``: what differs, before and after) and put it in
        force; nothing changes if it cannot be derived, signed or recorded."""
        ctx = self._ctx
        snapshot = build_snapshot(new, current.version + 1, current)
        before, after = changed
        # The node owner's key signs the record: an auditor checks admin records
        # against the owner of the node whose log holds them.
        signer = ctx.signers.get(ctx.id.owner)
        if signer is None:
            raise SettingsError(
                SettingsCode.PERSIST_FAILED,
                f"node {ctx.id} holds no signing key of its owner {ctx.id.owner} to sign "
                "the change with",
            )
        try:
            record = AdminRecord(
                at=ctx.clock.now(),
                actor=actor,
                role=role,
                action=action,
                target=target,
                before=_signable(before) or None,
                after=_signable(after) or None,
            )
        except AdminRecordError as exc:
            raise SettingsError(SettingsCode.INVALID, str(exc)) from None
        try:
            receipt = await ctx.log.append_admin(
                record, signer, settings=new.to_json(), base=current.version
            )
        except SettingsConflict:
            raise
        except MessageLogError as exc:
            raise SettingsError(
                SettingsCode.PERSIST_FAILED, f"the change could not be logged: {exc}"
            ) from None
        except ValueError as exc:  # a record the log refuses to hold (e.g. too long)
            raise SettingsError(
                SettingsCode.INVALID, f"the change cannot be logged: {exc}"
            ) from None
        version = receipt.settings_version or snapshot.version
        ctx.settings = replace(snapshot, version=version)  # in force from here on
        log.info("%s: settings version %d in force (%s by %s)", ctx.id, version, action, actor)
        return ChangeResult(version, before, after, receipt.entry_id)
