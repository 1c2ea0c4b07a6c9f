"""The message log's schema, defined once: its tables and the enums of its columns.

These classes are the single source of truth for the database layout: the SQLite
backend (``gateway.messagelog.sqlite`` for reads, ``sqlite_writes`` for side writes,
``gateway.messagelog.writer`` for the group-commit write path) creates the tables a file
lacks from this metadata and names the same columns in its statements; a file that has
them all is opened without importing this module (``schema_names``, docs/adr/0061).
``Role`` and ``Kind`` are the only values ``message_log.role`` and ``message_log.kind``
take; they are ``StrEnum``s so the stored text stays exactly what it always was.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, Integer, Table, inspect
from sqlmodel import Field, SQLModel

# The enums and the table names live apart so a node can run without this module
# (gateway.messagelog.schema_names); they are part of this schema all the same.
from gateway.messagelog.schema_names import KINDS as KINDS
from gateway.messagelog.schema_names import ROLES as ROLES
from gateway.messagelog.schema_names import Kind as Kind
from gateway.messagelog.schema_names import Role as Role


def _one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"ck_message_log_{column}")


class LogEntry(SQLModel, table=True):
    """One signed message as this node received or sent it.

    Kept byte-exact (``header`` and ``body`` are the signed bytes) so the signature can be
    verified again later from the log alone; ``AUTOINCREMENT`` keeps ids from ever being
    reused, so an id handed out as evidence always names the same entry.

    This declares the table only: entries are written as ``LogRecord`` and read back as
    ``StoredEntry`` (``gateway.messagelog.store``).
    """

    __tablename__ = "message_log"
    __table_args__ = (
        _one_of("role", ROLES),
        _one_of("kind", KINDS),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    logged_at: str
    role: str
    kind: str
    message_id: str = Field(index=True)
    xroad_id: str
    client: str
    service: str
    created: str
    header: bytes
    body: bytes
    signature: str
    cert_ref: str
    ocsp_ref: str = ""
    """SHA-256 (hex) of the OCSP response that showed the signer's certificate good when
    this message was checked or sent; empty for entries that carry none."""
    leaf_index: int | None = None
    """Position of this entry's leaf in the log's Merkle tree: 0, 1, 2, … in id order.
    NULL only in a log written before the tree existed, until the next start fills it."""
    leaf_hash: bytes | None = None
    """RFC 9162 leaf hash of the entry's leaf data (``gateway.core.logtree``)."""
    body_sha256: str | None = None
    """SHA-256 (hex) of the message body; NULL in rows written before it was kept."""
    body_omitted: str = ""
    """Why ``body`` is empty though the message had one: ``metadata`` (the subsystem's
    logging mode), ``size`` (above the logged body limit) or ``archived`` (header, body
    and signature moved to an archive bundle); the leaf commits to ``body_sha256``."""
    subjects_salt: str | None = None
    """Per-entry random salt (hex) of the entry's data-subject commitment; NULL in
    entries logged before the commitment existed (their leaf is version 1)."""
    subjects_sha256: str | None = None
    """``gateway.core.logtree.subjects_commitment(salt, data_subject rows)``, which the
    entry's version 2 leaf commits to; ``gateway log check-subjects`` recomputes it."""
    sealed: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """0: ``header`` and ``body`` are stored as they are (older entries, admin records);
    1: sealed under the node's data key (``gateway.core.atrest``); its ``data_subject``
    and ``data_subject_read`` rows are then sealed too. The leaf is over the plaintext."""


class SignerCertificate(SQLModel, table=True):
    """A signer certificate, stored once and referenced from log entries by hash.

    Certificates are large compared with most messages and the same few sign nearly
    everything, so entries carry only ``cert_ref`` and the DER lives here.
    """

    __tablename__ = "signer_certificate"

    cert_ref: str = Field(primary_key=True)
    der: bytes
    jws_header: str = ""


class OcspEvidence(SQLModel, table=True):
    """An OCSP response (DER) a log entry relied on, stored once and referenced by hash.

    A node reuses one response for every message until it refreshes, so entries share it
    the way they share signer certificates.
    """

    __tablename__ = "ocsp_response"

    ocsp_ref: str = Field(primary_key=True)
    der: bytes


