"""``gateway central ...`` and ``gateway join ...``: the subcommands, hooked into gateway.cli.

Kept here so the central's commands live next to its code; ``gateway.cli`` only calls
:func:`add_commands`. Operator decisions (``requests``, ``approve``, ``reject``) and API
key management (``keys create|list|revoke``) go through the running central's admin API
with an API key (``--key-file``, default ``DIR/admin.key``), so a decision is audited
under that key and published by the one process that owns the repository.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.central.cli_tokens import (
    add_holder_token_arguments,
    add_key_passphrase_argument,
    add_online_token_arguments,
    add_root_token_key_command,
    cmd_central_root_token_key,
    key_passphrase_of,
)
from gateway.core.roles import CENTRAL_ROLE_PERMISSIONS
from gateway.net.guard import GuardSettings, add_guard_arguments

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    AddFn = Callable[
        [Subparsers, str, Callable[[argparse.Namespace], None], str], argparse.ArgumentParser
    ]


def _now() -> datetime:
    return datetime.now(UTC)


def cmd_central_init(args: argparse.Namespace) -> None:
    from gateway.central.apikeys import init_central
    from gateway.central.cli_tokens import online_token_from_args
    from gateway.central.keyfiles import init_key_passphrase
    from gateway.central.service import ANCHOR_NAME, InitOptions
    from gateway.keys.files import load_certificate

    tsa_cert = load_certificate(Path(args.tsa_cert)) if args.tsa_cert else None
    options = InitOptions(
        instance=args.instance,
        ca_cert=load_certificate(Path(args.ca_cert)),
        ocsp_urls=tuple(args.ocsp_url or ()),
        public_url=args.url,
        tsa_name=args.tsa_name,
        tsa_url=args.tsa_url,
        tsa_cert=tsa_cert,
        root_keys=args.root_keys,
        root_threshold=args.root_threshold,
        key_scheme=args.key_scheme,
        root_key_dirs=tuple(Path(d) for d in args.root_key_dirs or ()),
        online_token=online_token_from_args(args),
        key_passphrase=init_key_passphrase(args),
        development=args.insecure_plain_keys,
    )
    central = init_central(Path(args.dir), options, args.database_url)
    anchor = central.anchor()
    print(f"created central authority for {args.instance} in {args.dir}")
    print(f"  anchor       {Path(args.dir) / ANCHOR_NAME}")
    print(f"  root sha256  {anchor.fingerprint()}")
    print(f"  admin key    {Path(args.dir) / 'admin.key'} (0600, role system_administrator)")
    for d in args.root_key_dirs or ():
        print(f"  root key     in {d}: hand it to its holder, keep it off this server")


def cmd_central_serve(args: argparse.Namespace) -> None:
    from gateway.central.api import create_app
    from gateway.central.service import Central
    from gateway.net.guard import run_asgi, settings_from_args

    limits = settings_from_args(args)
    app = create_app(
        Central(
            Path(args.dir),
            database_url=args.database_url,
            key_passphrase=key_passphrase_of(Path(args.dir), args),
        ),
        refresh_seconds=args.refresh_seconds,
        max_body_bytes=args.max_body_bytes,
    )
    print(f"central serving http://{args.host}:{args.port} (TUF at /tuf/)", flush=True)
    run_asgi(app, args.host, args.port, limits, name="central")


def cmd_central_db_upgrade(args: argparse.Namespace) -> None:
    """``gateway central db upgrade``: create or upgrade the registry's schema (PostgreSQL,
    which a central never does by itself after init, or an older SQLite directory)."""
    from gateway.central import db

    directory = Path(args.dir)
    location = db.database_location(directory, args.database_url)
    if not db.is_postgres(location) and not Path(location).exists():
        raise SystemExit(f"gateway central db upgrade: {directory} holds no central")
    revision = db.upgrade(location)
    print(f"central registry schema at revision {revision}")


def cmd_central_anchor(args: argparse.Namespace) -> None:
    from gateway.central.service import Central

    anchor = Central(Path(args.dir)).write_anchor(Path(args.out), args.url)
    print(f"wrote {args.out} for {anchor.metadata_url}")
    print(f"  root sha256  {anchor.fingerprint()}")


def cmd_central_rotate_root(args: argparse.Namespace) -> None:
    from gateway.central.service import ANCHOR_NAME, Central
    from gateway.conf.anchor import root_fingerprint

    central = Central(Path(args.dir), key_passphrase=key_passphrase_of(Path(args.dir), args))
    repo = central.repo()
    root = repo.rotate_root(args.add_key, args.remove_key or (), args.threshold, args.key_scheme)
    central.write_anchor(Path(args.dir) / ANCHOR_NAME)
    role = root.roles["root"]
    print(
        f"signed root version {root.version}: {len(role.keyids)} key(s), threshold {role.threshold}"
    )
    for keyid in role.keyids:
        print(f"  key {keyid}")
    print(f"  root sha256  {root_fingerprint(repo.root_json())}")


def cmd_central_root_prepare(args: argparse.Namespace) -> None:
    from gateway.central.rootceremony import prepare_root, write_prepared
    from gateway.central.service import Central
    from gateway.keys.tuftoken import load_public_key_document

    md = prepare_root(
        Central(Path(args.dir)).repo(),
        add_key_dirs=[Path(d) for d in args.add_key_dir or ()],
        add_public_keys=[load_public_key_document(Path(f)) for f in args.add_public_key or ()],
        remove=args.remove_key or (),
        threshold=args.threshold,
        scheme=args.key_scheme,
    )
    write_prepared(md, Path(args.out))
    role = md.signed.roles["root"]
    print(f"wrote root version {md.signed.version} (unsigned) to {args.out}")
    print(f"  {len(role.keyids)} root key(s), threshold {role.threshold}:")
    for keyid in role.keyids:
        print(f"  key {keyid}")
    print("each key holder runs: gateway central root sign --key KEYFILE " + args.out)


def cmd_central_root_sign(args: argparse.Namespace) -> None:
    from gateway.central.cli_tokens import sign_root_with_token
    from gateway.central.rootceremony import load_root_key, sign_root
    from gateway.keys.passphrase import resolve_passphrase

    if (args.key is None) == (args.token is None):
        raise ValueError("give the root key as --key FILE or --token (with --token-module)")
    if args.token is not None:
        keyid, count = sign_root_with_token(args)
        print(f"signed {args.root} with root key {keyid}; it now carries {count} signature(s)")
        return
    key_file = Path(args.key)
    passphrase = None
    if b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes():
        file = Path(args.passphrase_file) if args.passphrase_file else None
        passphrase = resolve_passphrase(
            file, what=f"the root key {key_file}", file_option="--passphrase-file"
        )
    keyid, count = sign_root(Path(args.root), load_root_key(key_file, passphrase))
    print(f"signed {args.root} with root key {keyid}; it now carries {count} signature(s)")


def cmd_central_root_publish(args: argparse.Namespace) -> None:
    from gateway.central.rootceremony import load_prepared, publish_root
    from gateway.central.service import ANCHOR_NAME, Central
    from gateway.conf.anchor import root_fingerprint

    central = Central(Path(args.dir))
    repo = central.repo()
    root = publish_root(repo, load_prepared(Path(args.root)))
    central.write_anchor(Path(args.dir) / ANCHOR_NAME)
    role = root.roles["root"]
    print(
        f"published root version {root.version}: {len(role.keyids)} key(s), "
        f"threshold {role.threshold}"
    )
    print(f"  root sha256  {root_fingerprint(repo.root_json())}")


def cmd_central_federate(args: argparse.Namespace) -> None:
    """Add or remove a federated instance's anchor and publish the next serial at once;
    if publishing fails, the anchor files are put back as they were."""
    from gateway.central.federation import (
        add_anchor,
        anchor_files,
        federated_anchors,
        remove_anchor,
        restore_anchor_files,
    )
    from gateway.central.service import Central

    directory = Path(args.dir)
    central = Central(directory, key_passphrase=key_passphrase_of(directory, args))
    if args.federate_command == "list":
        for anchor in federated_anchors(directory):
            print(f"{anchor.instance}  {anchor.metadata_url}  root sha256 {anchor.fingerprint()}")
        return
    before = anchor_files(directory)
    try:
        if args.federate_command == "add":
            add_anchor(directory, central.instance, Path(args.anchor))
        else:
            remove_anchor(directory, args.instance)
    except ValueError as exc:
        raise SystemExit(f"gateway central federate: {exc}") from None
    try:
        serial = central.republish()
    except Exception:
        restore_anchor_files(directory, before)
        raise
    instances = ", ".join(a.instance for a in federated_anchors(directory)) or "no instance"
    print(f"published serial {serial}: federated with {instances}")


def _admin(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    """One admin API call with the key in ``--key-file``; the central names that key, not
    the caller, in its audit trail."""
    import httpx

    from gateway.central.apikeys import KEY_FILE_NAME
    from gateway.central.service import Central

    directory = Path(args.dir)
    url = args.url or Central(directory).setting("public_url")
    key_file = Path(args.key_file) if args.key_file else directory / KEY_FILE_NAME
    try:
        key = key_file.read_text("utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read the API key file {key_file}: {exc}") from None
    response = httpx.request(
        method,
        url.rstrip("/") + "/admin/v1" + path,
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    data = response.json() if response.content else None
    if response.status_code >= 400:
        raise ValueError(f"{data.get('type')}: {data.get('message')}" if data else response.text)
    return data


DURATION = re.compile(r"(\d+)([dhms])")
UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_expires(text: str, now: datetime) -> datetime:
    """``--expires``: a duration from ``now`` (``90d``, ``12h``, ``30m``, ``45s``) or an
    ISO 8601 time with a zone offset."""
    match = DURATION.fullmatch(text.strip())
    if match:
        return now + timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(
            f"--expires {text!r}: give a duration (90d, 12h, 30m, 45s) or an ISO 8601 time "
            "with a zone offset"
        )
    return moment


def cmd_central_keys_create(args: argparse.Namespace) -> None:
    from gateway.central.service import write_secret

    body: dict[str, Any] = {"name": args.name, "role": args.role}
    if args.expires:
        body["expires"] = parse_expires(args.expires, _now()).isoformat()
    made = _admin(args, "POST", "/api-keys", body)
    secret = made.pop("key")
    if args.out:
        write_secret(Path(args.out), secret.encode("ascii") + b"\n")
        print(f"wrote the key to {args.out} (0600)")
    else:
        print(secret)
    print(json.dumps(made, sort_keys=True))


def cmd_central_keys_list(args: argparse.Namespace) -> None:
    for k in _admin(args, "GET", "/api-keys"):
        print(json.dumps(k, sort_keys=True))


def cmd_central_keys_revoke(args: argparse.Namespace) -> None:
    print(json.dumps(_admin(args, "DELETE", f"/api-keys/{args.id}"), sort_keys=True))


def cmd_central_requests(args: argparse.Namespace) -> None:
    query = f"?status={args.status}" if args.status else ""
    for r in _admin(args, "GET", "/requests" + query):
        print(json.dumps(r, sort_keys=True))


def cmd_central_approve(args: argparse.Namespace) -> None:
    print(json.dumps(_admin(args, "POST", f"/requests/{args.id}/approve"), sort_keys=True))


def cmd_central_reject(args: argparse.Namespace) -> None:
    body = {"reason": args.reason}
    print(json.dumps(_admin(args, "POST", f"/requests/{args.id}/reject", body), sort_keys=True))


def _join_passphrase(args: argparse.Namespace, *, plain_ok: bool = False) -> bytes | None:
    """The passphrase of the join directory's keys (``--passphrase-file``, else
    ``GATEWAY_KEY_PASSPHRASE``, else a prompt); None for plain keys."""
    from gateway.keys.files import is_encrypted_key_file
    from gateway.keys.passphrase import resolve_passphrase

    if getattr(args, "insecure_plain_keys", False):
        return None
    file = Path(args.passphrase_file) if args.passphrase_file else None
    if plain_ok and file is None:
        keys = [Path(args.dir) / "auth.key", Path(args.dir) / "sign.key"]
        if not any(k.exists() and is_encrypted_key_file(k) for k in keys):
            return None
    return resolve_passphrase(file, what=f"the keys in {args.dir}", file_option="--passphrase-file")


def cmd_join_keys(args: argparse.Namespace) -> None:
    from gateway.central.join import make_keys
    from gateway.core.ids import NodeId

    passphrase = _join_passphrase(args)
    auth_csr, sign_csr = make_keys(
        Path(args.dir), NodeId.parse(args.node_id), args.name, passphrase
    )
    how = "plain, development only" if passphrase is None else "encrypted"
    print(f"wrote auth.key, sign.key (0600, {how}) and the CSRs {auth_csr}, {sign_csr}")
    print("send both CSRs to the CA operator, who runs:")
    print(f"  gateway pki issue --ca CA --kind auth --csr {auth_csr} --out auth.pem --ip ...")
    print(f"  gateway pki issue --ca CA --kind sign --csr {sign_csr} --out sign.pem")


def cmd_join_import(args: argparse.Namespace) -> None:
    from gateway.central.join import import_certs

    auth_fp, sign_fp = import_certs(
        Path(args.dir),
        Path(args.auth_cert),
        Path(args.sign_cert),
        _join_passphrase(args, plain_ok=True),
    )
    print(f"imported auth.pem (sha256 {auth_fp}) and sign.pem (sha256 {sign_fp})")


def cmd_join_register(args: argparse.Namespace) -> None:
    from gateway.central.join import register

    passphrase = _join_passphrase(args, plain_ok=True)
    subsystems = args.subsystem or []
    for r in register(Path(args.dir), args.central, args.address, subsystems, _now(), passphrase):
        what = r["client_id"] or r["node_id"]
        print(f"request {r['id']} {r['kind']} {what}: {r['status']}")


def cmd_join_status(args: argparse.Namespace) -> None:
    from gateway.central.join import status

    for r in status(Path(args.dir), args.central):
        reason = f" ({r['reason']})" if r.get("reason") else ""
        what = r.get("client_id") or r.get("node_id")
        print(f"request {r.get('id')} {r.get('kind')} {what}: {r.get('status')}{reason}")


def cmd_central_backup(args: argparse.Namespace) -> None:
    from gateway.backupfile import BackupError
    from gateway.central.backup import backup_central

    try:
        done = backup_central(
            Path(args.dir), Path(args.out), Path(args.recipient), now=datetime.now(UTC)
        )
    except BackupError as exc:
        raise ValueError(str(exc)) from None
    print(f"wrote {args.out}: {done.files} files, {done.bytes} bytes, encrypted and signed")
    print(f"  signer sha256  {done.signer_sha256}   (restore --signer pins it)")


def cmd_central_restore(args: argparse.Namespace) -> None:
    from gateway.backupfile import BackupError
    from gateway.central.backup import restore_central

    try:
        header, files = restore_central(
            Path(args.backup), Path(args.to), Path(args.key), signer_sha256=args.signer
        )
    except BackupError as exc:
        raise ValueError(f"{args.backup}: {exc}") from None
    print(f"restored {files} files of the central backup of {header.get('created')} to {args.to}")


def _key_arguments(p: argparse.ArgumentParser) -> None:
    """The options of a command that calls the running central's admin API."""
    p.add_argument("--dir", required=True)
    p.add_argument("--url", default=None, help="central URL (default: the one given at init)")
    p.add_argument(
        "--key-file", default=None, help="file holding the API key (default: DIR/admin.key)"
    )


