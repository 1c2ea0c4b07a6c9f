"""``gateway node ...``: the security server's subcommands, hooked into gateway.cli.

Kept here so the node's commands live next to its code, as the central's and the
auditor's do (``gateway/central/cli.py``, ``gateway/audit/cli.py``); ``gateway.cli``
only calls :func:`add_commands`. ``serve`` runs a node, ``check`` builds one from its
configuration (every start-up check) and asks the OCSP responders once without serving,
``client-cert`` keeps the store of registered information-system certificates and
``tls-cert`` makes the self-signed certificates of the consumer TLS port, ``token
init-key`` a member signing key on a PKCS#11 token with its CSR.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.net.loop import run as _run
from gateway.pki.profiles import CertificateError

if TYPE_CHECKING:
    from gateway.messagelog import StoredSettings
    from gateway.node.clientauth import ClientCertStore
    from gateway.node.config import NodeConfig

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    AddFn = Callable[
        [Subparsers, str, Callable[[argparse.Namespace], None], str], argparse.ArgumentParser
    ]


def _now() -> datetime:
    return datetime.now(UTC)


def cmd_node_serve(args: argparse.Namespace) -> None:
    from gateway.node.config import load_config
    from gateway.node.server import Endpoints
    from gateway.node.workers import parse_fds, run_node, supervise

    config = load_config(Path(args.config))
    if args.workers != 1:
        raise SystemExit(supervise(Path(args.config), config, args.workers))
    sockets = parse_fds(args.listen_fds) if args.listen_fds else None

    def ready(endpoints: Endpoints) -> None:
        print(
            f"node {config.node.id} ready: consumer {endpoints.consumer_url}, "
            f"consumer TLS {endpoints.consumer_tls_url or '-'}, peers {endpoints.peer_url}, "
            f"metrics {endpoints.metrics_url or '-'}",
            flush=True,
        )

    _run(run_node(config, ready=ready, sockets=sockets))


def cmd_node_check(args: argparse.Namespace) -> None:
    from gateway.node.config import load_config
    from gateway.node.server import Node

    config = load_config(Path(args.config))
    if config.globalconf is not None:
        # Printed before anything is fetched: compare it out of band with the value the
        # central authority's operator reads out (gateway central anchor).
        anchor = config.load_anchor()
        print(f"anchor {config.globalconf.anchor}: instance {anchor.instance}")
        print(f"anchor root fingerprint (SHA-256): {anchor.fingerprint()}")
    node = Node(config)
    print(f"{args.config}: valid for node {config.node.id}")
    if node.globalconf is not None:
        current = node.globalconf.current
        print(
            f"global configuration: serial {current.conf.serial}, valid until "
            f"{current.valid_until.isoformat(timespec='seconds')}"
        )
    own = node.own_ocsp
    own.persist = None  # a check probes the responders; it keeps nothing for a restart
    print(
        f"OCSP: freshness window {own.cache.freshness.total_seconds():g} s (global configuration), "
        f"refresh every {own.refresh_interval.total_seconds():g} s (node)"
    )

    async def probe() -> None:
        # One fetch per certificate, as the node does at start; nothing is served.
        try:
            for certificate in own.certificates:
                await own.refresh(certificate)
        finally:
            await own.stop()

    _run(probe())
    now = _now()
    for certificate in own.certificates:
        print(f"OCSP: {own.describe(certificate, now)}")
    revoked = [c.label for c in own.certificates if c.revoked is not None]
    if revoked:
        raise CertificateError(f"revoked: {'; '.join(revoked)}; the node would refuse to work")


def _client_cert_store(args: argparse.Namespace) -> ClientCertStore:
    from gateway.node.clientauth import ClientCertStore
    from gateway.node.config import load_config

    return ClientCertStore(load_config(Path(args.config)).node.client_certs)


def cmd_node_client_cert_add(args: argparse.Namespace) -> None:
    from gateway.core.ids import parse_client
    from gateway.keys.files import load_certificate

    client = parse_client(args.client)
    entry = _client_cert_store(args).add(client, load_certificate(Path(args.cert)))
    print(
        f"registered {entry.sha256} ({entry.subject}, valid until {entry.not_after}) for {client}"
    )


def cmd_node_client_cert_remove(args: argparse.Namespace) -> None:
    from gateway.core.ids import parse_client

    client = parse_client(args.client)
    entry = _client_cert_store(args).remove(client, args.sha256)
    print(f"removed {entry.sha256} ({entry.subject}) from {client}")


def cmd_node_client_cert_list(args: argparse.Namespace) -> None:
    from gateway.core.ids import parse_client

    client = parse_client(args.client) if args.client else None
    for entry in _client_cert_store(args).entries(client):
        print(
            json.dumps(
                {
                    "client": entry.client,
                    "sha256": entry.sha256,
                    "subject": entry.subject,
                    "not_after": entry.not_after.isoformat(),
                }
            )
        )


def cmd_node_internal_cert(args: argparse.Namespace) -> None:
    from gateway.keys.cli import new_key_passphrase
    from gateway.keys.files import new_self_signed
    from gateway.pki.keys import fingerprint_sha256

    # The node's own key is encrypted like its other keys; an information system's key
    # is the client's, handed over to it, and stays plain unless a passphrase is given.
    plain = args.client and args.passphrase_file is None
    passphrase = None if plain else new_key_passphrase(args, f"the new key {args.key}")
    cert = new_self_signed(
        Path(args.cert),
        Path(args.key),
        args.name,
        _now(),
        days=args.days,
        hosts=args.host,
        server=not args.client,
        client=args.client,
        passphrase=passphrase,
    )
    print(f"wrote {args.cert} and {args.key}; SHA-256 {fingerprint_sha256(cert)}")


def cmd_node_opdata(args: argparse.Namespace) -> None:
    """The node's operational monitoring records as JSON lines, read from its database
    (read-only, so it works while the node runs and while it is stopped)."""
    from gateway.messagelog import open_store
    from gateway.node.config import load_config
    from gateway.node.monitoring import query_bound

    config = load_config(Path(args.config))
    since = None if args.since is None else query_bound("--since", args.since)
    until = None if args.until is None else query_bound("--until", args.until)
    store = open_store(config.node.log_location)
    for record in store.operational_records(since=since, until=until, client=args.client):
        print(json.dumps(dataclasses.asdict(record)))


def cmd_node_status(args: argparse.Namespace) -> None:
    """One screen from the running node's admin listener: diagnostics and the last
    minutes' traffic."""
    import httpx

    from gateway.core.encoding import format_time
    from gateway.node.admincli import admin_url, read_key
    from gateway.node.config import load_config
    from gateway.node.status import render

    config = load_config(Path(args.config))
    base = admin_url(config)
    now = _now()
    since = format_time(now - timedelta(minutes=args.minutes))
    try:
        metrics = httpx.get(f"{base}/metrics", timeout=10)
        # The records need an API key (the node's admin.key, --key-file or the environment).
        auth = {"Authorization": f"Bearer {read_key(args.key_file, config)}"}
        records = httpx.get(
            f"{base}/api/v1/operational", params={"since": since}, headers=auth, timeout=30
        )
    except httpx.HTTPError as exc:
        raise ValueError(f"node {config.node.id} does not answer on {base}: {exc}") from None
    for response in (metrics, records):
        if response.status_code != 200:
            raise ValueError(f"{response.url} answered {response.status_code}: {response.text}")
    for line in render(
        config.node.id, metrics.text, records.json()["records"], now=now, minutes=args.minutes
    ):
        print(line)


