"""The node's configuration client: signed global configuration through TUF.

A node trusts nothing but its anchor (the instance's TUF root and the repository's URLs).
``tuf.ngclient.Updater`` does every security check (signatures and thresholds, versions
against rollback, expiry against freeze, snapshot consistency against mix-and-match);
this module adds only what TUF leaves to the application:

* where the metadata cache and the last applied document live (``state_dir``);
* parsing the target with :class:`GlobalConf` and building what the node derives from it
  (a ``build`` callback) *before* anything changes, then persisting the document with
  write-temp + fsync + rename, then swapping one reference: an exchange sees either the
  old configuration or the new one, never half of each;
* the time until which the applied configuration is vouched for: the earliest expiry of
  the verified metadata. Past it, with no fresh metadata obtainable, a node must refuse
  every exchange (``*.global_conf_outdated``), as X-Road does with expired global
  configuration;
* starting without the central authority: the cached metadata is re-verified by ngclient
  itself (served to it from disk by :class:`CacheFetcher`) and the persisted document is
  used only if that metadata still names it.

``ConfigClient`` methods block (HTTP, disk); the node calls them via ``asyncio.to_thread``.
Each fetch is bounded as a whole (:class:`DeadlineFetcher`): ngclient's own fetcher
bounds each socket wait only, and one refresh makes several downloads, so a central
authority that answers slowly could otherwise hold a starting node for minutes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import urlsplit

import urllib3
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from gateway.conf.anchor import ConfigurationAnchor
from gateway.conf.globalconf import TARGET_NAME, GlobalConf, GlobalConfError

log = logging.getLogger("gateway.conf.tufclient")

T = TypeVar("T")

_TOP_LEVEL = ("root", "timestamp", "snapshot", "targets")

SIGNED_FILES = (
    "metadata/root.json",
    "metadata/timestamp.json",
    "metadata/snapshot.json",
    "metadata/targets.json",
    "globalconf.json",
)
"""The names of an applied version's signed files (:attr:`Fetched.files`), relative to
the state directory: what an audit bundle carries to prove the version offline."""


class GlobalConfUnavailable(Exception):
    """No verified configuration can be obtained; the message says why (for operators)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """A document TUF verified, and until when its metadata vouches for it."""

    data: bytes
    valid_until: datetime
    targets_version: int
    files: tuple[tuple[str, bytes], ...] = ()
    """The exact TUF metadata that verified ``data``, and ``data`` itself, named as in
    :data:`SIGNED_FILES`: the node records them so the version stays provable later."""


@dataclass(frozen=True, slots=True)
class Current(Generic[T]):
    """The applied configuration and what the node derived from it, swapped as one."""

    conf: GlobalConf
    state: T
    valid_until: datetime
    sha256: str
    files: tuple[tuple[str, bytes], ...] = ()
    """:attr:`Fetched.files` of the applied version."""


def describe(exc: BaseException) -> str:
    """One line naming TUF's verdict, e.g. ``ExpiredMetadataError: timestamp.json is expired``."""
    cause = exc.__cause__ or exc.__context__
    text = str(exc) or (f"{type(cause).__name__}: {cause}" if cause else "no detail")
    return f"{type(exc).__name__}: {text}"


def _connect_failure(exc: urllib3.exceptions.NewConnectionError) -> str:
    """``connection refused`` (the errno's text) rather than urllib3's text, which starts
    with the connection object."""
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return "the host name does not resolve"
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and cause.errno:
        return os.strerror(cause.errno).lower()
    return str(cause) if cause is not None else "the connection failed"


class CacheFetcher(FetcherInterface):
    """Serves ngclient the metadata it cached, so it can re-verify it with no network.

    Used when the central authority cannot be reached at start: ngclient then checks the
    cached chain exactly as it checks a download (signatures, versions, expiry, hashes);
    a newer root is reported as absent (404), which is what "no rotation known" means.
    """

    def __init__(self, metadata_dir: Path) -> None:
        self._dir = metadata_dir

    def _fetch(self, url: str) -> Iterator[bytes]:
        name = Path(urlsplit(url).path).name
        role = name.split(".")[-2] if name.count(".") >= 1 else name
        if role == "root" or role not in _TOP_LEVEL:
            raise tuf_errors.DownloadHTTPError(f"{name} is not cached", 404)
        path = self._dir / f"{role}.json"
        try:
            return iter([path.read_bytes()])
        except OSError as exc:
            raise tuf_errors.DownloadError(f"{path}: {exc}") from None


