"""The provider side of the citizen's data tracker, and purpose binding.

A registry names the persons each answer discloses (``X-Data-Subject``,
gateway/core/datasubject.py); the provider's node stores those pseudonyms with its
response log entry. ``findUsage`` is a built-in service of every provider subsystem, like
X-Road's metadata services, answered from this node's own provider-side log: for one
pseudonym, who read it, through which service, for which case, when, under which message
id. It reads the log, not a separate audit table, so it can only show what the log holds
as evidence, and it shows every such read except those of clients the provider hides by
policy (``[tracker] hidden_clients``). Archiving empties old entries' signed headers, so
what the tracker shows of a read is also kept, at write time, in ``data_subject_read``;
it answers from that row only once the headers are archived. Who may call it is an
ordinary access right on ``{subsystem}/findUsage``. See docs/data-tracker.md.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs

from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateTable

from gateway.core.datasubject import DataSubjectError, check_subject
from gateway.core.envelope import EnvelopeError, RequestHeader, ResponseHeader
from gateway.core.errors import Code, GatewayError
from gateway.core.ids import ClientId, InvalidIdentifierError, ServiceId, SubsystemId, parse_client
from gateway.node.config import ServiceSection
from gateway.store.models import DataSubjectRead, schema_tables

FIND_USAGE: Final = "findUsage"
"""The reserved service code of the data tracker on every provider subsystem."""

ISSUE_HEADER: Final = "X-Road-Issue"
USER_ID_HEADER: Final = "X-Road-UserId"

_USAGE_QUERY: Final = """
SELECT resp.id, resp.logged_at, resp.client, resp.service, resp.message_id, resp.xroad_id,
       resp.header, req.header, resp.leaf_index,
       resp.body_omitted = 'archived' OR req.body_omitted = 'archived',
       r.method, r.path, r.status, r.user_id, r.issue
FROM data_subject AS ds
JOIN message_log AS resp ON resp.id = ds.entry_id
JOIN message_log AS req
  ON req.message_id = resp.message_id AND req.client = resp.client
 AND req.role = 'provider' AND req.kind = 'request'
LEFT JOIN data_subject_read AS r ON r.entry_id = resp.id
WHERE ds.subject = ? AND resp.role = 'provider' AND resp.kind = 'response'
ORDER BY resp.id
"""

_READ_SOURCE: Final = """
SELECT CAST(req.header AS BLOB), CAST(resp.header AS BLOB)
FROM message_log AS resp
JOIN message_log AS req
  ON req.message_id = resp.message_id AND req.client = resp.client
 AND req.role = 'provider' AND req.kind = 'request'
WHERE resp.id = ? AND resp.role = 'provider' AND resp.kind = 'response'
  AND resp.body_omitted != 'archived' AND req.body_omitted != 'archived'
ORDER BY req.id
LIMIT 1
"""
_UNRECORDED: Final = (
    "SELECT DISTINCT ds.entry_id FROM data_subject AS ds WHERE NOT EXISTS"
    " (SELECT 1 FROM data_subject_read AS r WHERE r.entry_id = ds.entry_id) ORDER BY ds.entry_id"
)
_INSERT_READ: Final = (
    "INSERT OR IGNORE INTO data_subject_read (entry_id, method, path, status, user_id, issue)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_CREATE_READS: Final = str(
    CreateTable(
        next(t for t in schema_tables() if t.name == DataSubjectRead.__tablename__),
        if_not_exists=True,
    ).compile(dialect=sqlite.dialect())
)
"""The table's DDL from the schema itself, for a log file no current node has opened."""


# ---------------------------------------------------------------------- read details


@dataclass(frozen=True, slots=True)
class ReadDetails:
    """What the tracker shows of one read beyond the log row's own columns.

    Taken from the signed request and response headers; stored as a
    ``data_subject_read`` row so it outlives the headers when they are archived.
    """

    method: str
    path: str
    status: int
    user_id: str | None
    issue: str | None


def details_of(request: RequestHeader, status: int) -> ReadDetails:
    """The tracker's view of one exchange: its signed request and the registry's status."""
    return ReadDetails(request.method, request.path or "/", status, request.user_id, request.issue)


