"""``gateway pki ...`` and ``gateway trust serve``: the trust side's subcommands.

The development CA (its directory, the certificates it issues, its revocations) and the
OCSP responder and TSA it runs are ``gateway.trust``'s; their commands live next to that
code, as the central's and the auditor's do. ``gateway.cli`` only calls
:func:`add_pki_commands` and :func:`add_trust_commands`, each where its
group stands in ``gateway --help``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from gateway.core.ids import MemberId, NodeId
from gateway.net.guard import GuardSettings, add_guard_arguments
from gateway.net.loop import run as _run
from gateway.pki.profiles import CertKind

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    AddFn = Callable[
        [Subparsers, str, Callable[[argparse.Namespace], None], str], argparse.ArgumentParser
    ]


def _now() -> datetime:
    return datetime.now(UTC)


def _owner(kind: CertKind, text: str) -> NodeId | MemberId:
    return NodeId.parse(text) if kind is CertKind.AUTH else MemberId.parse(text)


def cmd_pki_init(args: argparse.Namespace) -> None:
    from gateway.trust.ca_store import init_ca

    cert = init_ca(Path(args.dir), args.name, _now(), days=args.days)
    print(f"created CA {cert.subject.rfc4514_string()} in {args.dir} (ca.pem, ca.key 0600)")


def cmd_pki_request(args: argparse.Namespace) -> None:
    from gateway.keys.cli import new_key_passphrase
    from gateway.keys.files import new_key_and_csr

    kind = CertKind(args.kind)
    owner = _owner(kind, args.id)
    passphrase = new_key_passphrase(args, f"the new key {args.key}")
    new_key_and_csr(kind, owner, Path(args.key), Path(args.csr), args.org, passphrase=passphrase)
    how = "plain, development only" if passphrase is None else "encrypted"
    print(f"wrote key {args.key} (0600, {how}) and {kind.value} CSR {args.csr} for {args.id}")


def cmd_pki_issue(args: argparse.Namespace) -> None:
    from gateway.pki.keys import fingerprint_sha256
    from gateway.trust.ca_store import issue_from_csr

    cert = issue_from_csr(
        Path(args.ca),
        Path(args.csr),
        CertKind(args.kind),
        Path(args.out),
        _now(),
        days=args.days,
        dns_names=tuple(args.dns or ()),
        ip_addresses=tuple(args.ip or ()),
    )
    print(f"issued {args.kind} certificate {args.out}")
    print(f"  subject  {cert.subject.rfc4514_string()}")
    print(f"  serial   {cert.serial_number:x}")
    print(f"  sha256   {fingerprint_sha256(cert)}")


def cmd_pki_revoke(args: argparse.Namespace) -> None:
    from gateway.keys.files import load_certificate
    from gateway.pki.status import parse_reason, parse_serial, serial_hex
    from gateway.trust.revocation import revoke

    target: int | x509.Certificate = (
        parse_serial(args.serial) if args.serial else load_certificate(Path(args.cert))
    )
    entry = revoke(Path(args.ca), target, parse_reason(args.reason), _now())
    serial = target if isinstance(target, int) else target.serial_number
    print(
        f"revoked serial {serial_hex(serial)} at {entry.time.isoformat()} "
        f"({entry.reason.value}); the OCSP responder reports it from its next answer"
    )


def cmd_pki_issue_service(args: argparse.Namespace) -> None:
    from gateway.pki.keys import fingerprint_sha256
    from gateway.pki.profiles import ServiceKind
    from gateway.trust.ca_store import issue_service

    issued = issue_service(
        Path(args.ca),
        ServiceKind(args.kind),
        Path(args.out_dir),
        _now(),
        days=args.days,
        common_name=args.name,
    )
    cert = issued.certificate
    print(f"issued {args.kind} certificate {issued.cert} with key {issued.key} (0600)")
    print(f"  subject  {cert.subject.rfc4514_string()}")
    print(f"  serial   {cert.serial_number:x}")
    print(f"  sha256   {fingerprint_sha256(cert)}")


def _service_passphrase(args: argparse.Namespace, *keys: Path | None) -> bytes | None:
    """The passphrase of the services' key files, asked for only when one is encrypted
    (``--key-passphrase-file``, else ``GATEWAY_KEY_PASSPHRASE``, else a prompt)."""
    from gateway.keys.files import is_encrypted_key_file
    from gateway.keys.passphrase import resolve_passphrase

    encrypted = [k for k in keys if k is not None and k.exists() and is_encrypted_key_file(k)]
    if not encrypted:
        return None
    file = Path(args.key_passphrase_file) if args.key_passphrase_file else None
    return resolve_passphrase(
        file,
        what=f"the trust services' keys ({', '.join(str(k) for k in encrypted)})",
        file_option="--key-passphrase-file",
    )


def cmd_trust_serve(args: argparse.Namespace) -> None:
    from datetime import timedelta

    from gateway.net.guard import settings_from_args
    from gateway.pki.tsa import DEFAULT_POLICY_OID
    from gateway.trust.service import OCSP_PATH, TSA_PATH, load_settings, run_trust

    def optional(value: str | None) -> Path | None:
        return Path(value) if value else None

    settings = load_settings(
        passphrase=_service_passphrase(args, optional(args.ocsp_key), optional(args.tsa_key)),
        development=args.development,
        ca_dir=optional(args.ca),
        ocsp_cert=optional(args.ocsp_cert),
        ocsp_key=optional(args.ocsp_key),
        tsa_cert=optional(args.tsa_cert),
        tsa_key=optional(args.tsa_key),
        ocsp_validity=timedelta(seconds=args.ocsp_validity),
        policy_oid=args.policy or DEFAULT_POLICY_OID,
    )

    def ready(url: str) -> None:
        services = []
        if settings.ocsp is not None:
            services.append(f"OCSP {url}{OCSP_PATH}")
        if settings.tsa is not None:
            services.append(f"TSA {url}{TSA_PATH}")
        print(f"trust services ready: {', '.join(services)}", flush=True)

    try:
        limits = settings_from_args(args)
        _run(run_trust(settings, args.host, args.port, ready=ready, limits=limits))
    except OSError as exc:
        # Binding is the only I/O left after load_settings; a busy port is an operator's
        # mistake and deserves one line, not a traceback.
        reason = exc.strerror or exc
        raise ValueError(f"cannot serve on {args.host}:{args.port}: {reason}") from None


def add_pki_commands(sub: Subparsers, add: AddFn) -> None:
    """Register ``gateway pki ...``."""
    from gateway.keys.cli import add_new_key_arguments

    pki = sub.add_parser("pki", help="development certificate authority").add_subparsers(
        dest="pki_command", required=True, metavar="PKI_COMMAND"
    )
    p = add(pki, "init", cmd_pki_init, "create a root CA in DIR (ca.pem, ca.key)")
    p.add_argument("dir")
    p.add_argument("--name", default="Development CA DE-NRW")
    p.add_argument("--days", type=int, default=3650)
    p = add(pki, "request", cmd_pki_request, "generate a key and a CSR for a node or member")
    p.add_argument("--kind", choices=[k.value for k in CertKind], required=True)
    p.add_argument("--id", required=True, help="node id (auth) or member id (sign)")
    p.add_argument("--key", required=True, help="private key output (written 0600)")
    p.add_argument("--csr", required=True, help="CSR output (PEM)")
    p.add_argument("--org", default=None, help="organisation name for the subject")
    add_new_key_arguments(p)
    p = add(pki, "issue", cmd_pki_issue, "turn a CSR into an auth or signing certificate")
    p.add_argument("--ca", required=True, help="CA directory from 'pki init'")
    p.add_argument("--csr", required=True)
    p.add_argument("--kind", choices=[k.value for k in CertKind], required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--dns", action="append", help="extra DNS name (auth only)")
    p.add_argument("--ip", action="append", help="extra IP address (auth only)")

    p = add(pki, "revoke", cmd_pki_revoke, "revoke a certificate this CA issued")
    p.add_argument("--ca", required=True, help="CA directory from 'pki init'")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", help="serial number in hex, as 'pki issue' printed it")
    which.add_argument("--cert", help="the certificate file (PEM)")
    p.add_argument(
        "--reason",
        required=True,
        choices=[r.value for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl],
        help="RFC 5280 reason, e.g. keyCompromise",
    )
    p = add(
        pki,
        "issue-service",
        cmd_pki_issue_service,
        "generate a key and an OCSP responder or TSA certificate (<kind>.key, <kind>.pem)",
    )
    p.add_argument("--ca", required=True, help="CA directory from 'pki init'")
    p.add_argument("--kind", choices=["ocsp", "tsa"], required=True)
    p.add_argument("--out-dir", required=True, help="directory for <kind>.key and <kind>.pem")
    p.add_argument(
        "--days",
        type=int,
        default=90,
        help="validity in days (default 90: an OCSP responder certificate is never "
        "revocation-checked, so keep it short-lived)",
    )
    p.add_argument("--name", default=None, help="subject CN (default: '<CA name> <service>')")


def add_trust_commands(sub: Subparsers, add: AddFn) -> None:
    """Register ``gateway trust serve``."""
    trust = sub.add_parser("trust", help="run the OCSP responder and TSA").add_subparsers(
        dest="trust_command", required=True, metavar="TRUST_COMMAND"
    )
    p = add(trust, "serve", cmd_trust_serve, "serve OCSP at /ocsp and time stamps at /tsa")
    p.add_argument("--ca", default=None, help="CA directory (needed for OCSP)")
    p.add_argument("--ocsp-cert", default=None, help="OCSP responder certificate (or the CA's)")
    p.add_argument("--ocsp-key", default=None)
    p.add_argument("--tsa-cert", default=None)
    p.add_argument("--tsa-key", default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument(
        "--ocsp-validity",
        type=int,
        default=3600,
        help="seconds from thisUpdate to nextUpdate (default: X-Road's freshness window)",
    )
    p.add_argument("--policy", default=None, help="TSA policy OID (default: the built-in one)")
    p.add_argument(
        "--key-passphrase-file",
        default=None,
        help="file (0600) with the encrypted keys' passphrase (else GATEWAY_KEY_PASSPHRASE "
        "or a prompt)",
    )
    p.add_argument(
        "--development",
        action="store_true",
        help="accept unencrypted key files (a development set-up only)",
    )
    add_guard_arguments(p, GuardSettings())