def cmd_node_settings_export(args: argparse.Namespace) -> None:
    """The settings in force as TOML on stdout: the log's newest version (read-only,
    so it works while the node runs), or ``node.toml``'s before the first start."""
    import sys

    from gateway.node.config import load_config
    from gateway.node.settings.model import NodeSettings

    config = load_config(Path(args.config))
    stored = _stored_settings(config)
    if stored is None:
        print(f"# the log holds no settings yet: {args.config}'s, the bootstrap", file=sys.stderr)
        settings = NodeSettings.from_config(config)
    else:
        settings = NodeSettings.from_document(stored.document)
        print(f"# settings version {stored.version}, changed {stored.changed_at}", file=sys.stderr)
    sys.stdout.write(settings.to_toml())


def cmd_node_settings_diff(args: argparse.Namespace) -> None:
    """What the settings sections of ``node.toml`` (or ``--file``) say differently from
    the settings in force; exit status 1 if anything differs."""
    import sys

    from gateway.node.config import load_config
    from gateway.node.settings.model import NodeSettings
    from gateway.node.settings.source import changed_parts, describe_changes

    config = load_config(Path(args.config))
    stored = _stored_settings(config)
    if stored is None:
        print("the log holds no settings yet: node.toml's are the bootstrap")
        return
    in_force = NodeSettings.from_document(stored.document)
    other = (
        NodeSettings.read_toml(Path(args.file)) if args.file else NodeSettings.from_config(config)
    )
    lines = describe_changes(*changed_parts(in_force, other))
    name = args.file or args.config
    if not lines:
        print(f"{name} has the settings in force (version {stored.version})")
        return
    print(f"- settings version {stored.version} in force, + {name}")
    for line in lines:
        print(line)
    sys.exit(1)