def read_details(request: bytes, response: bytes) -> ReadDetails:
    """The tracker's view of one exchange from its signed header bytes (EnvelopeError)."""
    return details_of(RequestHeader.from_bytes(request), ResponseHeader.from_bytes(response).status)


def record_read(conn: sqlite3.Connection, entry_id: int) -> bool:
    """Store the read details of provider response entry ``entry_id`` from its headers.

    Runs inside the caller's transaction (the log's writer, or archiving before it
    blanks the headers). False if they cannot be taken: no request entry, headers
    already archived, or headers that do not parse; the caller decides what that means.
    """
    source = conn.execute(_READ_SOURCE, (entry_id,)).fetchone()
    if source is None:
        return False
    try:
        details = read_details(bytes(source[0]), bytes(source[1]))
    except EnvelopeError:
        return False
    store_read(conn, entry_id, details)
    return True


def store_read(conn: sqlite3.Connection, entry_id: int, details: ReadDetails) -> None:
    """Store ``details`` as the ``data_subject_read`` row of entry ``entry_id``."""
    conn.execute(
        _INSERT_READ,
        (entry_id, details.method, details.path, details.status, details.user_id, details.issue),
    )


def record_missing_reads(conn: sqlite3.Connection) -> list[int]:
    """Fill in ``data_subject_read`` for entries with data subjects that have no row yet.

    For log files written before the table existed. Creates the table if it is missing
    (archiving may open a file no current node has). Returns the entries that still have
    no row (their headers are archived already or do not parse), oldest first.
    """
    conn.execute(_CREATE_READS)
    missing = []
    for (entry_id,) in conn.execute(_UNRECORDED).fetchall():
        if not record_read(conn, int(entry_id)):
            missing.append(int(entry_id))
    return missing


# ---------------------------------------------------------------------- purpose binding


def required_headers(section: ServiceSection) -> list[str]:
    """The X-Road headers ``section`` requires, as advertised in ``listMethods``."""
    required = []
    if section.require_issue:
        required.append(ISSUE_HEADER)
    if section.require_user_id:
        required.append(USER_ID_HEADER)
    return required


def check_purpose(section: ServiceSection, header: RequestHeader) -> None:
    """Refuse a request that lacks the case number or end user its service requires.

    Checked on the signed header, so what the provider relied on is exactly what both
    logs hold. A value of only blanks counts as missing: it names no case and no one.
    """
    if section.require_issue and not (header.issue or "").strip():
        raise GatewayError(
            Code.SP_MISSING_ISSUE,
            f"{header.service} requires a case number in {ISSUE_HEADER}",
        )
    if section.require_user_id and not (header.user_id or "").strip():
        raise GatewayError(
            Code.SP_MISSING_USER_ID,
            f"{header.service} requires the end user in {USER_ID_HEADER}",
        )


# ---------------------------------------------------------------------- data tracker


@dataclass(frozen=True, slots=True)
class Usage:
    """One read of a data subject's data, as the provider's log shows it."""

    time: str
    """When the provider's node logged its response (its own clock, RFC 3339 UTC)."""
    client: str
    service: str
    method: str | None
    path: str | None
    status: int | None
    """The registry's HTTP status (a 404 can name a person too, if the register says so).
    ``method``, ``path``, ``status``, ``user_id`` and ``issue`` are None only for a read
    archived before the log kept them apart from the headers (see ``archived``)."""
    user_id: str | None
    issue: str | None
    message_id: str
    xroad_id: str
    leaf_index: int | None
    """The provider's response entry's position in this node's Merkle tree, so the read
    can be checked against a signed tree head: an auditor's inclusion proof for that
    leaf shows the entry exists and, through its ``subjects_sha256``, that its subjects
    were committed when it was logged (docs/data-tracker.md, section 5)."""
    archived: bool
    """The entries' content (signed headers, body, signature) has moved from this node's
    log to an archive bundle (``gateway log archive``); the fields above are what the log
    kept of the read, and the bundle holds the signed evidence."""


