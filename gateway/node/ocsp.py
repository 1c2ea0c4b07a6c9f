"""This node's own OCSP statuses: fetched off the request path, verified, kept fresh.

X-Road's model, which avoids putting the CA on the message path: the owner of a
certificate fetches its status from the responder the directory lists for the issuing
CA, caches it, and hands the response to peers with every message; peers check it
themselves. A node therefore needs a good, fresh response for its authentication
certificate (sent with every message, in both directions) and for each signing
certificate it signs with. Without one it fails closed: it still runs, so it recovers
by itself once the responder answers again, but it sends and answers nothing that
would need the missing status, and says why.

Fetching runs in background tasks, one per certificate: every ``refresh`` (X-Road:
1200 s, a third of the 3600 s freshness window, so two refreshes can fail before a
response goes stale), and after a failure again with a growing delay. Each answer is
verified with the same cache peers use (:class:`gateway.pki.ocsp_cache.OcspCache`),
so a node never relies on, or hands out, a response its peers would refuse.

Every good answer is also kept in the node's message log (table ``own_ocsp_status``,
the DER in ``ocsp_response``), and read back at start-up before the first fetch: a node
restarted while its responder is briefly down goes on serving, and signing its tree
heads, with the response it already had for as long as that stays fresh, instead of
refusing everything until the responder answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiohttp
from cryptography import x509

from gateway.core.jws import cert_ref
from gateway.messagelog import StoredStatus
from gateway.node.clock import Clock
from gateway.node.transport import read_limited
from gateway.pki.ocsp import OcspError, OcspFailure, build_ocsp_request
from gateway.pki.ocsp_cache import OcspCache, OcspEvidence

log = logging.getLogger("gateway.node.ocsp")

OCSP_REQUEST_TYPE = "application/ocsp-request"
OCSP_RESPONSE_TYPE = "application/ocsp-response"
MAX_RESPONSE_BYTES = 64 * 1024
"""An OCSP response is a few hundred bytes to a few KiB; more is not an answer."""
MAX_RETRY_BASE = 60.0
"""X-Road retries a failed OCSP fetch after 60 s."""

Fetch = Callable[[str, bytes], Awaitable[bytes]]
"""POST a DER OCSP request to a responder URL and return the DER response."""

Persist = Callable[[str, StoredStatus | None], Awaitable[None]]
"""Durably keep a good response as the last one for a certificate (by its ref), or
forget the one kept (``None``: the certificate was reported revoked)."""


class FetchError(Exception):
    """The responder could not be asked, or did not answer with an OCSP response."""


class OwnStatusUnavailable(Exception):
    """This node has no usable OCSP status for one of its own certificates; the message
    says which, why, and since when."""


class HttpFetcher:
    """RFC 6960 appendix A.1 over HTTP POST with aiohttp; one pooled session."""

    def __init__(self, timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str, request: bytes) -> bytes:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                url,
                data=request,
                headers={"Content-Type": OCSP_REQUEST_TYPE, "Accept": OCSP_RESPONSE_TYPE},
                allow_redirects=False,
            ) as resp:
                if resp.status != 200:
                    raise FetchError(f"answered HTTP {resp.status}")
                if resp.content_type != OCSP_RESPONSE_TYPE:
                    raise FetchError(f"answered {resp.content_type}, not {OCSP_RESPONSE_TYPE}")
                body = await read_limited(resp.content, MAX_RESPONSE_BYTES)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FetchError(f"cannot be reached: {type(exc).__name__} {exc}".strip()) from None
        if body is None:
            raise FetchError(f"answered more than {MAX_RESPONSE_BYTES} bytes")
        return body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass(eq=False)
class OwnCertificate:
    """One of this node's certificates and what is known about its status."""

    label: str
    """For operators, e.g. "signing certificate of DE-NRW/GOV/05974040 (serial 1a2b)"."""
    cert: x509.Certificate
    issuer: x509.Certificate
    responders: tuple[str, ...]
    evidence: OcspEvidence | None = None
    fetched_at: datetime | None = None
    """When the current ``evidence`` was fetched (the last successful fetch)."""
    fetched_from: str | None = None
    revoked: str | None = None
    """The responder's revocation detail (time, reason), once a responder said so."""
    revoked_by: str | None = None
    last_error: str | None = None
    refused: OcspFailure | None = None
    """Why the last answer was refused (``unknown``: the CA does not know the
    certificate), until a good one arrives."""
    failures: int = 0
    """Consecutive failed refresh rounds; drives the retry delay."""
    cert_ref: str = field(init=False)

    def __post_init__(self) -> None:
        self.cert_ref = cert_ref(self.cert)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else "never"