def cmd_node_settings_import(args: argparse.Namespace) -> None:
    """Replace the settings in force with a file's, validated, as one recorded change.

    The node must be stopped: its log has one writer, the running node, which takes a
    change through its management API instead. The change is in force at the next
    start."""
    import getpass

    from gateway.core.roles import ApiRole
    from gateway.node.config import load_config
    from gateway.node.server import Node
    from gateway.node.settings.model import NodeSettings
    from gateway.node.settings.source import describe_changes

    config = load_config(Path(args.config))
    imported = NodeSettings.read_toml(Path(args.file))
    _refuse_if_running(config.node.peer_listen, str(config.node.id))
    node = Node(config)

    async def apply() -> None:
        node.log.start()
        try:
            result = await node.settings.change(
                actor=f"cli:{getpass.getuser()}",
                role=ApiRole.SYSTEM_ADMINISTRATOR,
                action="settings.import",
                target=str(Path(args.file).resolve()),
                mutate=lambda _: imported,
            )
        finally:
            await node.log.close()
        if result.entry_id is None:
            print(f"{args.file}: the settings in force already (version {result.version})")
            return
        for line in describe_changes(result.before, result.after):
            print(line)
        print(f"settings version {result.version} recorded (log entry {result.entry_id})")

    _run(apply())


def _stored_settings(config: NodeConfig) -> StoredSettings | None:
    """The log's newest settings version, read-only (works while the node runs)."""
    from gateway.messagelog import open_store

    location = config.node.log_location
    if isinstance(location, Path) and not location.exists():
        return None
    return open_store(location).latest_settings()


def _refuse_if_running(peer_listen: str, node_id: str) -> None:
    """Refuse while something answers on the node's peer port: two writers of one log
    would fork its Merkle tree."""
    import socket

    host, _, port = peer_listen.rpartition(":")
    if host in ("0.0.0.0", "::", "[::]"):  # noqa: S104 (the wildcard a node binds: ask loopback)
        host = "127.0.0.1"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
            pass
    except OSError:
        return
    raise ValueError(
        f"node {node_id} is running (its peer port {peer_listen} answers): stop it before "
        "importing, or change its settings through its management API"
    )


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    """``gateway db upgrade``: create or upgrade the message log's schema, on PostgreSQL
    (which a node never does by itself) or on a SQLite file."""
    from gateway.messagelog import upgrade_schema
    from gateway.node.config import load_config

    location: Path | str
    if args.database_url is not None:
        location = args.database_url
    elif args.config is not None:
        location = load_config(Path(args.config)).node.log_location
    else:
        raise SystemExit("gateway db upgrade: give --database-url URL or a node.toml")
    if isinstance(location, str) and location.startswith("sqlite:///"):
        location = Path(location.removeprefix("sqlite:///"))
    revision = upgrade_schema(location)
    print(f"message log schema at revision {revision}")


def cmd_node_token_init_key(args: argparse.Namespace) -> None:
    """A member signing key generated on a PKCS#11 token, and its CSR signed by the token
    (docs/deployment.md, "Signing keys in a token")."""
    from gateway.core.ids import MemberId
    from gateway.keys.pkcs11 import TokenKeyRef, new_token_key_and_csr, read_pin

    member = MemberId.parse(args.member)
    ref = TokenKeyRef(
        module=Path(args.module),
        token=args.token,
        key_label=args.key_label,
        pin_file=Path(args.pin_file) if args.pin_file else None,
        pin_env=args.pin_env,
    )
    new_token_key_and_csr(ref, read_pin(ref), member, Path(args.csr), args.org)
    print(
        f"generated {ref.describe()} for {member}; wrote its signing CSR {args.csr} "
        "(signed by the token)"
    )


