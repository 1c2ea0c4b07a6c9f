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
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs

from gateway.core.datasubject import DataSubjectError, check_subject
from gateway.core.envelope import EnvelopeError, RequestHeader
from gateway.core.errors import Code, GatewayError
from gateway.core.ids import ClientId, InvalidIdentifierError, ServiceId, SubsystemId, parse_client
from gateway.messagelog.proofs import open_store
from gateway.messagelog.records import ReadDetails, details_of, read_details
from gateway.messagelog.store import LogStore
from gateway.node.config import ServiceSection

__all__ = [
    "FIND_USAGE",
    "ISSUE_HEADER",
    "USER_ID_HEADER",
    "ReadDetails",
    "Tracker",
    "Usage",
    "check_purpose",
    "details_of",
    "read_details",
    "required_headers",
]

FIND_USAGE: Final = "findUsage"
"""The reserved service code of the data tracker on every provider subsystem."""

ISSUE_HEADER: Final = "X-Road-Issue"
USER_ID_HEADER: Final = "X-Road-UserId"

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
    deleted: bool = False
    """The node's retention period for the content has passed and the node deleted it
    (``[retention]`` in node.toml; ``archived`` is then true too): the fields above are
    what it kept for the data tracker, the signed evidence is only in an archive bundle
    written before, if any."""


class Tracker:
    """Answers ``findUsage`` from one node's message log (its ``LogStore``)."""

    def __init__(self, messagelog: LogStore | Path, hidden_clients: Iterable[str]) -> None:
        self._store = open_store(messagelog)
        self._hidden = frozenset(parse_client(c) for c in hidden_clients)

    def is_hidden(self, client: ClientId) -> bool:
        """Whether reads by ``client`` are withheld (the client or its member is listed)."""
        if client in self._hidden:
            return True
        return isinstance(client, SubsystemId) and client.member in self._hidden

    def find_usage(self, provider: SubsystemId, subject: str) -> list[Usage]:
        """Every logged read of ``subject`` from ``provider``'s services, oldest first.

        Blocking (it reads the log); the node calls it in a worker thread. While an exchange's
        signed headers are in the log they are parsed again rather than trusted from the
        ``data_subject_read`` row: the tracker shows what the evidence says. Once they are
        archived, that row (written with the entry) is what the log has left.
        """
        check_subject(subject)
        found: list[Usage] = []
        for row in self._store.usage(subject):
            try:
                service_id = ServiceId.parse(row.service)
                if service_id.provider != provider:
                    continue
                if self.is_hidden(parse_client(row.client)):
                    continue
                if row.archived:
                    details = row.stored
                else:
                    details = read_details(row.request_header, row.response_header)
            except (EnvelopeError, InvalidIdentifierError) as exc:
                # The log only holds headers this node verified or signed; one that no
                # longer parses was altered, and hiding that would be the worst answer.
                raise GatewayError(
                    Code.SP_INTERNAL_ERROR, f"log entry {row.entry_id} does not parse: {exc}"
                ) from None
            found.append(
                Usage(
                    time=row.logged_at,
                    client=row.client,
                    service=row.service,
                    method=None if details is None else details.method,
                    path=None if details is None else details.path,
                    status=None if details is None else details.status,
                    user_id=None if details is None else details.user_id,
                    issue=None if details is None else details.issue,
                    message_id=row.message_id,
                    xroad_id=row.xroad_id,
                    leaf_index=row.leaf_index,
                    archived=row.archived,
                    deleted=row.deleted,
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