class Tracker:
    """Answers ``findUsage`` from one node's message log (read-only connection)."""

    def __init__(self, messagelog: Path, hidden_clients: Iterable[str]) -> None:
        self._path = messagelog
        self._hidden = frozenset(parse_client(c) for c in hidden_clients)

    def is_hidden(self, client: ClientId) -> bool:
        """Whether reads by ``client`` are withheld (the client or its member is listed)."""
        if client in self._hidden:
            return True
        return isinstance(client, SubsystemId) and client.member in self._hidden

    def find_usage(self, provider: SubsystemId, subject: str) -> list[Usage]:
        """Every logged read of ``subject`` from ``provider``'s services, oldest first.

        Blocking (SQLite); the node calls it in a worker thread. While an exchange's
        signed headers are in the log they are parsed again rather than trusted from the
        ``data_subject_read`` row: the tracker shows what the evidence says. Once they are
        archived, that row (written with the entry) is what the log has left.
        """
        check_subject(subject)
        uri = f"{self._path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True)
        try:
            rows = conn.execute(_USAGE_QUERY, (subject,)).fetchall()
        finally:
            conn.close()
        found: list[Usage] = []
        for row in rows:
            _id, logged_at, client, service, message_id, xroad_id, resp_raw, req_raw, leaf = row[:9]
            archived = bool(row[9])
            try:
                service_id = ServiceId.parse(str(service))
                if service_id.provider != provider:
                    continue
                if self.is_hidden(parse_client(str(client))):
                    continue
                if archived:
                    details = _stored_details(row[10:])
                else:
                    details = read_details(bytes(req_raw), bytes(resp_raw))
            except (EnvelopeError, InvalidIdentifierError) as exc:
                # The log only holds headers this node verified or signed; one that no
                # longer parses was altered, and hiding that would be the worst answer.
                raise GatewayError(
                    Code.SP_INTERNAL_ERROR, f"log entry {_id} does not parse: {exc}"
                ) from None
            found.append(
                Usage(
                    time=str(logged_at),
                    client=str(client),
                    service=str(service),
                    method=None if details is None else details.method,
                    path=None if details is None else details.path,
                    status=None if details is None else details.status,
                    user_id=None if details is None else details.user_id,
                    issue=None if details is None else details.issue,
                    message_id=str(message_id),
                    xroad_id=str(xroad_id),
                    leaf_index=None if leaf is None else int(leaf),
                    archived=archived,
                )
            )
        return found

    async def answer(self, header: RequestHeader) -> tuple[int, list[tuple[str, str]], bytes]:
        """The ``findUsage`` response (status, headers, body) to sign and log.

        Bad input gets a signed 400 answer like any registry's, not a node refusal: the
        caller was allowed to call, it just asked wrongly.
        """
        json_type = [("content-type", "application/json")]
        provider = header.service.provider
        try:
            subject = _subject_of(header)
        except ValueError as exc:
            body = {"error": "bad_request", "message": str(exc)}
            return 400, json_type, json.dumps(body, sort_keys=True).encode()
        usage = await asyncio.to_thread(self.find_usage, provider, subject)
        document = {
            "subject": subject,
            "provider": str(provider),
            "usage": [asdict(u) for u in usage],
        }
        return 200, json_type, json.dumps(document, sort_keys=True).encode()


def _stored_details(columns: tuple[object, ...]) -> ReadDetails | None:
    """The ``data_subject_read`` columns of an archived read; None if it has no row.

    No row means the read was archived before the log kept its details apart: who,
    when, which service and which exchange are still known from the entry's columns,
    the rest only from the archive bundle.
    """
    method, path, status, user_id, issue = columns
    if method is None:
        return None
    return ReadDetails(
        str(method),
        str(path),
        int(str(status)),
        None if user_id is None else str(user_id),
        None if issue is None else str(issue),
    )


def _subject_of(header: RequestHeader) -> str:
    """The one ``subject`` query parameter of a ``findUsage`` call; ValueError if not."""
    if header.method != "GET":
        raise ValueError("findUsage is called with GET")
    if header.path not in ("", "/"):
        raise ValueError("findUsage takes no path")
    params = parse_qs(header.query, keep_blank_values=True)
    unknown = set(params) - {"subject"}
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    values = params.get("subject", [])
    if len(values) != 1:
        raise ValueError("findUsage needs exactly one subject parameter")
    try:
        return check_subject(values[0])
    except DataSubjectError as exc:
        raise ValueError(str(exc)) from None