def cmd_node_backup_key(args: argparse.Namespace) -> None:
    from gateway.backupfile import spki_sha256
    from gateway.keys.backupkeys import generate_backup_key

    out = Path(args.out)
    public = generate_backup_key(out, out.with_suffix(".pub"))
    print(f"wrote {out} (0600: keep it off the machines it backs up) and {out.with_suffix('.pub')}")
    print(f"  sha256  {spki_sha256(public)}")


def cmd_node_backup(args: argparse.Namespace) -> None:
    from gateway.backupfile import BackupError
    from gateway.node.backup import backup_node

    try:
        done = backup_node(Path(args.config), Path(args.out), Path(args.recipient), now=_now())
    except BackupError as exc:
        raise ValueError(str(exc)) from None
    print(f"wrote {args.out}: {done.files} files, {done.bytes} bytes, encrypted and signed")
    print(f"  signer sha256  {done.signer_sha256}   (restore --signer pins it)")
    for item in done.left_out:
        print(f"  NOT in the backup: {item}")


def cmd_node_restore(args: argparse.Namespace) -> None:
    from gateway.backupfile import BackupError
    from gateway.node.backup import restore_node

    try:
        header, files = restore_node(
            Path(args.backup), Path(args.to), Path(args.key), signer_sha256=args.signer
        )
    except BackupError as exc:
        raise ValueError(f"{args.backup}: {exc}") from None
    print(f"restored {files} files of {header.get('of')}'s backup of {header.get('created')}")
    print(f"  start it with: gateway node serve --config {Path(args.to) / str(header['config'])}")
    left_out = header.get("left_out")
    for item in left_out if isinstance(left_out, list) else []:
        print(f"  NOT in the backup: {item}")


def _backup_commands(node: Subparsers, add: AddFn) -> None:
    p = add(node, "backup-key", cmd_node_backup_key, "make the key pair backups are encrypted to")
    p.add_argument("--out", required=True, help="the private key file; the .pub goes beside it")
    p = add(node, "backup", cmd_node_backup, "write a signed, encrypted backup of the node")
    p.add_argument("--config", required=True)
    p.add_argument("--recipient", required=True, help="the backup key's .pub to encrypt to")
    p.add_argument("out", help="the backup file to write (never overwritten)")
    p = add(node, "restore", cmd_node_restore, "restore a node backup into a fresh directory")
    p.add_argument("backup")
    p.add_argument("--to", required=True, help="an empty or new directory")
    p.add_argument("--key", required=True, help="the backup key (private)")
    p.add_argument("--signer", default=None, help="refuse unless signed by this key (SHA-256)")