class DeadlineFetcher(FetcherInterface):
    """Plain HTTP(S) downloads for ngclient, all of one refresh within ``timeout`` seconds.

    Each download gets the time that remains as its connect and read limit; once the
    deadline has passed, the next download (or chunk) fails with TUF's
    ``SlowRetrievalError``, which the caller reports like any unreachable repository.
    """

    def __init__(self, timeout: float, *, chunk_size: int = 400_000) -> None:
        self.timeout = timeout
        self.chunk_size = chunk_size
        self._deadline = time.monotonic() + timeout
        self._pool = urllib3.PoolManager(retries=False)

    def _remaining(self, url: str) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise tuf_errors.SlowRetrievalError(
                f"fetching the global configuration took longer than {self.timeout:g} s (at {url})"
            )
        return remaining

    def _fetch(self, url: str) -> Iterator[bytes]:
        remaining = self._remaining(url)
        try:
            response = self._pool.request(
                "GET",
                url,
                preload_content=False,
                timeout=urllib3.Timeout(connect=remaining, read=remaining),
            )
        except urllib3.exceptions.NewConnectionError as exc:
            # urllib3 derives this from its connect *timeout* error, but a refused or
            # unroutable connection fails at once: say so, not that time ran out.
            raise tuf_errors.DownloadError(
                f"cannot connect to {url}: {_connect_failure(exc)}"
            ) from exc
        except urllib3.exceptions.ConnectTimeoutError as exc:
            raise tuf_errors.SlowRetrievalError(
                f"no connection to {url} within {round(remaining, 1):g} s"
            ) from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise tuf_errors.SlowRetrievalError(
                f"no answer from {url} within {round(remaining, 1):g} s"
            ) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise tuf_errors.DownloadError(f"{url}: {exc}") from exc
        if response.status >= 400:
            response.close()
            raise tuf_errors.DownloadHTTPError(
                f"HTTP status {response.status} for {url}", response.status
            )
        return self._chunks(url, response)

    def _chunks(self, url: str, response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        try:
            for chunk in response.stream(self.chunk_size):
                self._remaining(url)
                yield chunk
        except urllib3.exceptions.TimeoutError as exc:
            raise tuf_errors.SlowRetrievalError(
                f"{url} stopped sending within {self.timeout:g} s"
            ) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise tuf_errors.DownloadError(f"{url}: {exc}") from exc
        finally:
            response.release_conn()


class ConfigClient:
    """TUF client for one node: ``state_dir`` holds the metadata cache and the document.

    Layout: ``metadata/`` (ngclient's trusted metadata), ``targets/`` (ngclient's
    download), ``globalconf.json`` (the applied document), ``anchor.sha256`` (which anchor
    the cache was built from: a different anchor starts from a clean cache, so an old
    root can never outlive the anchor an operator replaced).
    """

    def __init__(
        self,
        anchor: ConfigurationAnchor,
        state_dir: Path,
        *,
        fetcher: FetcherInterface | None = None,
        fetch_timeout: float = 30.0,
    ) -> None:
        self.anchor = anchor
        self.state_dir = state_dir
        self.fetch_timeout = fetch_timeout
        self.metadata_dir = state_dir / "metadata"
        self.targets_dir = state_dir / "targets"
        self.applied_path = state_dir / "globalconf.json"
        self._fetcher = fetcher
        state_dir.mkdir(parents=True, exist_ok=True)
        marker = state_dir / "anchor.sha256"
        fingerprint = anchor.fingerprint()
        if not marker.exists() or marker.read_text("ascii").strip() != fingerprint:
            shutil.rmtree(self.metadata_dir, ignore_errors=True)
            shutil.rmtree(self.targets_dir, ignore_errors=True)
            self.applied_path.unlink(missing_ok=True)
            _atomic_write(marker, fingerprint.encode("ascii") + b"\n")
        self.metadata_dir.mkdir(exist_ok=True)
        self.targets_dir.mkdir(exist_ok=True)

    def _updater(self, fetcher: FetcherInterface | None) -> Updater:
        """A fresh Updater (ngclient refreshes once per instance) on the cached root."""
        cached = (self.metadata_dir / "root.json").exists()
        return Updater(
            str(self.metadata_dir),
            self.anchor.metadata_url,
            str(self.targets_dir),
            self.anchor.targets_url,
            fetcher=fetcher,
            bootstrap=None if cached else self.anchor.root_bytes(),
        )

    def fetch(self) -> Fetched:
        """Refresh from the repository and return the verified current document.

        Raises TUF's exceptions unchanged (``DownloadError`` when the repository cannot
        be reached, ``RepositoryError`` subclasses when what it serves is refused).
        """
        updater = self._updater(self._fetcher or DeadlineFetcher(self.fetch_timeout))
        updater.refresh()
        info = updater.get_targetinfo(TARGET_NAME)
        if info is None:
            raise tuf_errors.RepositoryError(f"the repository publishes no {TARGET_NAME}")
        path = updater.find_cached_target(info) or updater.download_target(info)
        data = Path(path).read_bytes()
        return Fetched(data, self._valid_until(), self._targets_version(), self._files(data))

    def fetch_cached(self) -> Fetched:
        """The persisted document, if the cached metadata (re-verified now) still names it."""
        if not self.applied_path.exists():
            raise GlobalConfUnavailable(f"no configuration was ever applied ({self.applied_path})")
        updater = self._updater(CacheFetcher(self.metadata_dir))
        updater.refresh()
        info = updater.get_targetinfo(TARGET_NAME)
        if info is None or updater.find_cached_target(info, str(self.applied_path)) is None:
            raise GlobalConfUnavailable(
                f"{self.applied_path} is not the configuration the cached metadata names"
            )
        data = self.applied_path.read_bytes()
        return Fetched(data, self._valid_until(), self._targets_version(), self._files(data))

    def _files(self, data: bytes) -> tuple[tuple[str, bytes], ...]:
        """The metadata ngclient just verified, read before anything can replace it."""
        metadata = tuple(
            (f"metadata/{r}.json", (self.metadata_dir / f"{r}.json").read_bytes())
            for r in _TOP_LEVEL
        )
        return (*metadata, ("globalconf.json", data))

    def _valid_until(self) -> datetime:
        """The earliest expiry among the top-level metadata ngclient just verified."""
        return min(
            Metadata.from_bytes((self.metadata_dir / f"{r}.json").read_bytes()).signed.expires
            for r in _TOP_LEVEL
        )

    def _targets_version(self) -> int:
        md = Metadata.from_bytes((self.metadata_dir / "targets.json").read_bytes())
        return md.signed.version

    def persist(self, data: bytes) -> None:
        """Make ``data`` the applied document; a crash leaves the old file or the new one."""
        _atomic_write(self.applied_path, data)


def _atomic_write(path: Path, data: bytes) -> None:
    # One temporary file per process: the workers of one node share its state directory.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself must survive a crash, too
    finally:
        os.close(fd)


_REFUSED = (tuf_errors.RepositoryError, tuf_errors.DownloadError, GlobalConfError, OSError)


class GlobalConfSource(Generic[T]):
    """The node's view of global configuration: bootstrap, refresh, apply, expiry.

    ``build`` turns a parsed document into the node's derived state (directory, verifier,
    TLS trust...); it may raise, and then nothing changes. ``current`` is replaced as a
    whole, after the document is persisted.
    """

    def __init__(
        self,
        client: ConfigClient,
        build: Callable[[GlobalConf], T],
    ) -> None:
        self.client = client
        self._build = build
        self._current: Current[T] | None = None
        self.last_failure: str | None = None
        self.last_success: datetime | None = None

    @property
    def current(self) -> Current[T]:
        if self._current is None:
            raise GlobalConfUnavailable("global configuration has not been loaded")
        return self._current

    def _prepare(self, fetched: Fetched) -> Current[T]:
        """Parse and build completely; raises without side effects if anything is wrong."""
        conf = GlobalConf.from_bytes(fetched.data)
        if conf.instance != self.client.anchor.instance:
            raise GlobalConfError(
                f"the configuration is for instance {conf.instance}, "
                f"the anchor for {self.client.anchor.instance}"
            )
        state = self._build(conf)
        return Current(
            conf,
            state,
            fetched.valid_until,
            hashlib.sha256(fetched.data).hexdigest(),
            fetched.files,
        )

    def bootstrap(self) -> Current[T]:
        """Blocking: from the repository, else from a cache that still verifies; or refuse."""
        try:
            fetched = self.client.fetch()
            current = self._prepare(fetched)
            self.client.persist(fetched.data)
        except _REFUSED as online:
            log.warning("global configuration: repository refused or unreachable: %s", online)
            try:
                current = self._prepare(self.client.fetch_cached())
            except (*_REFUSED, GlobalConfUnavailable) as cached:
                raise GlobalConfUnavailable(
                    "no verified global configuration: from "
                    f"{self.client.anchor.metadata_url}: {describe(online)}; "
                    f"from the cache in {self.client.state_dir}: {describe(cached)}"
                ) from None
            self.last_failure = describe(online)
        self._current = current
        return current

    def refresh_blocking(self, now: datetime) -> Current[T] | None:
        """Fetch and prepare (in a worker thread); returns a new state to install, if any.

        Returns ``None`` when nothing changed or the attempt failed; a failure keeps the
        old configuration and is recorded in ``last_failure`` and the log. A successful
        refresh of an unchanged document still extends ``valid_until``.
        """
        old = self.current
        try:
            fetched = self.client.fetch()
            digest = hashlib.sha256(fetched.data).hexdigest()
            if digest == old.sha256:
                self._current = Current(
                    old.conf, old.state, fetched.valid_until, old.sha256, old.files
                )
                self.last_success, self.last_failure = now, None
                return None
            candidate = self._prepare(fetched)
            self.client.persist(fetched.data)
        except Exception as exc:
            self.last_failure = f"{now.isoformat(timespec='seconds')} {describe(exc)}"
            log.error(
                "global configuration refresh failed, keeping serial %d: %s",
                old.conf.serial,
                describe(exc),
            )
            return None
        self.last_success, self.last_failure = now, None
        return candidate

    def install(self, candidate: Current[T]) -> None:
        """Swap in a prepared configuration (on the event loop: one reference)."""
        old = self._current
        self._current = candidate
        log.warning(
            "global configuration serial %d applied (was %s), valid until %s",
            candidate.conf.serial,
            old.conf.serial if old is not None else "none",
            candidate.valid_until.isoformat(timespec="seconds"),
        )

    def outdated(self, now: datetime) -> str | None:
        """Why exchanges must be refused now, or ``None`` while the configuration is valid."""
        current = self.current
        if now < current.valid_until:
            return None
        reason = (
            f"global configuration serial {current.conf.serial} expired at "
            f"{current.valid_until.isoformat(timespec='seconds')} and no fresh one could be "
            "obtained"
        )
        if self.last_failure:
            reason += f" (last failure: {self.last_failure})"
        return reason

    def status(self, now: datetime) -> dict[str, object]:
        """For ``/health``: what is applied, until when, and the last failure."""
        current = self.current
        return {
            "serial": current.conf.serial,
            "sha256": current.sha256,
            "valid_until": current.valid_until.isoformat(timespec="seconds"),
            "outdated": self.outdated(now) is not None,
            "last_success": self.last_success.isoformat(timespec="seconds")
            if self.last_success
            else None,
            "last_failure": self.last_failure,
        }
