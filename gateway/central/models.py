"""The central authority's registry, as SQLModel tables.

List-valued facts (OCSP URLs) are stored as JSON text: they are only ever read whole, and
the configuration document is rebuilt from these tables on every change, so there is no
query that would profit from normalising them.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class MemberClass(SQLModel, table=True):
    __tablename__ = "member_class"
    code: str = Field(primary_key=True)
    description: str = ""


class Member(SQLModel, table=True):
    __tablename__ = "member"
    id: str = Field(primary_key=True)  # INSTANCE/CLASS/CODE
    name: str


class Subsystem(SQLModel, table=True):
    __tablename__ = "subsystem"
    id: str = Field(primary_key=True)  # INSTANCE/CLASS/CODE/SUBSYSTEM
    member_id: str = Field(index=True)


class Node(SQLModel, table=True):
    """A security server; ``enabled=False`` keeps it on record but out of the document."""

    __tablename__ = "node"
    id: str = Field(primary_key=True)  # INSTANCE/CLASS/CODE/SERVERCODE
    address: str
    enabled: bool = True


class NodeCert(SQLModel, table=True):
    """A registered authentication certificate of a node (by SHA-256 of its DER)."""

    __tablename__ = "node_cert"
    fingerprint: str = Field(primary_key=True)
    node_id: str = Field(index=True)
    pem: str = ""


class NodeClient(SQLModel, table=True):
    """A member or subsystem hosted on a node (X-Road's client registration)."""

    __tablename__ = "node_client"
    node_id: str = Field(primary_key=True)
    client_id: str = Field(primary_key=True)


class GlobalGroup(SQLModel, table=True):
    __tablename__ = "global_group"
    id: str = Field(primary_key=True)
    description: str = ""


class GroupMember(SQLModel, table=True):
    __tablename__ = "group_member"
    group_id: str = Field(primary_key=True)
    client_id: str = Field(primary_key=True)


class ApprovedCa(SQLModel, table=True):
    __tablename__ = "approved_ca"
    fingerprint: str = Field(primary_key=True)
    cert_pem: str
    ocsp_urls: str = "[]"  # JSON list


class ApprovedTsa(SQLModel, table=True):
    __tablename__ = "approved_tsa"
    name: str = Field(primary_key=True)
    url: str
    cert_pem: str


class Setting(SQLModel, table=True):
    __tablename__ = "setting"
    key: str = Field(primary_key=True)
    value: str


class AuditEntry(SQLModel, table=True):
    """One administrative action: who, when, what, and the object before and after."""

    __tablename__ = "audit"
    __table_args__ = ({"sqlite_autoincrement": True},)
    id: int | None = Field(default=None, primary_key=True)
    at: str
    actor: str
    action: str
    object: str
    before: str = ""  # JSON or empty
    after: str = ""


class RegistrationRequest(SQLModel, table=True):
    """An auth-cert or client registration waiting for (or past) an operator's decision."""

    __tablename__ = "registration_request"
    id: str = Field(primary_key=True)
    kind: str  # "auth-cert" | "client"
    status: str = "pending"  # pending | approved | rejected
    created: str
    node_id: str
    client_id: str = ""
    address: str = ""
    auth_cert_pem: str = ""
    document: str = ""  # the signed request document, as received
    reason: str = ""
    decided_at: str = ""


class ApiKey(SQLModel, table=True):
    """An admin API key: its role, validity, and the SHA-256 of its secret (never the secret).

    Revoked keys stay on record (``revoked`` set) so the audit trail's ``key:ID:NAME``
    keeps naming a known key.
    """

    __tablename__ = "api_key"
    id: str = Field(primary_key=True)
    name: str
    role: str
    digest: str = Field(unique=True, index=True)  # SHA-256 hex of the key's text
    created: str
    created_by: str
    expires: str = ""  # RFC 3339 or empty: no expiry
    revoked: str = ""  # RFC 3339 or empty