def add_commands(sub: Subparsers, add: AddFn) -> None:
    from gateway.node.cli_datakey import add_data_key_command

    """Register ``node`` and its subcommands, and ``db``, under the top-level parser."""
    from gateway.keys.cli import add_new_key_arguments

    db = sub.add_parser("db", help="the message log's database schema").add_subparsers(
        dest="db_command", required=True, metavar="DB_COMMAND"
    )
    p = add(
        db,
        "upgrade",
        cmd_db_upgrade,
        "create or upgrade the message log's schema (PostgreSQL or a SQLite file)",
    )
    p.add_argument("config", nargs="?", default=None, help="a node.toml: its log")
    p.add_argument(
        "--database-url",
        default=None,
        help="postgresql://... or sqlite:///PATH (instead of a node.toml)",
    )
    node = sub.add_parser("node", help="run a security server").add_subparsers(
        dest="node_command", required=True, metavar="NODE_COMMAND"
    )
    p = add(node, "serve", cmd_node_serve, "run a node from its configuration file")
    p.add_argument("--config", required=True)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the node's ports (PostgreSQL log only; default 1)",
    )
    p.add_argument("--listen-fds", default=None, help=argparse.SUPPRESS)
    _backup_commands(node, add)
    p = add(node, "check", cmd_node_check, "validate a node configuration, keys and certificates")
    p.add_argument("--config", required=True)
    p = add(
        node,
        "opdata",
        cmd_node_opdata,
        "print the node's operational monitoring records (JSON lines, oldest first)",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--since", default=None, help="from this RFC 3339 time (inclusive)")
    p.add_argument("--until", default=None, help="to this RFC 3339 time (exclusive)")
    p.add_argument("--client", default=None, help="only this client subsystem's records")
    p = add(
        node,
        "status",
        cmd_node_status,
        "one screen of a running node: diagnostics and the last minutes' traffic",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--minutes", type=float, default=15, help="traffic window (default 15)")
    p.add_argument("--key-file", default=None, help="API key file (default: admin.key)")
    from gateway.node.admincli import add_admin_commands, add_key_commands
    from gateway.node.admincli_changes import add_change_commands

    add_key_commands(node, add)
    add_change_commands(add_admin_commands(node, add), add)
    settings = node.add_parser(
        "settings", help="the node's clients, services, access rights and local groups"
    ).add_subparsers(dest="settings_command", required=True, metavar="SETTINGS_COMMAND")
    p = add(settings, "export", cmd_node_settings_export, "print the settings in force as TOML")
    p.add_argument("--config", required=True)
    p = add(
        settings,
        "diff",
        cmd_node_settings_diff,
        "show how node.toml's (or --file's) settings differ from those in force",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--file", default=None, help="a settings TOML file instead of node.toml")
    p = add(
        settings,
        "import",
        cmd_node_settings_import,
        "replace the settings with a TOML file's, as one recorded change (node stopped)",
    )
    p.add_argument("--config", required=True)
    p.add_argument("file", help="settings TOML (an export, or a node.toml)")
    certs = node.add_parser(
        "client-cert", help="information-system certificates registered per subsystem"
    ).add_subparsers(dest="client_cert_command", required=True, metavar="CLIENT_CERT_COMMAND")
    p = add(certs, "add", cmd_node_client_cert_add, "register a certificate for a subsystem")
    p.add_argument("--config", required=True)
    p.add_argument("client", help="the subsystem, INSTANCE/CLASS/MEMBER/SUBSYSTEM")
    p.add_argument("cert", help="the information system's certificate (PEM)")
    p = add(certs, "remove", cmd_node_client_cert_remove, "unregister a certificate")
    p.add_argument("--config", required=True)
    p.add_argument("client")
    p.add_argument("sha256", help="the certificate's SHA-256 fingerprint (hex), as listed")
    p = add(certs, "list", cmd_node_client_cert_list, "list registered certificates (JSON lines)")
    p.add_argument("--config", required=True)
    p.add_argument("client", nargs="?", default=None)
    p = add(
        node,
        "tls-cert",
        cmd_node_internal_cert,
        "make a self-signed TLS certificate: the node's internal one for its consumer TLS "
        "port, or (--client) one for an information system",
    )
    p.add_argument("--cert", required=True, help="certificate file to write (PEM)")
    p.add_argument("--key", required=True, help="private key file to create (PEM, 0600)")
    p.add_argument("--name", required=True, help="subject CN")
    p.add_argument("--host", action="append", default=[], help="a DNS name or IP; repeatable")
    p.add_argument("--days", type=int, default=825)
    p.add_argument("--client", action="store_true", help="an information system's certificate")
    add_new_key_arguments(p)
    add_data_key_command(node, add)
    token = node.add_parser("token", help="member signing keys in a PKCS#11 token").add_subparsers(
        dest="token_command", required=True, metavar="TOKEN_COMMAND"
    )
    p = add(
        token,
        "init-key",
        cmd_node_token_init_key,
        "generate a member signing key on a PKCS#11 token and write its CSR, signed by the token",
    )
    p.add_argument("--module", required=True, help="the PKCS#11 library (.so)")
    p.add_argument("--token", required=True, help="the token's label")
    p.add_argument("--key-label", required=True, help="the new key's label (must be unused)")
    p.add_argument("--member", required=True, help="the member id, INSTANCE/CLASS/CODE")
    p.add_argument("--csr", required=True, help="CSR output (PEM)")
    p.add_argument("--org", default=None, help="organisation name for the subject")
    pin = p.add_mutually_exclusive_group()
    pin.add_argument("--pin-file", default=None, help="a file holding the PIN")
    pin.add_argument("--pin-env", default=None, help="an environment variable holding the PIN")
