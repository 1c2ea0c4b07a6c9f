"""``gateway audit export|verify|anchor`` (``gateway audit bench``, a measurement on a
synthetic log, is the sandbox's and registered by :mod:`gateway.cli`).

Exit status of ``verify``: 0 when every piece verified, 1 when one did not (the first
bad piece and the reason code are printed), 2 when the bundle or anchor cannot be read
at all (as for every ``gateway`` error).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    from gateway.core.atrest import DataKey
    from gateway.messagelog import LogStore

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    AddFn = Callable[
        [Subparsers, str, Callable[[argparse.Namespace], None], str], argparse.ArgumentParser
    ]


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r}: give a time zone, e.g. 2025-06-01T08:00:00Z")
    return moment


def _globalconf(args: argparse.Namespace) -> Path | None:
    """``--globalconf``, else the node's default state directory next to its log."""
    if args.globalconf == "":
        return None
    if args.globalconf is not None:
        return Path(args.globalconf)
    from gateway.messagelog import is_database_url

    if is_database_url(args.db):
        return None
    default = Path(args.db).parent / "globalconf"
    return default if (default / "globalconf.json").is_file() else None


def data_key_of(args: argparse.Namespace) -> DataKey | None:
    """``--data-key`` unwrapped with ``--data-key-passphrase-file`` (else the environment
    variable ``GATEWAY_DATA_KEY_PASSPHRASE``); None without ``--data-key``."""
    from gateway.keys.datakey import DataKeyError, load_data_key, read_passphrase

    if args.data_key is None:
        return None
    from gateway.keys.datakey_token import load_token_data_key, token_of_file

    in_token = token_of_file(Path(args.data_key))
    if in_token is not None:
        from gateway.keys.pkcs11 import TokenKeyRef, read_pin

        if args.data_key_token_module is None:
            raise ValueError(
                f"{args.data_key} is kept by key {in_token[1]!r} in token {in_token[0]!r}: "
                "give --data-key-token-module (and --data-key-pin-file)"
            )
        pin_file = args.data_key_pin_file and Path(args.data_key_pin_file)
        ref = TokenKeyRef(Path(args.data_key_token_module), *in_token, pin_file=pin_file)
        try:
            return load_token_data_key(Path(args.data_key), ref, read_pin(ref))
        except DataKeyError as exc:
            raise ValueError(str(exc)) from None
    passphrase_file = args.data_key_passphrase_file
    try:
        return load_data_key(
            Path(args.data_key), read_passphrase(passphrase_file and Path(passphrase_file))
        )
    except DataKeyError as exc:
        raise ValueError(str(exc)) from None


def log_store(args: argparse.Namespace) -> LogStore:
    """The log ``--db`` names, its sealed rows opened with ``--data-key`` if given."""
    from gateway.messagelog import log_source, open_store

    return open_store(log_source(args.db), data_key_of(args))


def add_data_key_arguments(p: argparse.ArgumentParser) -> None:
    """``--data-key`` and its passphrase file, for every command that reads a log's
    exchanges (docs/message-log.md#at-rest)."""
    p.add_argument(
        "--data-key", default=None, help="the node's data key file, to read a sealed log"
    )
    p.add_argument(
        "--data-key-passphrase-file",
        default=None,
        help="its passphrase (first line; default: $GATEWAY_DATA_KEY_PASSPHRASE)",
    )
    p.add_argument(
        "--data-key-token-module",
        default=None,
        help="for a data key kept by a PKCS#11 token: the token's library (.so)",
    )
    p.add_argument("--data-key-pin-file", default=None, help="that token's PIN (else a prompt)")


def _recipients(args: argparse.Namespace) -> list[X25519PublicKey]:
    from gateway.keys.recipients import RecipientKeyError, load_recipient_public_key

    try:
        return [load_recipient_public_key(Path(p)) for p in args.encrypt_to or ()]
    except RecipientKeyError as exc:
        raise ValueError(str(exc)) from None


