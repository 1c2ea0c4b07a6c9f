"""The central authority's state: registry database, TUF repository, and publishing.

``Central`` is what the CLI and the web app share. Every change goes through one of its
methods, which runs in one database transaction, writes an audit entry with the object
before and after, commits, and then republishes the configuration document (serial + 1)
before it returns, so an admin call that succeeded is already visible to nodes. The
commit comes first so nodes never see a version the database could still lose; if the
publication then fails, the change is undone (:mod:`gateway.central.undo`) and the call
fails with ``central.publish_failed``.

Layout of a central directory::

    central.sqlite      registry, settings, audit trail, registration requests; or
    database.url        (0600) the PostgreSQL database that holds them instead
                        (``gateway central init --database-url``, gateway.central.db)
    keys/               TUF private keys (0600, encrypted PKCS#8), named by key id
    development-keys    present when those files are plain: a development set-up
                        (gateway.central.keyfiles)
    online-token.toml   the PKCS#11 token of the online TUF keys instead, if they are
                        there (gateway.central.onlinekeys, docs/adr/0053)
    repo/metadata/      TUF metadata, served at /tuf/metadata/
    repo/targets/       published documents, served at /tuf/targets/
    admin.key           the first system administrator's API key (0600); the database
                        keeps only its SHA-256 (gateway.central.apikeys)
    anchor.json         the anchor for nodes
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from gateway.central import db
from gateway.central.db import DB_NAME
from gateway.central.errors import CentralCode, CentralError
from gateway.central.federation import federated_anchors
from gateway.central.keyfiles import check_key_files, mark_development
from gateway.central.models import (
    ApiKey,
    ApprovedCa,
    ApprovedTsa,
    AuditEntry,
    GlobalGroup,
    GroupMember,
    Member,
    MemberClass,
    Node,
    NodeCert,
    NodeClient,
    RegistrationRequest,
    Setting,
    Subsystem,
)
from gateway.central.onlinekeys import OnlineToken, online_keyring, write_online_token
from gateway.central.repo import DEFAULT_KEEP_VERSIONS, Expiry, KeyStore, TufRepository
from gateway.central.undo import UndoLog
from gateway.conf.anchor import ConfigurationAnchor, save_anchor
from gateway.conf.directory import TrustParameters
from gateway.conf.globalconf import (
    TARGET_NAME,
    CaEntry,
    GlobalConf,
    GlobalConfError,
    MemberEntry,
    NodeEntry,
    TsaEntry,
)
from gateway.core.encoding import format_time
from gateway.core.ids import (
    ClientId,
    GroupId,
    InvalidIdentifierError,
    MemberId,
    NodeId,
    SubsystemId,
    parse_client,
)
from gateway.pki.keys import fingerprint_sha256

__all__ = ["DB_NAME", "Central", "InitOptions"]

TOKEN_NAME = "admin.token"  # noqa: S105 - a file name, not a secret
"""The shared bearer token of centrals made before API keys; adopted as a key on upgrade."""
ANCHOR_NAME = "anchor.json"

DEFAULT_SETTINGS: dict[str, str] = {
    "ocsp_freshness_seconds": "3600",
    "timestamping_interval_seconds": "60",
    "timestamp_expiry_seconds": "600",
    "snapshot_expiry_seconds": "86400",
    "targets_expiry_seconds": "604800",
    "root_expiry_seconds": "31536000",
    "auto_approve_clients": "false",
    "tuf_keep_versions": str(DEFAULT_KEEP_VERSIONS),
}
"""Settings an operator may change through the admin API; ``instance``, ``serial`` and
``public_url`` are kept in the same table but are not editable."""

INT_SETTINGS = frozenset(
    k for k in DEFAULT_SETTINGS if k.endswith("_seconds") or k == "tuf_keep_versions"
)


def pem_text(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode("ascii")


def load_pem(text: str, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise CentralError(CentralCode.INVALID, f"{what} is not a PEM certificate: {exc}") from None


def parse_id(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except (InvalidIdentifierError, ValueError) as exc:
        raise CentralError(CentralCode.INVALID, str(exc)) from None


def write_secret(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only; never replace an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@dataclass(frozen=True)
class InitOptions:
    instance: str
    ca_cert: x509.Certificate
    ocsp_urls: tuple[str, ...]
    public_url: str
    tsa_name: str | None = None
    tsa_url: str | None = None
    tsa_cert: x509.Certificate | None = None
    root_keys: int = 1
    root_threshold: int = 1
    key_scheme: str = "ecdsa"
    root_key_dirs: tuple[Path, ...] = ()
    """One directory per root key holder; empty: the root keys stay in ``keys/``."""
    member_classes: tuple[str, ...] = ("GOV", "COM", "NGO")
    online_token: OnlineToken | None = None
    """The token to generate the online keys in (``online-token.toml``); None: files."""
    key_passphrase: bytes | None = None
    """Encrypts the online key files; without it (and a token) ``development`` must say
    that plain files are meant (gateway.central.keyfiles)."""
    development: bool = False


class Central:
    """One central authority directory, opened by the CLI or the web app."""

    def __init__(
        self,
        directory: Path,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        must_exist: bool = True,
        database_url: str | None = None,
        key_passphrase: bytes | None = None,
    ) -> None:
        self.location = db.database_location(directory, database_url)
        """The registry: the SQLite file, or the PostgreSQL URL (``gateway.central.db``)."""
        if must_exist and not (db.is_postgres(self.location) or Path(self.location).exists()):
            raise CentralError(
                CentralCode.NOT_FOUND, f"{directory} holds no central; run 'gateway central init'"
            )
        self.directory = directory
        self.now = now
        self.key_passphrase = key_passphrase
        """Opens the encrypted online key files (gateway.central.keyfiles)."""
        self.engine: Engine = db.open_engine(self.location)
        if must_exist and db.is_postgres(self.location):
            db.check_revision(self.engine)
        self._lock = threading.RLock()

    @property
    def lock(self) -> threading.RLock:
        """Held by every change and submission in this process: one writer at a time."""
        return self._lock

    @staticmethod
    def serialise(s: Session) -> None:
        """Begin ``s``'s transaction by locking the ``serial`` setting row (``SELECT ...
        FOR UPDATE`` on PostgreSQL; SQLite's one writer needs no more than the process
        lock), so changes of every process sharing the registry take turns: serials
        never repeat, each document is built from everything committed before it, and a
        submission's duplicate check and insert are one step (ADR 0047)."""
        s.exec(select(Setting).where(Setting.key == "serial").with_for_update()).one()

    # --- set-up ----------------------------------------------------------------------------

    @classmethod
    def init(cls, directory: Path, options: InitOptions, database_url: str | None = None) -> Self:
        """Create the database (the SQLite file, or the schema in ``database_url``'s
        PostgreSQL database, recorded in the directory), TUF keys, the first system
        administrator's API key (``admin.key``), the first published document and the
        anchor."""
        root_keys = len(options.root_key_dirs) or options.root_keys
        plain = options.online_token is None and options.key_passphrase is None
        if plain and not options.development:
            raise CentralError(
                CentralCode.INVALID,
                "the online TUF keys need a passphrase (or a token); plain key files "
                "only in a development set-up (--insecure-plain-keys)",
            )
        if not 1 <= options.root_threshold <= root_keys:
            raise CentralError(
                CentralCode.INVALID,
                "the root threshold must be between 1 and the number of root keys",
            )
        directory.mkdir(parents=True, exist_ok=True)
        if (directory / DB_NAME).exists() or (directory / db.URL_FILE).exists():
            raise CentralError(CentralCode.CONFLICT, f"{directory} already holds a central")
        parse_id(MemberId.parse, f"{options.instance}/GOV/x")  # checks the instance code
        location = db.database_location(directory, database_url)
        db.upgrade(location)
        central = cls(
            directory,
            must_exist=False,
            database_url=database_url,
            key_passphrase=options.key_passphrase,
        )
        with Session(central.engine) as s:
            if s.exec(select(Setting).limit(1)).first() is not None:
                raise CentralError(
                    CentralCode.CONFLICT, "the database already holds a central's registry"
                )
        db.record_url(directory, location)
        with Session(central.engine) as s:
            for key, value in {
                **DEFAULT_SETTINGS,
                "instance": options.instance,
                "serial": "0",
                "public_url": options.public_url.rstrip("/"),
            }.items():
                s.add(Setting(key=key, value=value))
            for code in options.member_classes:
                s.add(MemberClass(code=code))
            s.add(
                ApprovedCa(
                    fingerprint=fingerprint_sha256(options.ca_cert),
                    cert_pem=pem_text(options.ca_cert),
                    ocsp_urls=json.dumps(list(options.ocsp_urls)),
                )
            )
            if options.tsa_name and options.tsa_url and options.tsa_cert is not None:
                s.add(
                    ApprovedTsa(
                        name=options.tsa_name,
                        url=options.tsa_url,
                        cert_pem=pem_text(options.tsa_cert),
                    )
                )
            _audit(
                s, central.now(), "init", "init", "central", None, {"instance": options.instance}
            )
            s.commit()
        if options.online_token is not None:
            write_online_token(directory, options.online_token)
        elif options.key_passphrase is None:
            mark_development(directory)
        repo = central.repo()
        repo.initialise(
            options.root_keys, options.root_threshold, options.key_scheme, options.root_key_dirs
        )
        central.republish()
        central.write_anchor(directory / ANCHOR_NAME)
        return central

    def setting(self, key: str) -> str:
        with Session(self.engine) as s:
            return _setting(s, key)

    def int_setting(self, key: str) -> int:
        return int(self.setting(key))

    @property
    def instance(self) -> str:
        return self.setting("instance")

    def repo(self) -> TufRepository:
        """The TUF repository with the expiry and retention the settings hold now."""
        with Session(self.engine) as s:

            def seconds(key: str) -> timedelta:
                return timedelta(seconds=int(_setting(s, key)))

            expiry = Expiry(
                root=seconds("root_expiry_seconds"),
                targets=seconds("targets_expiry_seconds"),
                snapshot=seconds("snapshot_expiry_seconds"),
                timestamp=seconds("timestamp_expiry_seconds"),
            )
            # A directory made before the setting existed keeps the default.
            row = s.get(Setting, "tuf_keep_versions")
            keep = int(row.value) if row is not None else DEFAULT_KEEP_VERSIONS
        check_key_files(self.directory)
        return TufRepository(
            self.directory / "repo",
            KeyStore(self.directory / "keys", online_keyring(self.directory), self.key_passphrase),
            expiry,
            self.now,
            keep_versions=keep,
        )

    def anchor(self, public_url: str | None = None) -> ConfigurationAnchor:
        base = (public_url or self.setting("public_url")).rstrip("/")
        return ConfigurationAnchor(
            instance=self.instance,
            metadata_url=f"{base}/tuf/metadata/",
            targets_url=f"{base}/tuf/targets/",
            root=self.repo().root_json(),
        )

    def write_anchor(self, path: Path, public_url: str | None = None) -> ConfigurationAnchor:
        anchor = self.anchor(public_url)
        save_anchor(path, anchor)
        return anchor

    # --- the document ------------------------------------------------------------------

    def build(self, s: Session, serial: int) -> GlobalConf:
        """The configuration document as the database holds it now."""
        instance = _setting(s, "instance")
        subsystems: dict[str, list[SubsystemId]] = {}
        for sub in s.exec(select(Subsystem)):
            subsystems.setdefault(sub.member_id, []).append(SubsystemId.parse(sub.id))
        members = tuple(
            MemberEntry(MemberId.parse(m.id), m.name, tuple(subsystems.get(m.id, ())))
            for m in s.exec(select(Member))
        )
        nodes = []
        for n in s.exec(select(Node).where(col(Node.enabled))):
            fps = tuple(
                c.fingerprint for c in s.exec(select(NodeCert).where(NodeCert.node_id == n.id))
            )
            clients = tuple(
                parse_client(c.client_id)
                for c in s.exec(select(NodeClient).where(NodeClient.node_id == n.id))
            )
            nodes.append(NodeEntry(NodeId.parse(n.id), n.address, fps, clients))
        groups: dict[GroupId, tuple[ClientId, ...]] = {}
        for g in s.exec(select(GlobalGroup)):
            groups[GroupId.parse(g.id)] = tuple(
                parse_client(m.client_id)
                for m in s.exec(select(GroupMember).where(GroupMember.group_id == g.id))
            )
        cas = tuple(
            CaEntry(load_pem(c.cert_pem, "CA"), tuple(json.loads(c.ocsp_urls)))
            for c in s.exec(select(ApprovedCa))
        )
        tsas = tuple(
            TsaEntry(t.name, t.url, load_pem(t.cert_pem, "TSA"))
            for t in s.exec(select(ApprovedTsa))
        )
        conf = GlobalConf(
            instance=instance,
            serial=serial,
            generated=format_time(self.now(), "seconds"),
            members=members,
            nodes=tuple(nodes),
            groups=groups,
            cas=cas,
            tsas=tsas,
            parameters=TrustParameters(
                int(_setting(s, "ocsp_freshness_seconds")),
                int(_setting(s, "timestamping_interval_seconds")),
            ),
            federated=federated_anchors(self.directory),
        )
        # The node's own parser is the judge of what may be published.
        try:
            return GlobalConf.from_bytes(conf.to_bytes())
        except GlobalConfError as exc:
            raise CentralError(
                CentralCode.INVALID, f"the change would break the configuration: {exc}"
            ) from None

    def current(self) -> GlobalConf:
        """The last published document (from the repository, not the database)."""
        repo = self.repo()
        info = repo.targets().targets[TARGET_NAME]
        digest = info.hashes["sha256"]
        return GlobalConf.from_bytes((repo.targets_dir / f"{digest}.{TARGET_NAME}").read_bytes())

    def republish(self) -> int:
        """Publish the database's state as the next serial; returns the serial."""
        with self._lock, Session(self.engine) as s:
            self.serialise(s)
            undo = UndoLog(s)
            conf = self._next_document(s)
            s.commit()
            self._publish_or_undo(conf, undo, "republish", "configuration")
            return conf.serial

    def _next_document(self, s: Session) -> GlobalConf:
        """Build and check the next serial from ``s`` and record it; the caller commits.

        A change that would produce an invalid document is refused here, before the
        commit, and rolled back with the session.
        """
        serial = int(_setting(s, "serial")) + 1
        s.flush()
        conf = self.build(s, serial)
        row = s.get(Setting, "serial")
        assert row is not None
        row.value = str(serial)
        s.add(row)
        s.flush()
        return conf

    def publish_document(self, conf: GlobalConf) -> None:
        """Sign and write ``conf`` into the TUF repository (a seam for fault tests),
        unless a higher serial is out already (another process sharing the registry
        committed after this one and published first; its document holds this change)."""

        def supersedes(current: bytes) -> bool:
            return GlobalConf.from_bytes(current).serial < conf.serial

        self.repo().publish(TARGET_NAME, conf.to_bytes(), supersedes=supersedes)

    def _publish_or_undo(self, conf: GlobalConf, undo: UndoLog, action: str, obj: str) -> None:
        """Publish a committed document; if that fails, undo the commit and say so.

        The undo and an audit entry naming the failure are one transaction, so the
        database again matches the last configuration nodes can fetch.
        """
        try:
            self.publish_document(conf)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            with Session(self.engine) as s:
                undo.revert(s)
                after = {"serial": conf.serial, "action": action, "error": reason}
                _audit(s, self.now(), "system", "publish.failed", obj, None, after)
                s.commit()
            raise CentralError(
                CentralCode.PUBLISH_FAILED,
                f"serial {conf.serial} could not be published ({reason}); "
                f"the change ({action} {obj}) was undone, nothing changed",
            ) from exc

    def refresh(self) -> None:
        """Re-sign timestamp (and whatever else is due); the scheduler's job."""
        with self._lock:
            self.repo().refresh()

    def refresh_if_due(self, period: timedelta) -> timedelta:
        """Re-sign if the timestamp is expired or ``period`` old; return the time until
        it is due next. Run at start-up before serving, so a central that was stopped
        longer than the timestamp's lifetime never serves an expired one."""
        with self._lock:
            repo = self.repo()
            if repo.timestamp_due_in(period) <= timedelta(0):
                repo.refresh()
            return repo.timestamp_due_in(period)

    @contextmanager
    def change(
        self, actor: str, action: str, obj: str, *, publish: bool = True
    ) -> Iterator[tuple[Session, Callable[[Any, Any], None]]]:
        """One audited, republishing change.

        Yields the session and ``record(before, after)``; the configuration document is
        built from the session's state *before* commit, so a change that would produce an
        invalid document is refused and rolled back.
        """
        with self._lock, Session(self.engine) as s:
            self.serialise(s)
            undo = UndoLog(s)
            recorded: list[tuple[Any, Any]] = []

            def record(before: Any, after: Any) -> None:
                recorded.append((before, after))

            yield s, record
            before, after = recorded[0] if recorded else (None, None)
            _audit(s, self.now(), actor, action, obj, before, after)
            conf = self._next_document(s) if publish else None
            s.commit()
            if conf is not None:
                self._publish_or_undo(conf, undo, action, obj)

    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            rows = s.exec(select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit))
            return [
                {
                    "id": r.id,
                    "at": r.at,
                    "actor": r.actor,
                    "action": r.action,
                    "object": r.object,
                    "before": json.loads(r.before) if r.before else None,
                    "after": json.loads(r.after) if r.after else None,
                }
                for r in rows
            ]


def registry_tables() -> list[Any]:
    """Every table of the registry, as the models declare them (the migrations' source)."""
    return [
        t.__table__  # type: ignore[union-attr]
        for t in (
            MemberClass, Member, Subsystem, Node, NodeCert, NodeClient, GlobalGroup,
            GroupMember, ApprovedCa, ApprovedTsa, Setting, AuditEntry, RegistrationRequest,
            ApiKey,
        )
    ]  # fmt: skip


def _setting(s: Session, key: str) -> str:
    row = s.get(Setting, key)
    if row is None:
        raise CentralError(CentralCode.NOT_FOUND, f"no setting {key!r}")
    return row.value


def _audit(
    s: Session, now: datetime, actor: str, action: str, obj: str, before: Any, after: Any
) -> None:
    s.add(
        AuditEntry(
            at=format_time(now, "seconds"),
            actor=actor,
            action=action,
            object=obj,
            before="" if before is None else json.dumps(before, sort_keys=True),
            after="" if after is None else json.dumps(after, sort_keys=True),
        )
    )
