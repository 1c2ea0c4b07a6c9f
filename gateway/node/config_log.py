"""The sections of a node's configuration about its message log: what it keeps of each
body (``[logging]``), who may read it and whose tree heads it witnesses (``[audit]``),
and the data tracker's policy (``[tracker]``).

Apart from ``config.py`` because they concern the log and its readers, not the node's
ports, keys and settings; ``config.py`` builds ``NodeConfig`` from them and re-exports
them, so ``gateway.node.config`` stays the one place a caller imports from.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.core.ids import NodeId, SubsystemId, parse_client


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubsystemLogging(_Model):
    """One local subsystem's logging mode (X-Road's per-subsystem message log setting)."""

    id: str
    mode: str = "full"

    @field_validator("id")
    @classmethod
    def _subsystem(cls, value: str) -> str:
        SubsystemId.parse(value)
        return value

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ("full", "metadata"):
            raise ValueError(f"mode must be full or metadata, not {value!r}")
        return value


class LoggingSection(_Model):
    """What the message log keeps of each body (gateway/messagelog/policy.py)."""

    max_body_bytes: int | None = Field(default=None, ge=0)
    """Bodies larger than this are logged as their SHA-256 only; none: no limit."""
    subsystems: list[SubsystemLogging] = Field(default_factory=list)
    data_key: Path | None = None
    """The node's data key file (``gateway node data-key``): with it, exchange headers,
    bodies and data subjects are sealed at rest (docs/message-log.md#at-rest)."""
    data_key_passphrase_file: Path | None = None
    """Its passphrase, first line; else ``GATEWAY_DATA_KEY_PASSPHRASE``."""

    def metadata_only(self) -> frozenset[str]:
        return frozenset(s.id for s in self.subsystems if s.mode == "metadata")


class AuditSection(_Model):
    """Who may read this node's log, and how it witnesses its peers (docs/message-log.md)."""

    auditor_cert_sha256: list[str] = Field(default_factory=list)
    """SHA-256 fingerprints (hex) of auditors' TLS client certificates: full read access
    to the log on the peer port (the certificate must also chain to an instance CA)."""
    admin_token_file: Path | None = None
    """A file holding the bearer token that gives full read access on the consumer port."""
    witness_interval_seconds: float = Field(default=300, ge=0)
    """How often this node fetches, checks and co-signs its peers' tree heads; 0: never."""
    witness_peers: list[str] = Field(default_factory=list)
    """Node ids to witness; empty: every other node of the global configuration."""

    @field_validator("auditor_cert_sha256")
    @classmethod
    def _fingerprints(cls, value: list[str]) -> list[str]:
        for fp in value:
            if len(fp) != 64 or fp != fp.lower() or any(c not in "0123456789abcdef" for c in fp):
                raise ValueError(f"{fp!r} is not a lowercase hex SHA-256 fingerprint")
        return value

    @field_validator("witness_peers")
    @classmethod
    def _peers(cls, value: list[str]) -> list[str]:
        for peer in value:
            NodeId.parse(peer)
        return value


class TrackerSection(_Model):
    """The data tracker's provider policy (docs/data-tracker.md); who may *call* it is an
    ordinary ``[[access]]`` grant on ``{subsystem}/findUsage``."""

    hidden_clients: list[str] = Field(default_factory=list)
    """Client or member ids whose reads ``findUsage`` never shows (e.g. security
    authorities); a member id hides all its subsystems."""

    @field_validator("hidden_clients")
    @classmethod
    def _clients(cls, value: list[str]) -> list[str]:
        for client in value:
            parse_client(client)
        return value