class OwnOcsp:
    """Fetches, verifies and refreshes the OCSP status of this node's own certificates.

    ``evidence`` is the per-message call: a dict lookup and the cheap time checks.
    ``refresh`` is one fetch round for one certificate; ``start`` runs one round for
    every certificate and then keeps them fresh in the background until ``stop``.
    """

    def __init__(
        self,
        node: str,
        certificates: Sequence[OwnCertificate],
        cache: OcspCache,
        clock: Clock,
        refresh: timedelta,
        *,
        fetch: Fetch | None = None,
        fetch_timeout: float = 10.0,
        persist: Persist | None = None,
    ) -> None:
        if not timedelta(0) < refresh < cache.freshness:
            raise ValueError(
                f"the OCSP refresh interval ({refresh.total_seconds():g} s) must be positive "
                f"and shorter than the freshness window ({cache.freshness.total_seconds():g} s)"
            )
        self.node = node
        self.cache = cache
        self.refresh_interval = refresh
        self._clock = clock
        self._by_ref: dict[str, OwnCertificate] = {}
        for own in certificates:
            self._by_ref.setdefault(own.cert_ref, own)
        self._http: HttpFetcher | None = None
        if fetch is None:
            self._http = HttpFetcher(min(fetch_timeout, refresh.total_seconds()))
            fetch = self._http
        self._fetch = fetch
        # Where good answers are kept for a restart; None keeps nothing (a probe such as
        # `gateway node check`, whose message log is not running).
        self.persist = persist
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._retired: dict[str, OwnCertificate] = {}
        self._started = False

    @property
    def certificates(self) -> list[OwnCertificate]:
        return list(self._by_ref.values())

    def get(self, ref: str) -> OwnCertificate:
        return self._by_ref[ref]

    # ------------------------------------------------------------------ per message

    def evidence(self, ref: str, now: datetime) -> OcspEvidence:
        """The response to send with a message that needs certificate ``ref`` now.

        Raises :class:`OwnStatusUnavailable` when the certificate is revoked, has never
        had a good status, or its last good status has left the freshness window.
        """
        own = self._by_ref.get(ref) or self._retired.get(ref)
        if own is None:
            raise OwnStatusUnavailable(f"certificate {ref} is not one of this node's")
        if own.revoked is not None:
            raise OwnStatusUnavailable(
                f"this node's {own.label} is revoked according to {own.revoked_by} "
                f"({own.revoked}); it sends and answers nothing that needs it"
            )
        evidence = own.evidence
        if evidence is None:
            raise OwnStatusUnavailable(
                f"this node has no good OCSP status for its {own.label} yet from "
                f"{', '.join(own.responders)}: {own.last_error or 'no fetch has completed'}"
            )
        try:
            evidence.check_time(now, self.cache.freshness, self.cache.skew)
        except OcspError as exc:
            raise OwnStatusUnavailable(
                f"this node's OCSP status for its {own.label} is no longer usable "
                f"({exc.reason.value}: {exc.detail}): the last good response was fetched "
                f"from {own.fetched_from} at {_iso(own.fetched_at)}, the freshness window is "
                f"{self.cache.freshness.total_seconds():g} s, and refreshing it failed: "
                f"{own.last_error or 'no attempt yet'}"
            ) from None
        return evidence

    def describe(self, own: OwnCertificate, now: datetime) -> str:
        """One line for operators (``gateway node check``): responders and state."""
        if own.revoked is not None:
            state = f"REVOKED according to {own.revoked_by} ({own.revoked})"
        else:
            try:
                evidence = self.evidence(own.cert_ref, now)
            except OwnStatusUnavailable as exc:
                state = f"no usable status: {exc}"
            else:
                state = (
                    f"good, thisUpdate {_iso(evidence.this_update)}, nextUpdate "
                    f"{_iso(evidence.next_update)}, fetched from {own.fetched_from}"
                )
        return f"{own.label}: responders {', '.join(own.responders)}; {state}"

    # ------------------------------------------------------------------ fetching

    async def refresh(self, own: OwnCertificate) -> bool:
        """Ask each responder in turn until one gives a verifiable answer.

        Returns ``True`` if a responder answered with a verified status (good, or
        revoked), ``False`` if none did; the previous good status is then kept, and
        stays usable until it leaves the freshness window.
        """
        request = build_ocsp_request(own.cert, own.issuer)
        errors: list[str] = []
        for url in own.responders:
            try:
                der = await self._fetch(url, request)
            except FetchError as exc:
                errors.append(f"{url} {exc}")
                continue
            now = self._clock.now()
            try:
                evidence = self.cache.remember(own.cert_ref, der, own.cert, own.issuer, now)
            except OcspError as exc:
                if exc.reason is OcspFailure.REVOKED:
                    self._revoked(own, url, exc.detail)
                    await self._keep(own.cert_ref, None)
                    return True
                own.refused = exc.reason
                errors.append(f"{url} answered a response this node refuses: {exc}")
                continue
            if own.evidence is None or own.failures or own.revoked is not None:
                log.info(
                    "node %s: good OCSP status for its %s from %s (thisUpdate %s)",
                    self.node,
                    own.label,
                    url,
                    _iso(evidence.this_update),
                )
            kept = own.evidence
            own.evidence, own.fetched_at, own.fetched_from = evidence, now, url
            own.revoked = own.revoked_by = own.last_error = own.refused = None
            own.failures = 0
            if self.persist is not None and (kept is None or kept.ref != evidence.ref):
                await self._keep(own.cert_ref, StoredStatus(own.cert_ref, evidence.der, now, url))
            return True
        own.failures += 1
        own.last_error = "; ".join(errors) or "no responder is listed"
        usable = own.evidence is not None and own.revoked is None
        log.warning(
            "node %s: OCSP refresh for its %s failed (%d in a row): %s; %s",
            self.node,
            own.label,
            own.failures,
            own.last_error,
            f"keeps the response fetched at {_iso(own.fetched_at)} while it is fresh"
            if usable
            else "refuses exchanges that need this certificate until a responder answers",
        )
        return False

    async def _keep(self, ref: str, status: StoredStatus | None) -> None:
        """Persist a good answer (or forget it on revocation); failing to is logged,
        never fatal: the answer is in use already, only a restart during a responder
        outage would miss it."""
        if self.persist is None:
            return
        try:
            await self.persist(ref, status)
        except Exception as exc:
            log.warning(
                "node %s: could not keep its OCSP response for a restart: %s", self.node, exc
            )

    def restore(self, stored: Iterable[StoredStatus], now: datetime) -> None:
        """Take back the responses kept before a restart, before the first fetch.

        Each is checked exactly as a fresh answer would be (signature, certificate, and
        the freshness window at ``now``), so one that went stale while the node was down
        is not used; only certificates that have no status yet take one.
        """
        for status in stored:
            own = self._by_ref.get(status.cert_ref)
            if own is None or own.evidence is not None or own.revoked is not None:
                continue
            try:
                evidence = self.cache.remember(own.cert_ref, status.der, own.cert, own.issuer, now)
            except OcspError as exc:
                log.info(
                    "node %s: the OCSP response kept for its %s (fetched at %s) is not reused: "
                    "%s: %s",
                    self.node,
                    own.label,
                    _iso(status.fetched_at),
                    exc.reason.value,
                    exc.detail,
                )
                continue
            own.evidence, own.fetched_at, own.fetched_from = (
                evidence,
                status.fetched_at,
                status.fetched_from,
            )
            log.info(
                "node %s: reuses the OCSP response for its %s fetched from %s at %s "
                "(thisUpdate %s) until a responder answers again",
                self.node,
                own.label,
                status.fetched_from,
                _iso(status.fetched_at),
                _iso(evidence.this_update),
            )

    def _revoked(self, own: OwnCertificate, url: str, detail: str) -> None:
        if own.revoked is None:
            log.error(
                "node %s: OCSP responder %s reports this node's %s REVOKED (%s); the node "
                "refuses to send and to answer messages that need this certificate",
                self.node,
                url,
                own.label,
                detail,
            )
        own.revoked, own.revoked_by = detail, url
        own.evidence = None
        own.failures = 0
        own.last_error = None

    def retry_delay(self, failures: int) -> float:
        """Seconds before retrying after ``failures`` failed rounds: doubling from
        min(60 s, refresh/10) up to a quarter of the refresh interval, so a responder
        that comes back is used again well before a cached status would go stale."""
        refresh = self.refresh_interval.total_seconds()
        base = min(MAX_RETRY_BASE, refresh / 10)
        cap = max(base, refresh / 4)
        return float(min(cap, base * 2 ** max(0, failures - 1)))

    def next_delay(self, own: OwnCertificate, ok: bool, now: datetime) -> float:
        """Seconds until the next fetch for ``own``.

        After a good answer, the refresh interval, but never more than half of what is
        left of the response's freshness (a responder may hand out pre-produced,
        already aged responses).
        """
        if not ok:
            return self.retry_delay(own.failures)
        delay = self.refresh_interval.total_seconds()
        if own.evidence is not None:
            left = (own.evidence.this_update + self.cache.freshness - now).total_seconds()
            delay = min(delay, max(self.retry_delay(1), left / 2))
        return delay

    async def _keep_fresh(self, own: OwnCertificate, ok: bool) -> None:
        while True:
            await asyncio.sleep(self.next_delay(own, ok, self._clock.now()))
            try:
                ok = await self.refresh(own)
            except Exception:
                # Never let the refresher die: a node without it would silently go stale.
                log.exception("node %s: OCSP refresh for its %s crashed", self.node, own.label)
                own.failures += 1
                ok = False

    async def start(self) -> None:
        """Fetch every status once, then keep refreshing in the background.

        A failed first fetch does not stop the node: it runs on a fresh answer taken
        back by :meth:`restore`, or refuses exchanges (fail closed) until a retry
        succeeds, so it recovers without a restart.
        """
        owns = self.certificates
        results = await asyncio.gather(*(self.refresh(own) for own in owns))
        for own, ok in zip(owns, results, strict=True):
            if not ok and own.evidence is None:
                log.warning(
                    "node %s starts without an OCSP status for its %s; it refuses "
                    "exchanges that need it until a responder answers",
                    self.node,
                    own.label,
                )
            self._tasks[own.cert_ref] = asyncio.create_task(self._keep_fresh(own, ok))
        self._started = True

    async def add(self, own: OwnCertificate) -> bool:
        """Take in a certificate installed at run time: fetch its status once and, if
        the node runs, keep it fresh from then on. Returns what :meth:`refresh` did."""
        self._by_ref[own.cert_ref] = own
        ok = await self.refresh(own)
        if self._started and own.cert_ref not in self._tasks:
            self._tasks[own.cert_ref] = asyncio.create_task(self._keep_fresh(own, ok))
        return ok

    async def retire(self, ref: str) -> None:
        """Stop refreshing a certificate that another replaced. An exchange that took
        it up just before keeps its last status until that leaves the freshness window;
        it is no longer listed in :attr:`certificates`."""
        own = self._by_ref.pop(ref, None)
        if own is not None:
            self._retired[ref] = own
        task = self._tasks.pop(ref, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._started = False
        if self._http is not None:
            await self._http.close()