def _passphrase_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--passphrase-file",
        default=None,
        help="file (0600) with the keys' passphrase (else GATEWAY_KEY_PASSPHRASE or a prompt)",
    )


_DATABASE_URL_HELP = (
    "keep the registry in this PostgreSQL database (postgresql://...), recorded in "
    "DIR/database.url; default: DIR/central.sqlite"
)


def add_commands(sub: Subparsers, add: AddFn) -> None:
    """Register ``central`` and ``join`` under the top-level ``gateway`` parser."""
    central = sub.add_parser("central", help="run the central authority").add_subparsers(
        dest="central_command", required=True, metavar="CENTRAL_COMMAND"
    )
    p = add(central, "init", cmd_central_init, "create registry, TUF keys, first configuration")
    p.add_argument("--dir", required=True)
    p.add_argument("--instance", required=True)
    p.add_argument("--ca-cert", required=True, help="the first approved CA (PEM)")
    p.add_argument("--ocsp-url", action="append", help="OCSP responder of that CA (repeatable)")
    p.add_argument("--tsa-name", default=None)
    p.add_argument("--tsa-url", default=None)
    p.add_argument("--tsa-cert", default=None)
    p.add_argument("--root-keys", type=int, default=1, help="root keys kept in DIR/keys")
    p.add_argument("--root-threshold", type=int, default=1)
    p.add_argument(
        "--root-key-dirs",
        nargs="+",
        default=None,
        metavar="KEYDIR",
        help="one root key into each directory, for a different holder (offline root keys)",
    )
    p.add_argument("--key-scheme", choices=["ecdsa", "ed25519"], default="ecdsa")
    p.add_argument("--url", default="http://127.0.0.1:8070", help="where nodes reach the central")
    p.add_argument("--database-url", default=None, help=_DATABASE_URL_HELP)
    add_online_token_arguments(p)
    add_key_passphrase_argument(p)
    p.add_argument("--insecure-plain-keys", action="store_true", help="development only")
    p = add(central, "serve", cmd_central_serve, "serve TUF, admin and registration APIs")
    p.add_argument("--dir", required=True)
    p.add_argument(
        "--database-url", default=None, help="the registry's postgresql://... URL (default: init's)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8070)
    p.add_argument("--refresh-seconds", type=float, default=None, help="default: expiry/3")
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=256 * 1024,
        help="largest request body accepted on any endpoint (default 262144); larger: 413",
    )
    add_guard_arguments(p, GuardSettings())
    add_key_passphrase_argument(p)
    db = central.add_parser("db", help="the registry's database schema").add_subparsers(
        dest="central_db_command", required=True, metavar="DB_COMMAND"
    )
    p = add(db, "upgrade", cmd_central_db_upgrade, "create or upgrade the registry's schema")
    p.add_argument("--dir", required=True)
    p.add_argument(
        "--database-url", default=None, help="postgresql://... (default: the one given at init)"
    )
    p = add(central, "anchor", cmd_central_anchor, "write the anchor file for nodes")
    p.add_argument("--dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--url", default=None, help="public URL (default: the one given at init)")
    p = add(central, "rotate-root", cmd_central_rotate_root, "sign a new root version")
    p.add_argument("--dir", required=True)
    add_key_passphrase_argument(p)
    p.add_argument("--add-key", type=int, default=0, help="number of new root keys")
    p.add_argument("--remove-key", action="append", help="key id to remove (repeatable)")
    p.add_argument("--threshold", type=int, default=None)
    p.add_argument("--key-scheme", choices=["ecdsa", "ed25519"], default="ecdsa")
    root = central.add_parser(
        "root", help="sign a new TUF root with root keys held apart (the ceremony)"
    ).add_subparsers(dest="root_command", required=True, metavar="ROOT_COMMAND")
    p = add(root, "prepare", cmd_central_root_prepare, "write the next root version, unsigned")
    p.add_argument("--dir", required=True)
    p.add_argument("--out", required=True, help="the file the key holders sign")
    p.add_argument(
        "--add-key-dir", action="append", help="a new holder's directory (a new root key)"
    )
    p.add_argument("--add-public-key", action="append", help="a holder's token key (.json)")
    p.add_argument("--remove-key", action="append", help="root key id to remove (repeatable)")
    p.add_argument("--threshold", type=int, default=None)
    p.add_argument("--key-scheme", choices=["ecdsa", "ed25519"], default="ecdsa")
    p = add(root, "sign", cmd_central_root_sign, "add one root key's signature (offline)")
    p.add_argument("--key", default=None, help="the holder's root key file")
    p.add_argument("--passphrase-file", default=None, help="passphrase of an encrypted key")
    add_holder_token_arguments(p, required=False)
    p.add_argument("root", help="the root.json that 'root prepare' wrote")
    p = add(root, "token-key", cmd_central_root_token_key, "a new root key in a holder's token")
    add_root_token_key_command(p)
    p = add(root, "publish", cmd_central_root_publish, "publish a root signed to threshold")
    p.add_argument("--dir", required=True)
    p.add_argument("root", help="the signed root.json")

    p = add(central, "backup", cmd_central_backup, "write a signed, encrypted backup")
    p.add_argument("--dir", required=True)
    p.add_argument("--recipient", required=True, help="the backup key's .pub to encrypt to")
    p.add_argument("out", help="the backup file to write (never overwritten)")
    p = add(central, "restore", cmd_central_restore, "restore a backup into a fresh directory")
    p.add_argument("backup")
    p.add_argument("--to", required=True, help="an empty or new directory")
    p.add_argument("--key", required=True, help="the backup key (private)")
    p.add_argument("--signer", default=None, help="refuse unless signed by this key (SHA-256)")
    federate = central.add_parser(
        "federate", help="add, remove, list the instances this one federates with"
    ).add_subparsers(dest="federate_command", required=True, metavar="FEDERATE_COMMAND")
    p = add(federate, "add", cmd_central_federate, "publish another instance's anchor")
    p.add_argument("anchor", help="the anchor file the other instance's operator handed over")
    p.add_argument("--dir", required=True)
    add_key_passphrase_argument(p)
    p = add(federate, "remove", cmd_central_federate, "stop federating with an instance")
    p.add_argument("instance")
    p.add_argument("--dir", required=True)
    add_key_passphrase_argument(p)
    p = add(federate, "list", cmd_central_federate, "the federated instances' anchors")
    p.add_argument("--dir", required=True)
    for name, func, text in (
        ("requests", cmd_central_requests, "list registration requests"),
        ("approve", cmd_central_approve, "approve a registration request"),
        ("reject", cmd_central_reject, "reject a registration request with a reason"),
    ):
        p = add(central, name, func, text + " (via the running central's admin API)")
        _key_arguments(p)
        if name == "requests":
            p.add_argument("--status", choices=["pending", "approved", "rejected"])
        else:
            p.add_argument("id")
        if name == "reject":
            p.add_argument("--reason", required=True)

    keys = central.add_parser(
        "keys", help="create, list, revoke admin API keys (via the running central's admin API)"
    ).add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    p = add(keys, "create", cmd_central_keys_create, "create a key; prints it once")
    _key_arguments(p)
    p.add_argument("--name", required=True, help="shown in the audit trail as key:ID:NAME")
    p.add_argument("--role", required=True, choices=[r.value for r in CENTRAL_ROLE_PERMISSIONS])
    p.add_argument("--expires", default=None, help="90d, 12h, 30m, 45s or an ISO 8601 time")
    p.add_argument("--out", default=None, help="write the key to this new file (0600)")
    p = add(keys, "list", cmd_central_keys_list, "list keys (never their secrets)")
    _key_arguments(p)
    p = add(keys, "revoke", cmd_central_keys_revoke, "revoke a key at once")
    _key_arguments(p)
    p.add_argument("id")

    join = sub.add_parser("join", help="join an instance as a partner city").add_subparsers(
        dest="join_command", required=True, metavar="JOIN_COMMAND"
    )
    p = add(join, "keys", cmd_join_keys, "generate auth and signing keys and their CSRs")
    p.add_argument("--dir", required=True)
    p.add_argument("--node-id", required=True)
    p.add_argument("--name", required=True, help="organisation name")
    _passphrase_argument(p)
    p.add_argument(
        "--insecure-plain-keys",
        action="store_true",
        help="write the keys unencrypted (a development set-up only)",
    )
    p = add(join, "import", cmd_join_import, "import the issued certificates (checked)")
    p.add_argument("--dir", required=True)
    p.add_argument("--auth-cert", required=True)
    p.add_argument("--sign-cert", required=True)
    _passphrase_argument(p)
    p = add(join, "register", cmd_join_register, "send auth-cert and client registrations")
    p.add_argument("--dir", required=True)
    _passphrase_argument(p)
    p.add_argument("--central", required=True, help="the central's URL")
    p.add_argument("--address", required=True, help="this node's https://host:port for peers")
    p.add_argument("--subsystem", action="append", help="subsystem code to register (repeatable)")
    p = add(join, "status", cmd_join_status, "show the central's decision on each request")
    p.add_argument("--dir", required=True)
    p.add_argument("--central", required=True)
