"""A node's settings: its clients, services, access rights and local groups.

These change while the node runs (``manager.py``), so they are one immutable value,
checked as a whole whenever one is made: a :class:`NodeSettings` that exists is
consistent (no subsystem, service or local group twice, every access right parses and
names an existing local group). The node keeps each version in its log as the JSON
document of :meth:`NodeSettings.to_document`; ``node.toml``'s ``[[clients]]``,
``[[services]]``, ``[[access]]`` and ``[[local_groups]]`` are only the bootstrap, and
the same four sections are the TOML export and import format (``toml.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.core.ids import ClientId, InvalidIdentifierError, parse_client
from gateway.core.policy import AccessPolicy, Grant, LocalGroupId
from gateway.node.clientauth import ConnectionType
from gateway.node.config import AccessSection, ClientSection, NodeConfig, ServiceSection
from gateway.node.localgroup import LocalGroupSection
from gateway.node.settings.errors import SettingsCode, SettingsError
from gateway.node.settings.toml import dump_toml, load_toml

DOCUMENT_FORMAT: Literal[1] = 1
"""The version of the settings document's layout (``format`` in the document)."""


class SettingsDocument(BaseModel):
    """The settings document's layout: what the log stores and import reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = DOCUMENT_FORMAT
    clients: list[ClientSection] = Field(default_factory=list)
    services: list[ServiceSection] = Field(default_factory=list)
    access: list[AccessSection] = Field(default_factory=list)
    local_groups: list[LocalGroupSection] = Field(default_factory=list)


def _invalid(exc: ValidationError | ValueError) -> SettingsError:
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'document'}: {err['msg']}"
            for err in exc.errors()
        )
        return SettingsError(SettingsCode.INVALID, problems)
    return SettingsError(SettingsCode.INVALID, str(exc))


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """One version of a node's settings; consistent by construction."""

    clients: tuple[ClientSection, ...] = ()
    services: tuple[ServiceSection, ...] = ()
    access: tuple[AccessSection, ...] = ()
    local_groups: tuple[LocalGroupSection, ...] = ()

    def __post_init__(self) -> None:
        _unique("subsystem", [c.id for c in self.clients])
        _unique("service", [s.id for s in self.services])
        _unique("local group", [str(g.group_id) for g in self.local_groups])
        _unique("access right", [_access_key(a) for a in self.access])
        known = {g.group_id for g in self.local_groups}
        for access in self.access:
            try:
                grant = access.grant()
            except ValueError as exc:
                raise SettingsError(
                    SettingsCode.INVALID, f"access right on {access.service}: {exc}"
                ) from None
            if isinstance(grant.subject, LocalGroupId) and grant.subject not in known:
                raise SettingsError(
                    SettingsCode.UNKNOWN_LOCAL_GROUP,
                    f"access right on {access.service} names local group "
                    f"{grant.subject.code!r}, which {grant.subject.owner} does not have",
                )

    # ------------------------------------------------------------------ derived views

    def connection_type(self, client: ClientId) -> ConnectionType:
        """How ``client``'s information systems must connect (default ``https``)."""
        text = str(client)
        for entry in self.clients:
            if entry.id == text:
                return entry.connection_type
        return ConnectionType.HTTPS

    def serves_plain_http(self) -> bool:
        """Whether some client connects over plain HTTP (the plain consumer port)."""
        return any(c.connection_type is ConnectionType.HTTP for c in self.clients)

    def grants(self) -> list[Grant]:
        return [a.grant() for a in self.access]

    def local_group_members(self) -> dict[LocalGroupId, frozenset[ClientId]]:
        return {
            g.group_id: frozenset(parse_client(m) for m in g.members) for g in self.local_groups
        }

    def policy(self) -> AccessPolicy:
        """The access policy these settings give, local groups resolved by the policy."""
        return AccessPolicy(self.grants(), self.local_group_members())

    def service(self, service_id: str) -> ServiceSection | None:
        return next((s for s in self.services if s.id == service_id), None)

    # ------------------------------------------------------------------ documents

    @classmethod
    def from_config(cls, config: NodeConfig) -> NodeSettings:
        """The bootstrap: the four settings sections of ``node.toml``."""
        return cls(
            clients=tuple(config.clients),
            services=tuple(config.services),
            access=tuple(config.access),
            local_groups=tuple(config.local_groups),
        )

    def to_document(self) -> dict[str, Any]:
        """The settings as a JSON-ready mapping (fields left unset are omitted)."""
        document = SettingsDocument(
            clients=list(self.clients),
            services=list(self.services),
            access=list(self.access),
            local_groups=list(self.local_groups),
        )
        return document.model_dump(mode="json", exclude_none=True)

    def to_json(self) -> bytes:
        """The document as the log stores it: sorted keys, so equal settings give
        equal bytes and a diff of two versions shows only what changed."""
        return json.dumps(self.to_document(), sort_keys=True, indent=1).encode()

    @classmethod
    def from_document(cls, document: Mapping[str, Any] | bytes | str) -> NodeSettings:
        """Validate a settings document (a mapping or its JSON); every problem is
        reported with its location, as ``settings.invalid`` (or the code of the
        reference that does not hold)."""
        if isinstance(document, bytes | str):
            try:
                document = json.loads(document)
            except ValueError as exc:
                raise SettingsError(SettingsCode.INVALID, f"not JSON: {exc}") from None
        if not isinstance(document, Mapping):
            raise SettingsError(SettingsCode.INVALID, "a settings document is a JSON object")
        try:
            parsed = SettingsDocument.model_validate(dict(document))
        except ValidationError as exc:
            raise _invalid(exc) from None
        return cls(
            clients=tuple(parsed.clients),
            services=tuple(parsed.services),
            access=tuple(parsed.access),
            local_groups=tuple(parsed.local_groups),
        )

    def to_toml(self) -> str:
        """The export format (``gateway node settings export``): ``node.toml``'s four
        settings sections, which :meth:`from_toml` reads back to equal settings."""
        return dump_toml(self.to_document())

    @classmethod
    def from_toml(cls, text: str, base: Path) -> NodeSettings:
        """Settings from TOML (an export, or a whole ``node.toml``); relative TLS file
        paths are taken from ``base``, the file's directory."""
        return cls.from_document(load_toml(text, base))

    @classmethod
    def read_toml(cls, path: Path) -> NodeSettings:
        """:meth:`from_toml` of a file, the file named in a refusal."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(SettingsCode.INVALID, f"cannot read {path}: {exc}") from None
        try:
            return cls.from_toml(text, path.parent.resolve())
        except SettingsError as exc:
            raise SettingsError(exc.code, f"{path}: {exc.detail}") from None


def _access_key(access: AccessSection) -> tuple[Any, ...]:
    """What makes two access rights the same: service, subject and narrowing."""
    return (
        access.service,
        access.client,
        access.group,
        access.local_group,
        None if access.methods is None else tuple(sorted(m.upper() for m in access.methods)),
        None if access.paths is None else tuple(access.paths),
    )


def _unique(what: str, keys: list[Any]) -> None:
    seen: set[Any] = set()
    for key in keys:
        if key in seen:
            raise SettingsError(SettingsCode.DUPLICATE, f"the {what} {key} is listed twice")
        seen.add(key)


def section_of(model: type[BaseModel], fields: Mapping[str, Any]) -> Any:
    """Build one section from ``fields``, validated, with ``settings.invalid`` on error."""
    try:
        return model.model_validate(dict(fields))
    except ValidationError as exc:
        raise _invalid(exc) from None
    except InvalidIdentifierError as exc:
        raise SettingsError(SettingsCode.INVALID, exc.message) from None