def _decrypt_key(args: argparse.Namespace) -> X25519PrivateKey | None:
    from gateway.keys.recipients import RecipientKeyError, load_recipient_key

    if args.decrypt_key is None:
        return None
    passphrase = os.environ.get("GATEWAY_DECRYPT_KEY_PASSPHRASE", "").encode() or None
    try:
        return load_recipient_key(Path(args.decrypt_key), passphrase)
    except RecipientKeyError as exc:
        raise ValueError(str(exc)) from None


def cmd_audit_recipient_key(args: argparse.Namespace) -> None:
    from gateway.keys.recipients import RecipientKeyError, write_recipient_key

    passphrase = os.environ.get("GATEWAY_DECRYPT_KEY_PASSPHRASE", "").encode() or None
    private, public = Path(args.out + ".key"), Path(args.out + ".pub")
    try:
        write_recipient_key(private, public, passphrase)
    except RecipientKeyError as exc:
        raise ValueError(str(exc)) from None
    print(f"wrote {private} (keep it; it opens the bundles) and {public} (give it to the node)")


def cmd_audit_export(args: argparse.Namespace) -> None:
    from gateway.audit.export import ExportError, Selection, export_bundle
    from gateway.keys.files import load_certificate

    chosen = sum(bool(x) for x in (args.message_id, args.all, args.since or args.until))
    if chosen != 1:
        raise ValueError("select entries with exactly one of --message-id, --from/--to, --all")
    selection = Selection(
        message_id=args.message_id,
        since=_time(args.since) if args.since else None,
        until=_time(args.until) if args.until else None,
        all=args.all,
    )
    try:
        result = export_bundle(
            log_store(args),
            Path(args.out),
            selection,
            now=datetime.now(UTC),
            extra_tsa=load_certificate(Path(args.tsa_cert)) if args.tsa_cert else None,
            extra_ca=load_certificate(Path(args.ca)) if args.ca else None,
            bodies=not args.no_bodies,
            globalconf=_globalconf(args),
            recipients=_recipients(args),
        )
    except ExportError as exc:
        print(f"gateway: cannot export: {exc}", file=sys.stderr)
        sys.exit(1)
    print(
        f"wrote {args.out}: {result.entries} entries, {result.tree_heads} tree heads, "
        f"{result.bytes} bytes"
    )
    if result.pending:
        print(f"left out {result.pending} selected entries not yet covered by a tree head")
    if result.archived:
        print(f"left out {result.archived} archived entries (their archive bundle holds them)")


def cmd_audit_verify(args: argparse.Namespace) -> None:
    from gateway.audit.anchor import load_anchor
    from gateway.audit.bundle import BundleFormatError
    from gateway.audit.parallel import default_jobs, verify_file
    from gateway.audit.report import failure_line, report_lines
    from gateway.audit.verify import AuditError

    anchor = load_anchor(Path(args.anchor))
    started = time.perf_counter()
    jobs = default_jobs() if args.jobs is None else args.jobs
    try:
        report = verify_file(Path(args.bundle), anchor, jobs=jobs, decrypt_key=_decrypt_key(args))
    except (BundleFormatError, AuditError) as exc:
        print(failure_line(exc).text, file=sys.stderr)
        sys.exit(1)
    for line in report_lines(report, time.perf_counter() - started):
        print(line)


def cmd_audit_anchor(args: argparse.Namespace) -> None:
    from datetime import timedelta

    from gateway.audit.anchor import anchor_json
    from gateway.keys.files import load_certificates

    cas = [c for path in args.ca for c in load_certificates(Path(path))]
    tsas = [c for path in args.tsa_cert for c in load_certificates(Path(path))]
    data = anchor_json(cas, tsas, timedelta(seconds=args.ocsp_freshness_seconds))
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out}: {len(cas)} CA and {len(tsas)} TSA certificates")