class LogTreeState(SQLModel, table=True):
    """The Merkle tree's compact frontier, one row, updated in each batch's transaction.

    Lets the writer extend the tree after a restart in O(log n) instead of rehashing
    the log; ``last_entry_id`` and ``tree_size`` let start-up check it still matches.
    """

    __tablename__ = "log_tree_state"

    id: int = Field(primary_key=True)
    tree_size: int
    last_entry_id: int
    frontier: bytes
    """``gateway.core.merkle.CompactTree.to_bytes()``."""


class MerkleSubtree(SQLModel, table=True):
    """One perfect subtree of the Merkle tree, written with its entry's batch.

    ``level`` 0 is a leaf (``position`` its leaf index); ``level`` L covers leaves
    ``position * 2**L`` up to ``(position + 1) * 2**L``. Any inclusion or consistency proof is
    built from O(log n) of these rows (``gateway.core.merkle_nodes``) instead of all the
    leaf hashes up to the tree size (docs/adr/0043).

    Keyed by ``node`` (``gateway.messagelog.leaves.subtree_key``: the leaf count that
    completes the subtree, then its level), which grows as the log grows: a commit's
    subtrees go to the end of one B-tree (on SQLite the table itself, ``node`` being its
    rowid), where a key of ``(level, position)`` wrote a page per level, and readers
    find a subtree by the key computed from its level and position (revision 0006,
    docs/adr/0072-fewer-pages-per-log-commit.md).
    """

    __tablename__ = "merkle_subtree"

    node: int = Field(
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
        )
    )
    level: int
    position: int
    hash: bytes


class TreeHead(SQLModel, table=True):
    """A tree head that a TSA timestamped: proof that the first ``tree_size`` entries,
    whose Merkle root is ``root_hash``, existed at ``gen_time``.

    ``document`` holds the exact bytes whose SHA-256 is the token's message imprint, so
    the token can be checked with standard tools without re-encoding anything.
    """

    __tablename__ = "tree_head"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = Field(default=None, primary_key=True)
    tree_size: int = Field(unique=True)
    root_hash: bytes
    last_entry_id: int
    """``message_log.id`` of the last entry the tree head covers (leaf ``tree_size - 1``)."""
    document: bytes
    gen_time: str
    token: bytes
    """The DER TimeStampToken (a CMS ContentInfo), as ``openssl ts -token_in`` reads it."""
    tsa_name: str
    tsa_cert_ref: str
    """SHA-256 (hex) of the TSA certificate the token was checked against."""
    stored_at: str


class TsaCertificate(SQLModel, table=True):
    """A TSA certificate that tree head tokens were checked against, stored once."""

    __tablename__ = "tsa_certificate"

    cert_ref: str = Field(primary_key=True)
    der: bytes


class SignedTreeHeadRow(SQLModel, table=True):
    """The member key's signature over a timestamped tree head (docs/message-log.md 4).

    Stored in the same transaction as its ``tree_head`` row. ``document`` is the exact
    signed ``gateway-signed-tree-head/v1`` bytes; the signer certificate and the OCSP
    response relied on live in ``signer_certificate`` and ``ocsp_response``.
    """

    __tablename__ = "signed_tree_head"

    tree_size: int = Field(primary_key=True)
    document: bytes
    signature: str
    """Compact JWS with detached payload, ES256, the signer's chain in ``x5c``."""
    cert_ref: str
    ocsp_ref: str = ""


class Cosignature(SQLModel, table=True):
    """A witness's co-signature over a node's signed tree head (gateway/messagelog/witness.py).

    One table for both directions: rows where ``witness`` is this node are co-signatures
    it made over a peer's head (its witness log); rows where ``log_node`` is this node
    are co-signatures peers made over its own heads, collected for audit bundles.
    """

    __tablename__ = "cosignature"

    log_node: str = Field(primary_key=True)
    witness: str = Field(primary_key=True)
    tree_size: int = Field(primary_key=True)
    document: bytes
    signature: str
    """The log owner's JWS over ``document``."""
    cosignature: str
    """The witness's JWS over the same ``document``."""
    cert_ref: str
    """SHA-256 of the witness's signing certificate (DER in ``signer_certificate``)."""
    ocsp_ref: str = ""
    stored_at: str


class WitnessAlert(SQLModel, table=True):
    """A peer caught showing two histories, or a head a witness could not accept.

    ``evidence`` is JSON with both signed documents and signatures: a split view is
    provable to anyone, since the peer signed both.
    """

    __tablename__ = "witness_alert"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = Field(default=None, primary_key=True)
    peer: str = Field(index=True)
    code: str
    detail: str
    evidence: str
    detected_at: str


