"""The sections of a node's configuration about its message log: what it keeps of each
body (``[logging]``), who may read it and whose tree heads it witnesses (``[audit]``),
the data tracker's policy (``[tracker]``) and how long it keeps what (``[retention]``).

Apart from ``config.py`` because they concern the log and its readers, not the node's
ports, keys and settings; ``config.py`` builds ``NodeConfig`` from them and re-exports
them, so ``gateway.node.config`` stays the one place a caller imports from.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

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


class TokenSection(_Model):
    """A key in a PKCS#11 token: a signing key (docs/deployment.md, "Signing keys in a
    token") or the data key's AES key (``[logging] data_key_token``). Here rather than in
    ``config.py`` as both sections use it."""

    module: Path
    """The token's PKCS#11 library, e.g. ``/usr/lib/softhsm/libsofthsm2.so``."""
    label: str
    """The token's label."""
    key_label: str
    """The key's label on the token (``gateway node token init-key --key-label``)."""
    pin_file: Path | None = None
    """A file holding the PIN (mode 0600); else ``pin_env``, else a prompt at start."""
    pin_env: str | None = None
    """An environment variable holding the PIN."""

    @model_validator(mode="after")
    def _one_pin_source(self) -> TokenSection:
        if self.pin_file is not None and self.pin_env is not None:
            raise ValueError("a token takes its PIN from pin_file or pin_env, not both")
        return self


class LoggingSection(_Model):
    """What the message log keeps of each body (gateway/messagelog/policy.py), its data
    key, where a lone append commits and where large bodies are stored."""

    max_body_bytes: int | None = Field(default=None, ge=0)
    """Bodies larger than this are logged as their SHA-256 only; none: no limit."""
    subsystems: list[SubsystemLogging] = Field(default_factory=list)
    data_key: Path | None = None
    """The node's data key file (``gateway node data-key``): with it, exchange headers,
    bodies and data subjects are sealed at rest (docs/message-log.md#at-rest)."""
    data_key_passphrase_file: Path | None = None
    """Its passphrase, first line; else ``GATEWAY_DATA_KEY_PASSPHRASE``."""
    data_key_token: TokenSection | None = None
    """The token whose AES key ``key_label`` keeps ``data_key`` instead of a passphrase
    (``gateway node data-key --token ...``; docs/adr/0053)."""
    inline_commit: bool = True
    """Whether an append that is alone commits on the event loop's thread (a SQLite log
    only; docs/adr/0070). Off, every append goes to the log's writer thread: the event
    loop never waits for an fsync, at a thread hand-off per exchange."""
    body_file_bytes: int = Field(default=64 * 1024, ge=0)
    """Bodies of this many bytes or more (as stored, sealed if sealing) are appended to
    segment files beside a SQLite log instead of its rows; 0: every body in its row
    (docs/adr/0071). PostgreSQL keeps every body in its rows."""

    @model_validator(mode="after")
    def _one_protection(self) -> LoggingSection:
        if self.data_key_token is not None:
            if self.data_key is None:
                raise ValueError("[logging] data_key_token needs data_key (the file it keeps)")
            if self.data_key_passphrase_file is not None:
                raise ValueError(
                    "[logging] data_key is kept by data_key_token or a passphrase, not both"
                )
        return self

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


class RetentionSection(_Model):
    """Archiving and deletion that run by themselves in the node (``gateway/node/
    retention.py``; docs/adr/0046-retention-that-runs-itself.md).

    The defaults follow the Bundesmeldegesetz's rule for protocol data (§ 40: kept at
    least twelve months, deleted by the end of the following calendar year): 366 days is
    twelve months even across a 29 February, and a pass every ``archive_every_hours``
    deletes them a few hours later, well before the end of the following year for all
    but an entry logged on 31 December (one day late at most, see the ADR).
    """

    archive_every_hours: float = Field(default=6, ge=0)
    """How often the node writes its timestamped entries logged more than
    ``archive_after_days`` ago to a new archive bundle in ``archive_dir`` and blanks their
    content in the log (X-Road archives every six hours by default); 0: no archiving,
    only deletion."""
    archive_after_days: float = Field(default=30, ge=0)
    """How long entries stay whole in the log before they are archived: the auditor API,
    ``gateway log prove`` and exports read them from the log until then (X-Road keeps
    archived records 30 days in its database by default)."""
    archive_dir: Path | None = None
    """Where the bundles go; relative to node.toml; default ``archive/`` beside it."""
    archive_recipients: list[Path] = Field(default_factory=list)
    """The member's archive recipients' public keys (``gateway audit recipient-key``):
    each bundle is sealed to them before any entry is blanked; empty: bundles in the
    clear (docs/message-log.md#at-rest)."""
    entries_keep_days: float = Field(default=366, gt=0)
    """Entries logged longer ago lose their header, body and signature (leaf hash and
    body digest stay, so every proof of the entries after them still verifies)."""
    tracker_keep_days: float = Field(default=366, gt=0)
    """Data-tracker rows (``data_subject``, ``data_subject_read``) of deleted entries
    logged longer ago are deleted; never before their entry's content."""
    check_every_seconds: float = Field(default=3600, gt=0)
    """How often the node checks whether a pass is due."""

    @field_validator("tracker_keep_days")
    @classmethod
    def _tracker_outlives_entries(cls, value: float, info: ValidationInfo) -> float:
        entries = info.data.get("entries_keep_days")
        if isinstance(entries, float | int) and value < entries:
            raise ValueError(
                "[retention] tracker_keep_days must be at least entries_keep_days: the data"
                " tracker answers from the entries while they hold content"
            )
        return value