def cmd_log_witness(args: argparse.Namespace) -> None:
    """What witnessing recorded: split views and refused heads first, then co-signatures.

    Exits 1 when any alert is recorded, so a monitoring script can run it as a check.
    """
    from gateway.core.treehead import parse_sth
    from gateway.messagelog import (
        log_source,
        read_cosignatures,
        read_witness_alerts,
        signed_heads,
    )

    db = log_source(args.db)
    alerts = read_witness_alerts(db)
    for alert in alerts:
        print(f"ALERT {alert.detected_at} {alert.peer}: {alert.code}: {alert.detail}")
    heads = signed_heads(db)
    if heads:
        latest = parse_sth(heads[-1].document)
        print(
            f"own signed tree heads: {len(heads)}, the latest of size {latest.tree_size} "
            f"at {latest.timestamp.isoformat()}"
        )
    for row in read_cosignatures(db):
        print(f"cosigned {row.log_node} size {row.tree_size} by {row.witness} ({row.stored_at})")
    if alerts:
        raise SystemExit(1)


def cmd_log_archive(args: argparse.Namespace) -> None:
    from gateway.audit.anchor import load_anchor
    from gateway.audit.archive import ArchiveError, archive_before
    from gateway.audit.verify import AuditError

    out = Path(args.out)
    if out.exists():
        raise ValueError(f"{out} exists; an archive is never overwritten")
    anchor = load_anchor(Path(args.anchor)) if args.anchor else None
    try:
        result = archive_before(
            log_store(args),
            _time(args.before),
            out,
            now=datetime.now(UTC),
            anchor=anchor,
            recipients=_recipients(args),
            decrypt_key=_decrypt_key(args),
        )
    except (ArchiveError, AuditError) as exc:
        print(f"gateway: nothing archived: {exc}", file=sys.stderr)
        sys.exit(1)
    if not result.entries:
        print(f"nothing to archive before {args.before} (only timestamped entries are)")
        return
    print(
        f"archived {result.entries} entries (leaves {result.first_leaf}..{result.last_leaf}) "
        f"to {out}, {result.bytes} bytes{', verified' if result.verified else ''}; their "
        "header, body and signature are pruned from the log, their leaf hashes kept"
    )


def cmd_log_encrypt(args: argparse.Namespace) -> None:
    """Seal the rows an older log holds in the clear under the node's data key."""
    count = log_store(args).seal_rows()
    print(
        f"sealed {count} entries with their data subjects under the data key; leaves "
        "unchanged (on PostgreSQL the old row versions go at the next VACUUM)"
    )


def cmd_log_check_subjects(args: argparse.Namespace) -> None:
    """Recompute every entry's data-subject commitment from its rows (exit 1 on a mismatch).

    One JSON line per mismatching entry, then a summary; made to run from monitoring, as
    ``log witness`` is, because a removed row shows nowhere else on the node.
    """
    import json

    from gateway.audit.subjects import SubjectsCheckError, check_subjects

    try:
        report = check_subjects(log_store(args))
    except SubjectsCheckError as exc:
        raise ValueError(str(exc)) from None
    for bad in report.mismatches:
        print(
            json.dumps(
                {
                    "entry_id": bad.entry_id,
                    "leaf_index": bad.leaf_index,
                    "message_id": bad.message_id,
                    "reason": bad.reason,
                    "rows": bad.rows,
                }
            )
        )
    print(
        f"checked {report.checked} entries ({report.with_subjects} with data subjects), "
        f"{len(report.mismatches)} mismatching; {report.unchecked_rows} data-subject rows "
        "of entries logged before subject commitments are not covered",
        file=sys.stderr,
    )
    if report.mismatches:
        raise SystemExit(1)


def _add_encrypt_to(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encrypt-to",
        action="append",
        default=None,
        help="seal the bundle to this recipient's public key (PEM, repeatable)",
    )