class SeenRequest(SQLModel, table=True):
    """A request id already accepted from a client.

    Kept in the database rather than in memory so replay protection survives a restart,
    and written in the same transaction as the request's log entry so the two can never
    disagree.

    ``created`` is indexed so the replay guard's rebuild at start-up reads only the rows
    inside the message window, however long the log is; retention deletes the rows past
    twice the window (migration 0005). On SQLite the rows live in the primary key's own
    B-tree (``WITHOUT ROWID``, migration 0006): the replay check's insert writes that tree
    and the index on ``created``, not a rowid table besides (docs/adr/0072).
    """

    __tablename__ = "seen_request"
    __table_args__ = ({"sqlite_with_rowid": False},)

    client: str = Field(primary_key=True)
    message_id: str = Field(primary_key=True)
    created: str = Field(index=True)


class DataSubject(SQLModel, table=True):
    """A natural person whose data a provider-side log entry disclosed (data tracker).

    One row per person named in the registry's ``X-Data-Subject`` header, written in the
    same transaction as the response entry it belongs to, so an answer that reached a
    consumer always has its subjects on disk. Not a Merkle leaf itself, but the entry's
    leaf commits to its rows through ``LogEntry.subjects_sha256``, so a removed or altered
    row is detectable (docs/adr/0012-data-subjects-recorded-and-stripped.md).
    """

    __tablename__ = "data_subject"

    entry_id: int = Field(primary_key=True, foreign_key="message_log.id")
    """``message_log.id`` of the provider-side response entry."""
    subject: str = Field(primary_key=True, index=True)
    """The register-local pseudonym the registry named (gateway.core.datasubject), or,
    in a sealed log, ``#`` and its keyed hash (the lookup column)."""
    sealed: bytes | None = None
    """The identifier sealed under the node's data key; NULL when ``subject`` is it."""


class DataSubjectRead(SQLModel, table=True):
    """What the data tracker shows of one read, kept apart from the signed headers.

    One row per provider-side response entry that has ``data_subject`` rows, derived
    from that entry's and its request's signed headers when they are logged (same
    transaction). ``gateway log archive`` blanks those headers; this row is what lets
    ``findUsage`` still tell the person who read, for which case and user, and with what
    result (docs/data-tracker.md, section 3). The tracker reads it only for entries
    whose headers are archived; while the headers are on disk it reads them.
    """

    __tablename__ = "data_subject_read"

    entry_id: int = Field(primary_key=True, foreign_key="message_log.id")
    """``message_log.id`` of the provider-side response entry."""
    method: str
    path: str
    """The request's path, ``/`` for none (as the tracker shows it)."""
    status: int
    """The registry's HTTP status, from the signed response header."""
    user_id: str | None = None
    """``X-Road-UserId`` of the signed request, if any."""
    issue: str | None = None
    """``X-Road-Issue`` of the signed request, if any."""


class ConfigurationVersion(SQLModel, table=True):
    """A global configuration version this node applied, exactly as signed.

    One row per version, in the order applied (at start-up and on each refresh that
    changed the document), written through the log's writer before the node installs the
    version, so every entry logged under it finds its row (docs/message-log.md 8.1).
    Audit bundles carry the rows in force over the exported entries
    (gateway.audit.configuration). The TUF metadata files are the ones that verified
    ``document``, byte for byte; they are kept whole per row (a few kB) so each version
    checks on its own.
    """

    __tablename__ = "configuration_version"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = Field(default=None, primary_key=True)
    serial: int
    applied_at: str
    """RFC 3339 UTC with milliseconds, the log clock, like ``message_log.logged_at``."""
    document_sha256: str = Field(index=True)
    root: bytes
    timestamp: bytes
    snapshot: bytes
    targets: bytes
    document: bytes


class ForeignConfigurationVersion(SQLModel, table=True):
    """A federated instance's configuration version this node applied, exactly as
    signed: the foreign counterpart of :class:`ConfigurationVersion`.

    One row per instance and document, written through the log's writer before the
    node acts on the version, so an auditor can tell under which foreign configuration
    an exchange with that instance's members was made (docs/federation.md). ``expires``
    is the version's validity when applied (the earliest expiry of the TUF metadata
    that vouched for it), ``root_sha256`` the fingerprint of the TUF root it verified
    under (``gateway.conf.anchor.root_fingerprint``, the value operators compare when
    they federate).
    """

    __tablename__ = "foreign_configuration_version"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = Field(default=None, primary_key=True)
    instance: str = Field(index=True)
    serial: int
    applied_at: str
    expires: str
    root_sha256: str
    document_sha256: str
    root: bytes
    timestamp: bytes
    snapshot: bytes
    targets: bytes
    document: bytes


