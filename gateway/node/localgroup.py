"""X-Road's local group, as ``node.toml`` and the node's settings write it.

A hosted subsystem names a set of clients once and grants them access together
(``local_group = CODE`` in ``[[access]]`` of that subsystem's services). Its members are
looked up when an access right is checked (``gateway.core.policy.LocalGroupId``), so a
membership change needs no change of the grants.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.core.ids import SubsystemId, parse_client
from gateway.core.policy import LocalGroupId


class LocalGroupSection(BaseModel):
    """One ``[[local_groups]]`` entry: its owner, code, description and members."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str
    code: str
    description: str = ""
    members: list[str] = Field(default_factory=list)

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        SubsystemId.parse(value)
        return value

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        """Printable and without the separators of identifiers, so a code names one
        group in an access right and in a log record alike."""
        if not value or not value.isprintable() or value != value.strip() or "/" in value:
            raise ValueError(f"local group code {value!r} must be printable, without '/'")
        if "#" in value:
            raise ValueError(f"local group code {value!r} must not contain '#'")
        return value

    @field_validator("members")
    @classmethod
    def _members(cls, value: list[str]) -> list[str]:
        for member in value:
            parse_client(member)
        if len(set(value)) != len(value):
            raise ValueError("a local group lists a member twice")
        return value

    @property
    def group_id(self) -> LocalGroupId:
        return LocalGroupId(SubsystemId.parse(self.owner), self.code)