def add_log_commands(logs: Subparsers, add: AddFn) -> None:
    """Register ``gateway log witness``, ``archive`` and ``check-subjects``."""
    p = add(
        logs,
        "check-subjects",
        cmd_log_check_subjects,
        "recompute each entry's data-subject commitment from the data_subject rows and "
        "report entries whose rows were removed or altered, or whose data tracker details "
        "differ from the signed headers (exit 1 if any)",
    )
    p.add_argument("--db", required=True)
    add_data_key_arguments(p)
    p = add(
        logs,
        "encrypt",
        cmd_log_encrypt,
        "seal the exchanges a log holds in the clear (written before its node had a data "
        "key) under the data key, with their data subjects; leaves and proofs unchanged",
    )
    p.add_argument("--db", required=True)
    add_data_key_arguments(p)
    p = add(
        logs,
        "archive",
        cmd_log_archive,
        "move entries logged before a date to an audit bundle and prune them from the log",
    )
    p.add_argument("--db", required=True)
    p.add_argument("--before", required=True, help="RFC 3339 with a zone")
    p.add_argument("--out", required=True, help="the archive bundle to write")
    p.add_argument("--anchor", default=None, help="verify the bundle before pruning")
    _add_encrypt_to(p)
    p.add_argument("--decrypt-key", default=None, help="a recipient's key, to verify it sealed")
    add_data_key_arguments(p)
    p = add(
        logs,
        "witness",
        cmd_log_witness,
        "list witness alerts (split views; exit 1 if any), signed tree heads and co-signatures",
    )
    p.add_argument("--db", required=True)


def add_commands(sub: Subparsers, add: AddFn) -> Subparsers:
    """Register ``gateway audit ...``; returns the ``audit`` subcommands, to which the
    entry point adds the sandbox's ``bench``."""
    audit = sub.add_parser("audit", help="export and verify audit bundles").add_subparsers(
        dest="audit_command", required=True, metavar="AUDIT_COMMAND"
    )
    p = add(audit, "export", cmd_audit_export, "write an audit bundle from a message log")
    p.add_argument(
        "--db", required=True, help="the node's messagelog.sqlite, or its postgresql:// URL"
    )
    p.add_argument("--out", required=True, help="the bundle file to write (JSON Lines)")
    p.add_argument("--message-id", default=None, help="one message: its request and response")
    p.add_argument("--from", dest="since", default=None, help="logged_at from (RFC 3339)")
    p.add_argument("--to", dest="until", default=None, help="logged_at until (RFC 3339)")
    p.add_argument("--all", action="store_true", help="every entry covered by a tree head")
    p.add_argument("--tsa-cert", default=None, help="also include this TSA certificate (PEM)")
    p.add_argument("--ca", default=None, help="also include this CA certificate (PEM)")
    p.add_argument("--no-bodies", action="store_true", help="body digests only, no bodies")
    _add_encrypt_to(p)
    add_data_key_arguments(p)
    p.add_argument(
        "--globalconf",
        default=None,
        help="the node's global configuration state directory, whose signed snapshot the "
        "bundle carries (default: globalconf/ next to the log, if there; '' for none)",
    )
    p = add(audit, "verify", cmd_audit_verify, "verify an audit bundle offline")
    p.add_argument("bundle")
    p.add_argument("--anchor", required=True, help="trusted CA and TSA certificates")
    p.add_argument("--jobs", type=int, default=None, help="signature processes (default: CPUs)")
    p.add_argument(
        "--decrypt-key",
        default=None,
        help="a recipient's private key, to open a sealed bundle (passphrase, if any: "
        "$GATEWAY_DECRYPT_KEY_PASSPHRASE)",
    )
    p = add(
        audit,
        "recipient-key",
        cmd_audit_recipient_key,
        "make an archive recipient's X25519 key pair: OUT.key (private, 0600) and OUT.pub",
    )
    p.add_argument("--out", required=True, help="the files' name without .key/.pub")
    p = add(audit, "anchor", cmd_audit_anchor, "write an anchor file from certificates")
    p.add_argument("--ca", action="append", required=True, help="trusted CA (PEM, repeatable)")
    p.add_argument("--tsa-cert", action="append", required=True, help="trusted TSA (PEM)")
    p.add_argument("--ocsp-freshness-seconds", type=int, default=3600)
    p.add_argument("--out", required=True)
    return audit
