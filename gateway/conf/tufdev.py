"""A minimal TUF repository publisher for tests, the loopback federation and the demo.

The real publisher is the central authority (``gateway central``); this one exists so the
node's configuration client can be tested against genuine TUF metadata without running
it, and so tests can produce what an attacker or a broken central would serve (expired,
rolled back, forged, mixed versions). Same layout as the central authority's contract
(docs/global-configuration.md): consistent snapshots, ``N.root.json``, ``timestamp.json``,
``N.snapshot.json``, ``N.targets.json`` under ``metadata/`` and hash-prefixed targets
under ``targets/``. One in-memory key per role; not for production.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from gateway.conf.anchor import ConfigurationAnchor
from gateway.conf.globalconf import TARGET_NAME

ROLES = ("root", "timestamp", "snapshot", "targets")


class DevRepository:
    """Publishes documents as the target ``globalconf.json`` into ``root_dir``.

    ``metadata_url``/``targets_url`` are where ``serve()`` (or any static HTTP server
    over ``root_dir``) makes the two folders reachable.
    """

    def __init__(self, root_dir: Path, instance: str, *, expiry: timedelta = timedelta(days=1)):
        self.dir = root_dir
        self.instance = instance
        self.expiry = expiry
        self.metadata_dir = root_dir / "metadata"
        self.targets_dir = root_dir / "targets"
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.signers: dict[str, Signer] = {r: CryptoSigner.generate_ecdsa() for r in ROLES}
        expires = self._expires()
        self.root = Metadata(Root(expires=expires, consistent_snapshot=True))
        for role, signer in self.signers.items():
            self.root.signed.add_key(signer.public_key, role)
        self.targets = Metadata(Targets(expires=expires))
        self.snapshot = Metadata(Snapshot(expires=expires))
        self.timestamp = Metadata(Timestamp(expires=expires))
        self._write_root()
        self._server: ThreadingHTTPServer | None = None
        self.base_url = ""

    def _expires(self, delta: timedelta | None = None) -> datetime:
        return (datetime.now(UTC) + (self.expiry if delta is None else delta)).replace(
            microsecond=0
        )

    def _write(self, name: str, md: Metadata[Any], role: str, signer: Signer | None = None) -> None:
        md.signatures.clear()
        md.sign(signer or self.signers[role])
        (self.metadata_dir / name).write_bytes(md.to_bytes(JSONSerializer()))

    def _write_root(self) -> None:
        self._write(f"{self.root.signed.version}.root.json", self.root, "root")

    def anchor(self) -> ConfigurationAnchor:
        """The anchor a node bootstraps from (the current root)."""
        root = json.loads(self.root.to_bytes(JSONSerializer()))
        return ConfigurationAnchor(self.instance, self.metadata_url, self.targets_url, root)

    def publish(
        self,
        document: bytes,
        *,
        expires_in: timedelta | None = None,
        forge: bool = False,
    ) -> None:
        """A new targets, snapshot and timestamp version naming ``document``.

        ``expires_in`` sets all three roles' expiry (to test expiry); ``forge`` signs
        the timestamp with a key the root does not list.
        """
        expires = self._expires(expires_in)
        digest = hashlib.sha256(document).hexdigest()
        (self.targets_dir / f"{digest}.{TARGET_NAME}").write_bytes(document)
        self.targets.signed.targets = {TARGET_NAME: TargetFile.from_data(TARGET_NAME, document)}
        self.targets.signed.version += 1
        self.targets.signed.expires = expires
        self._write(f"{self.targets.signed.version}.targets.json", self.targets, "targets")
        self.snapshot.signed.meta["targets.json"] = MetaFile(self.targets.signed.version)
        self.snapshot.signed.version += 1
        self.snapshot.signed.expires = expires
        self._write(f"{self.snapshot.signed.version}.snapshot.json", self.snapshot, "snapshot")
        self.bump_timestamp(expires_in=expires_in, forge=forge)

    def bump_timestamp(self, *, expires_in: timedelta | None = None, forge: bool = False) -> None:
        """Re-sign the timestamp with a new version (what a live central does often)."""
        ts = self.timestamp.signed
        ts.snapshot_meta = MetaFile(self.snapshot.signed.version)
        ts.version += 1
        ts.expires = self._expires(expires_in)
        signer = CryptoSigner.generate_ecdsa() if forge else None
        self._write("timestamp.json", self.timestamp, "timestamp", signer)

    def snapshot_files(self) -> dict[str, bytes]:
        """The served metadata right now (to replay it later: rollback, freeze)."""
        return {p.name: p.read_bytes() for p in self.metadata_dir.iterdir()}

    def restore(self, files: dict[str, bytes]) -> None:
        """Serve old metadata files again, as an attacker replaying them would."""
        for name, data in files.items():
            (self.metadata_dir / name).write_bytes(data)

    # ------------------------------------------------------------------ serving

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve ``root_dir`` over plain HTTP in a daemon thread; returns the base URL."""
        self._server = serve_directory(self.dir, host, port)
        self.base_url = f"http://{host}:{self._server.server_address[1]}"
        return self.base_url

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/metadata/"

    @property
    def targets_url(self) -> str:
        return f"{self.base_url}/targets/"


def serve_directory(directory: Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Serve ``directory`` as static files over plain HTTP in a daemon thread; the caller
    stops it with ``shutdown()`` and ``server_close()``."""
    server = ThreadingHTTPServer((host, port), partial(_QuietHandler, directory=str(directory)))
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return
