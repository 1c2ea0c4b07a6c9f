"""Witnessing: nodes check and co-sign each other's signed tree heads.

A node alone could keep two versions of its log and show each to a different party;
timestamps and its own signature would not reveal that. So every node is also a
**witness** for its peers: every ``witness_interval_seconds`` it fetches each peer's
latest signed tree head over the node-to-node mutual TLS channel, checks the peer's
signature and its certificate's OCSP status at the head's time, checks (RFC 9162
consistency proof, fetched from the peer) that the head extends the last one it saw
from that peer, and co-signs the same document with its own member key. Co-signatures
go into the witness's own message log database (table ``cosignature``, through the
log's single writer), and the witness serves them, so the log owner collects the
co-signatures over its heads for audit bundles.

A peer whose heads cannot all be true (two roots for one size, a larger tree that does
not extend the smaller, or a tree that shrank) has shown a split view: the witness does
not co-sign, logs an error with ``server.clientproxy.witness_split_view`` and records
both signed heads as evidence in ``witness_alert`` (``gateway log witness``). A head
that does not verify is recorded with ``server.clientproxy.witness_failed``, and a
peer whose registered certificate was not issued by a CA of its own instance (the client
proxy's rule, docs/federation.md) with ``server.clientproxy.wrong_instance_ca``, before a
byte of any request reaches it; an unreachable peer is only logged (it is tried again
next round).

Everything is driven by :meth:`Witness.witness_once` (the periodic task just calls it),
so tests run one round at a time without sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from gateway.core.encoding import format_time
from gateway.core.errors import Code, GatewayError
from gateway.core.ids import NodeId
from gateway.core.jws import Signer, VerifiedSignature
from gateway.core.treehead import (
    SignedTreeHead,
    TreeHeadError,
    TreeHeadFailure,
    check_extends,
    parse_sth,
    sign_sth,
    verify_sth_signature,
)
from gateway.messagelog.context import LogContext
from gateway.messagelog.records import CosignatureRow, SignedHeadRecord
from gateway.messagelog.timestamper import HeadNotSignable
from gateway.node.ocsp import OwnStatusUnavailable
from gateway.node.transport import PinnedConnector, WrongInstanceCa, read_limited

__all__ = [
    "CONSISTENCY_PATH",
    "COSIGNATURES_PATH",
    "STH_PATH",
    "PeerOutcome",
    "Witness",
    "head_signer",
]

log = logging.getLogger(__name__)

STH_PATH: Final = "/gw/v1/log/sth"
CONSISTENCY_PATH: Final = "/gw/v1/log/consistency"
COSIGNATURES_PATH: Final = "/gw/v1/witness/cosignatures"
MAX_REPLY: Final = 4 * 1024 * 1024
"""An STH is ~1 KiB and a proof ~2 KiB; co-signature lists of a long-lived log more."""


def _ocsp(node: LogContext, signer: Signer) -> tuple[str, bytes]:
    """The signer's current OCSP evidence; without it no head is signed, since an
    auditor (and every witness) refuses a signed tree head it cannot check."""
    try:
        evidence = node.own_evidence(signer.cert_ref, node.clock.now())
    except OwnStatusUnavailable as exc:
        raise HeadNotSignable(str(exc)) from None
    return evidence.ref, evidence.der


def head_signer(node: LogContext) -> Callable[[bytes], SignedHeadRecord | None]:
    """What the timestamper calls to sign each tree head with the node's member key.

    Raises :class:`HeadNotSignable` while the key's OCSP evidence is missing or stale:
    the timestamper then stores no head and retries.
    """

    def sign(document: bytes) -> SignedHeadRecord | None:
        signer = node.own_signer()
        if signer is None:
            log.warning(
                "node %s holds no signing key of %s: tree heads stay unsigned",
                node.node_id,
                node.node_id.owner,
            )
            return None
        ocsp_ref, ocsp_der = _ocsp(node, signer)
        return SignedHeadRecord(
            document=document,
            signature=sign_sth(signer, document),
            cert_ref=signer.cert_ref,
            cert_der=signer.cert_der,
            jws_header=signer.jws_header,
            ocsp_ref=ocsp_ref,
            ocsp_der=ocsp_der,
        )

    return sign


@dataclass(frozen=True, slots=True)
class PeerOutcome:
    """What one round did for one peer: ``code`` is None unless the peer failed (the head
    was co-signed, or this witness could not co-sign it now and says why in ``detail``)."""

    peer: str
    tree_size: int | None
    code: Code | None
    detail: str


class _PeerFailure(Exception):
    """A peer could not be asked or answered nonsense; transient, only logged."""


class _PeerRefused(Exception):
    """The peer presented its registered certificate, but no CA of its own instance
    issued it: not transient, recorded as an alert and never asked anything."""


class Witness:
    """Witnesses the node's peers and collects co-signatures over the node's own heads."""

    def __init__(self, node: LogContext) -> None:
        self._node = node
        self._session: aiohttp.ClientSession | None = None
        self._connector: PinnedConnector | None = None
        self._context: object = None
        self._task: asyncio.Task[None] | None = None
        self.last_round: list[PeerOutcome] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Run ``witness_once`` every ``witness_interval_seconds`` (0: not at all)."""
        interval = self._node.audit.witness_interval_seconds
        if interval > 0 and self._task is None:
            self._task = asyncio.create_task(
                self._run(interval), name=f"witness:{self._node.node_id}"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.witness_once()
            except Exception:  # the schedule must outlive any bug
                log.exception("witness of node %s: unexpected error", self._node.node_id)

    async def _http(self) -> tuple[aiohttp.ClientSession, PinnedConnector]:
        """A pool on the node's current TLS client context (renewed when global
        configuration brings other trust roots)."""
        context = self._node.client_ssl()
        if self._session is not None and self._context is not context:
            await self._session.close()
            self._session = None
        if self._session is None or self._connector is None:
            self._connector = PinnedConnector(context)
            self._session = aiohttp.ClientSession(connector=self._connector)
            self._context = context
        return self._session, self._connector

    # ------------------------------------------------------------------ one round

    def peers(self) -> list[NodeId]:
        """The configured peers, or every other node the global configuration lists,
        leaving out the nodes of this node's own member either way: a member's second
        node is no independent witness of its first (the auditor refuses such a
        co-signature, docs/message-log.md)."""
        own = self._node.node_id.owner
        configured = self._node.audit.witness_peers
        if configured:
            return [p for p in (NodeId.parse(c) for c in configured) if p.owner != own]
        found: dict[str, NodeId] = {}
        directory = self._node.directory()
        for member in directory.members():
            for info in directory.nodes_hosting(member.id):
                if info.id.owner != own:
                    found[str(info.id)] = info.id
        return [found[k] for k in sorted(found)]

    async def witness_once(self) -> list[PeerOutcome]:
        """Witness every peer once, then collect co-signatures over this node's heads."""
        outcomes = []
        for peer in self.peers():
            outcomes.append(await self._witness(peer))
            await self._collect(peer)
        self.last_round = outcomes
        return outcomes

    async def _get(self, peer: NodeId, path: str, params: dict[str, str]) -> Any:
        info = self._node.directory().node(peer)
        if info is None:
            raise _PeerFailure(f"{peer} is not in the global configuration")
        session, connector = await self._http()
        # As the client proxy does: the peer's certificate must come from a CA of the
        # peer node's own instance (docs/adr/0040), checked before the request is sent.
        issuers = frozenset(self._node.directory().trust_roots_for(peer.instance))
        connector.pin(info.address, info.auth_cert_sha256, issuers)
        timeout = aiohttp.ClientTimeout(total=self._node.peer_timeout_seconds)
        try:
            async with session.get(
                info.address.rstrip("/") + path, params=params, timeout=timeout
            ) as response:
                body = await read_limited(response.content, MAX_REPLY)
                if response.status != 200 or body is None:
                    raise _PeerFailure(
                        f"{path} answered HTTP {response.status} "
                        f"{response.headers.get('X-Road-Error', '')}".rstrip()
                    )
        except WrongInstanceCa as exc:
            raise _PeerRefused(
                f"{info.address} presented its registered certificate, but it was issued by "
                f"{exc.issuer}, which is not a CA of {peer}'s instance {peer.instance}"
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _PeerFailure(f"{path}: {type(exc).__name__}: {exc}") from None
        try:
            return json.loads(body)
        except ValueError:
            raise _PeerFailure(f"{path} did not answer JSON") from None

    async def _witness(self, peer: NodeId) -> PeerOutcome:
        node = self._node
        try:
            reply = await self._get(peer, STH_PATH, {})
            document = base64.b64decode(str(reply["document"]), validate=True)
            signature = str(reply["signature"])
        except _PeerFailure as exc:
            log.warning("witness %s: peer %s: %s", node.node_id, peer, exc)
            return PeerOutcome(str(peer), None, Code.WITNESS_PEER_FAILED, str(exc))
        except _PeerRefused as exc:
            return await self._alert(peer, Code.CP_WRONG_INSTANCE_CA, str(exc), {})
        except (KeyError, TypeError, ValueError) as exc:
            return await self._alert(peer, Code.WITNESS_PEER_FAILED, f"malformed STH: {exc}", {})
        now = node.clock.now()
        try:
            head, verified = verify_sth_signature(
                node.verifier(), document, signature, now, signer=peer.owner
            )
            if head.node != str(peer):
                raise TreeHeadError(
                    TreeHeadFailure.SIGNER, f"the head is for {head.node}, asked {peer}"
                )
            self._check_signer_status(reply.get("ocsp"), verified, head)
        except TreeHeadError as exc:
            evidence: dict[str, Any] = {
                "document": document.decode("utf-8", "replace"),
                "signature": signature,
            }
            return await self._alert(peer, Code.WITNESS_PEER_FAILED, str(exc), evidence)
        last = await asyncio.to_thread(self._last_seen, str(peer))
        proof: list[bytes] = []
        if last is not None:
            old = parse_sth(last.document)
            if head.tree_size > old.tree_size:
                try:
                    reply = await self._get(
                        peer,
                        CONSISTENCY_PATH,
                        {"first": str(old.tree_size), "second": str(head.tree_size)},
                    )
                    proof = [bytes.fromhex(str(h)) for h in reply["proof"]]
                except _PeerFailure as exc:
                    log.warning("witness %s: peer %s: %s", node.node_id, peer, exc)
                    return PeerOutcome(str(peer), None, Code.WITNESS_PEER_FAILED, str(exc))
                except _PeerRefused as exc:
                    return await self._alert(peer, Code.CP_WRONG_INSTANCE_CA, str(exc), {})
                except (KeyError, TypeError, ValueError) as exc:
                    # Not evidence of a fork by itself: the peer failed to answer.
                    return await self._alert(
                        peer, Code.WITNESS_PEER_FAILED, f"malformed consistency proof: {exc}", {}
                    )
            try:
                check_extends(old, head, proof)
            except TreeHeadError as exc:
                evidence = {
                    "earlier": {
                        "document": last.document.decode("ascii"),
                        "signature": last.signature,
                    },
                    "later": {"document": document.decode("ascii"), "signature": signature},
                    "consistency": [p.hex() for p in proof],
                }
                return await self._alert(peer, Code.WITNESS_SPLIT_VIEW, exc.detail, evidence)
            if head.tree_size == old.tree_size:
                return PeerOutcome(str(peer), head.tree_size, None, "already co-signed")
        unsigned = await self._cosign(peer, head, document, signature)
        if unsigned is not None:
            return PeerOutcome(str(peer), head.tree_size, None, f"not co-signed: {unsigned}")
        return PeerOutcome(str(peer), head.tree_size, None, "co-signed")

    def _check_signer_status(
        self, encoded: object, verified: VerifiedSignature, head: SignedTreeHead
    ) -> None:
        """The head's signer certificate was good when the head was signed.

        Judged at the head's time (the TSA's genTime it names), as an auditor judges
        it later: a peer whose log has been idle for days still gets its last head
        co-signed, but never one signed with a key already revoked by then.
        """
        try:
            self._node.peer_status(
                encoded if isinstance(encoded, str) and encoded else None,
                "the tree head's ocsp field",
                verified.cert_ref,
                lambda: verified.certificate,
                lambda: f"the signing certificate of {head.node}'s tree head",
                Code.WITNESS_PEER_FAILED,
                head.timestamp,
            )
        except GatewayError as exc:
            raise TreeHeadError(TreeHeadFailure.SIGNATURE, exc.message) from None

    def _last_seen(self, peer: str) -> CosignatureRow | None:
        rows = self._node.log.store.cosignatures(log_node=peer, witness=str(self._node.node_id))
        return max(rows, key=lambda r: r.tree_size) if rows else None

    async def _cosign(
        self, peer: NodeId, head: SignedTreeHead, document: bytes, signature: str
    ) -> str | None:
        """Co-sign and store; or say why this witness cannot now (its own key or OCSP
        evidence is missing: a co-signature without it would fail the peer's audits,
        so none is made and the next round tries again)."""
        node = self._node
        signer = node.own_signer()
        if signer is None:
            log.warning(
                "witness %s holds no key of %s: cannot co-sign", node.node_id, node.node_id.owner
            )
            return f"this witness holds no key of {node.node_id.owner}"
        try:
            ocsp_ref, ocsp_der = _ocsp(node, signer)
        except HeadNotSignable as exc:
            log.warning(
                "witness %s does not co-sign %s's tree head now: %s", node.node_id, peer, exc
            )
            return str(exc)
        cosignature = sign_sth(signer, document)
        stored_at = format_time(node.clock.now())
        row = CosignatureRow(
            str(peer),
            str(node.node_id),
            head.tree_size,
            document,
            signature,
            cosignature,
            signer.cert_ref,
            ocsp_ref,
            stored_at,
        )
        cert = (signer.cert_ref, signer.cert_der, signer.jws_header)
        await node.log.add_cosignature(row, cert, ocsp_der)
        log.info(
            "witness %s co-signed %s's tree head of size %d", node.node_id, peer, head.tree_size
        )
        return None

    async def _alert(
        self, peer: NodeId, code: Code, detail: str, evidence: dict[str, Any]
    ) -> PeerOutcome:
        node = self._node
        log.error("witness %s: peer %s: %s: %s", node.node_id, peer, code.value, detail)
        await node.log.add_witness_alert(
            str(peer),
            code.value,
            detail,
            json.dumps(evidence, sort_keys=True),
            format_time(node.clock.now()),
        )
        return PeerOutcome(str(peer), None, code, detail)

    # ------------------------------------------------------------------ collecting

    async def _collect(self, peer: NodeId) -> None:
        """Fetch the co-signatures ``peer`` made over this node's heads and keep the
        ones that verify over a document this node really signed."""
        node = self._node
        try:
            reply = await self._get(peer, COSIGNATURES_PATH, {"node": str(node.node_id)})
            items = list(reply["cosignatures"])
        except (_PeerFailure, _PeerRefused, KeyError, TypeError) as exc:
            log.warning("node %s: collecting co-signatures from %s: %s", node.node_id, peer, exc)
            return
        store = node.log.store
        mine = {h.tree_size: h for h in await asyncio.to_thread(store.signed_heads)}
        have = {
            r.tree_size
            for r in await asyncio.to_thread(
                store.cosignatures, log_node=str(node.node_id), witness=str(peer)
            )
        }
        now = node.clock.now()
        for item in items:
            try:
                document = base64.b64decode(str(item["document"]), validate=True)
                cosignature = str(item["cosignature"])
                head = parse_sth(document)
                own = mine.get(head.tree_size)
                if own is None or own.document != document or head.tree_size in have:
                    continue
                _, verified = verify_sth_signature(
                    node.verifier(), document, cosignature, now, signer=peer.owner
                )
                ocsp_der = base64.b64decode(str(item.get("ocsp", "")), validate=True)
            except (KeyError, TypeError, ValueError, TreeHeadError) as exc:
                log.warning(
                    "node %s: a co-signature from %s is refused: %s", node.node_id, peer, exc
                )
                continue
            ocsp_ref = hashlib.sha256(ocsp_der).hexdigest() if ocsp_der else ""
            row = CosignatureRow(
                str(node.node_id),
                str(peer),
                head.tree_size,
                document,
                own.signature,
                cosignature,
                verified.cert_ref,
                ocsp_ref,
                format_time(now),
            )
            cert = (verified.cert_ref, verified.cert_der, verified.jws_header)
            await node.log.add_cosignature(row, cert, ocsp_der)