class OwnOcspStatus(SQLModel, table=True):
    """The last good OCSP response this node fetched for one of its own certificates.

    Written through the log's writer on every good fetch (the DER goes to
    ``ocsp_response``), read once at start-up: a node restarted while its responder is
    down keeps serving, and signing tree heads, with a response that is still inside the
    freshness window instead of refusing everything until the responder answers
    (docs/message-log.md 4.1).
    """

    __tablename__ = "own_ocsp_status"

    cert_ref: str = Field(primary_key=True)
    """SHA-256 (hex) of the node's certificate (authentication or signing)."""
    ocsp_ref: str
    """SHA-256 (hex) of the response's DER, kept in ``ocsp_response``."""
    fetched_at: str
    """RFC 3339 UTC with milliseconds, the node clock."""
    fetched_from: str
    """The responder URL that answered."""


class NodeSettingsRow(SQLModel, table=True):
    """One version of the node's management settings, as an admin change left them.

    Written in the same transaction as the ``admin`` log entry that records the change
    (``MessageLog.append_admin``), so the settings in force always have their record in
    the Merkle log; the newest row is what the node runs with after a restart. Not a leaf
    itself: the entry's signed record carries the change's before and after.
    """

    __tablename__ = "node_settings"
    __table_args__ = ({"sqlite_autoincrement": True},)

    version: int | None = Field(default=None, primary_key=True)
    """1, 2, 3, …: never reused, so a version named in a receipt is always the same."""
    document: bytes
    """The settings document exactly as the node handed it in."""
    changed_at: str
    """``message_log.logged_at`` of the entry recording the change."""
    entry_id: int = Field(foreign_key="message_log.id")
    """``message_log.id`` of that ``admin`` entry."""


class OperationalData(SQLModel, table=True):
    """One exchange as operational monitoring sees it: X-Road's fields, never a payload.

    Written for every exchange this node took part in, on either side: a success in the
    same transaction as its log entries, a refusal best effort in a batch of its own
    (``gateway.messagelog.store.OpRecord``). Not part of the Merkle tree: rows are pruned after
    the node's retention period (``opdata_retention_days``), entries are not.

    Indexed on ``request_in`` only: every read is a time range or the whole table, and
    the retention's delete is one. ``client`` had an index of its own until revision
    0006, written by every exchange for the admin API's occasional ``client=`` filter,
    which reads the time range instead (docs/adr/0072).
    """

    __tablename__ = "operational_data"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = Field(default=None, primary_key=True)
    side: str
    """``consumer`` or ``provider``: which side of the exchange this node played."""
    node: str
    """This node's id."""
    peer_node: str
    """The other node's id, when known ("" otherwise)."""
    client: str
    service: str
    message_id: str
    xroad_id: str
    request_in: str = Field(index=True)
    """RFC 3339 UTC with milliseconds: when the request reached this node."""
    response_out: str
    """When this node answered (or refused)."""
    request_size: int
    response_size: int
    status: int
    """The HTTP status this node answered with."""
    succeeded: bool
    error_code: str
    """X-Road's error code of a refusal ("" for a success)."""


def schema_tables() -> list[Table]:
    """This schema's tables.

    ``SQLModel.metadata`` is shared by every table model imported in the process; creating
    only these keeps other modules' tables out of the message log's file.
    """
    tables = []
    for model in (
        LogEntry,
        SignerCertificate,
        OcspEvidence,
        SeenRequest,
        LogTreeState,
        MerkleSubtree,
        TreeHead,
        TsaCertificate,
        SignedTreeHeadRow,
        Cosignature,
        WitnessAlert,
        DataSubject,
        DataSubjectRead,
        ConfigurationVersion,
        ForeignConfigurationVersion,
        OwnOcspStatus,
        OperationalData,
        NodeSettingsRow,
    ):
        table = inspect(model).local_table
        if not isinstance(table, Table):
            raise TypeError(f"{model.__name__} is not mapped to a plain table")
        tables.append(table)
    return tables
