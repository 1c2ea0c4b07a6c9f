"""``gateway``: one command for every role, with subcommands.

Errors are printed as one line and exit with status 2; ``--verbose`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.core.errors import ERROR_TABLE, GatewayError
from gateway.pki.profiles import CertificateError


def cmd_log_show(args: argparse.Namespace) -> None:
    from gateway.audit.cli import log_store
    from gateway.messagelog import read_entries

    for entry in read_entries(log_store(args), message_id=args.message_id):
        row = {
            "id": entry.id,
            "logged_at": entry.logged_at,
            "role": entry.role,
            "kind": entry.kind,
            "message_id": entry.message_id,
            "client": entry.client,
            "service": entry.service,
            "header": json.loads(entry.header),
            "body_bytes": len(entry.body),
            "cert_ref": entry.cert_ref,
            "ocsp_ref": entry.ocsp_ref,
        }
        print(json.dumps(row, ensure_ascii=False))


def cmd_log_timestamps(args: argparse.Namespace) -> None:
    from gateway.messagelog import log_source, read_tree_heads, timestamp_status

    path = log_source(args.db)
    heads = read_tree_heads(path)
    print(f"{'tree_size':>10}  {'gen_time':<27}  {'root_hash':<64}  tsa")
    for head in heads:
        print(f"{head.tree_size:>10}  {head.gen_time:<27}  {head.root_hash.hex()}  {head.tsa_name}")
    status = timestamp_status(path)
    since = f", the oldest logged at {status.oldest_pending}" if status.oldest_pending else ""
    print(f"{status.tree_size} entries, {status.pending} pending a time stamp{since}")


def cmd_log_configurations(args: argparse.Namespace) -> None:
    """The configuration history as JSON lines, in the order applied: the own
    instance's versions and each federated instance's (with expiry and root)."""
    import json

    from gateway.messagelog import configuration_history, foreign_versions, log_source, open_store

    source = log_source(args.db)
    own = open_store(source).configuration_versions()
    for row in configuration_history(own, foreign_versions(source)):
        print(json.dumps(row, sort_keys=True))


def cmd_log_prove(args: argparse.Namespace) -> None:
    from gateway.audit.cli import log_store
    from gateway.core.encoding import format_time
    from gateway.core.logtree import ProofError, entry_leaf
    from gateway.core.merkle import leaf_hash
    from gateway.keys.files import load_certificate
    from gateway.messagelog import NotProvableError, prove_entry

    tsa_cert = load_certificate(Path(args.tsa_cert))
    issuer = load_certificate(Path(args.ca)) if args.ca else None
    try:
        proof, proven = prove_entry(log_store(args), args.id, tsa_cert, issuer=issuer)
    except (NotProvableError, ProofError) as exc:
        print(f"gateway: cannot prove entry {args.id}: {exc}", file=sys.stderr)
        sys.exit(1)
    gen_time = format_time(proven.gen_time, "auto")
    print(f"entry {proof.entry_id} existed at {gen_time}")
    print(f"  leaf        {proven.leaf_index} of the tree head of size {proven.tree_size}")
    print(f"  root_hash   {proven.root_hash.hex()}")
    print(f"  node        {proven.node}")
    print(f"  imprint     {proven.imprint.hex()} (SHA-256 of the tree-head document)")
    print(f"  tsa         {proof.head.tsa_name}, token serial {proven.tsa_serial:x}")
    if args.export:
        out = Path(args.export)
        out.mkdir(parents=True, exist_ok=True)
        leaf = entry_leaf(proof.entry)
        (out / "tree-head.json").write_bytes(proof.head.document)
        (out / "token.tst").write_bytes(proof.head.token)
        (out / "leaf.json").write_bytes(leaf)
        document = {
            "entry_id": proof.entry_id,
            "leaf_index": proof.leaf_index,
            "leaf_hash": leaf_hash(leaf).hex(),
            "tree_size": proof.head.tree_size,
            "root_hash": proof.head.root_hash.hex(),
            "inclusion": [h.hex() for h in proof.inclusion],
            "gen_time": gen_time,
        }
        (out / "proof.json").write_text(json.dumps(document, indent=2) + "\n", "utf-8")
        print(f"  exported    tree-head.json, token.tst, leaf.json, proof.json to {out}")


def cmd_errors(args: argparse.Namespace) -> None:
    from gateway.central.errors import CENTRAL_ERROR_TABLE
    from gateway.console.errors import CONSOLE_ERROR_TABLE
    from gateway.core.errors import ADMIN_ERROR_TABLE

    # Message exchange codes first, then the central authority's (admin, registration),
    # then the node management API's, then the console's.
    tables = [
        *ERROR_TABLE.items(),
        *CENTRAL_ERROR_TABLE.items(),
        *ADMIN_ERROR_TABLE.items(),
        *CONSOLE_ERROR_TABLE.items(),
    ]
    for code, spec in tables:
        print(f"{spec.status}  {code.value:<55} {spec.meaning}")


def cmd_registry_melderegister(args: argparse.Namespace) -> None:
    from registries.melderegister.app import serve
    from registries.serving import limits_from

    token_file = Path(args.operator_token_file) if args.operator_token_file else None
    serve(Path(args.db), args.host, args.port, args.city, token_file, limits=limits_from(args))


def cmd_registry_gewerberegister(args: argparse.Namespace) -> None:
    from registries.gewerberegister.app import serve
    from registries.gewerberegister.outbox import target_from
    from registries.serving import limits_from

    serve(Path(args.db), args.host, args.port, target_from(args), limits=limits_from(args))


def cmd_registry_ihk(args: argparse.Namespace) -> None:
    from registries.ihk.app import serve
    from registries.serving import limits_from

    serve(Path(args.db), args.host, args.port, limits=limits_from(args))


def cmd_registry_ariregister(args: argparse.Namespace) -> None:
    from registries.ariregister.app import serve
    from registries.serving import limits_from

    serve(Path(args.db), args.host, args.port, limits=limits_from(args))


def cmd_registry_portal(args: argparse.Namespace) -> None:
    from registries.portal.cli import run

    run(args)


def cmd_demo(args: argparse.Namespace) -> None:
    from gateway.sandbox.demo import run_demo

    directory = Path(args.dir) if args.dir else None
    sys.exit(
        run_demo(
            directory,
            serve=args.serve,
            exit_on_failure=args.exit_on_failure,
            db=args.database_url,
        )
    )


def cmd_bench(args: argparse.Namespace) -> None:
    from gateway.sandbox.bench.runner import run_bench

    report = run_bench(
        levels=[int(x) for x in args.levels.split(",")],
        duration=args.duration,
        repeats=args.repeats,
        body_bytes=args.body_bytes,
        large_bodies=[int(x) for x in args.large_bodies.split(",") if x],
        large_concurrency=args.large_concurrency,
        plot_path=Path(args.plot) if args.plot else None,
        soak=args.soak,
        out_dir=Path(args.out) if args.out else None,
        profile_dir=Path(args.profile) if args.profile else None,
        loadgen=args.loadgen,
        with_nginx=not args.no_nginx,
        registry_levels=[int(x) for x in args.registry_levels.split(",") if x],
        workers=args.workers,
        database_url=args.database_url,
        **({} if args.warm_up is None else {"warm_up": args.warm_up}),
    )
    checks = [report["log_check"]] + [
        c["log_check"] for c in report.get("workers", {}).get("configurations", {}).values()
        if "log_check" in c
    ]  # fmt: skip
    if any(c["consumer_missing"] or c["provider_missing"] for c in checks):
        print("gateway: error: some counted successes are missing from a log", file=sys.stderr)
        sys.exit(1)


def cmd_audit_bench(args: argparse.Namespace) -> None:
    """``gateway audit bench``: the sandbox's measurement of the verifier on a synthetic
    log, registered here rather than by :mod:`gateway.audit.cli` so that the audit package
    imports no sandbox code."""
    import tempfile

    from gateway.sandbox.bench.audit import run_bench

    with tempfile.TemporaryDirectory(prefix="audit-bench-") as scratch:
        result = run_bench(Path(args.dir or scratch), args.entries, jobs=args.jobs)
    from gateway.sandbox.bench.targets import judge_audit, render

    print(
        f"verified the bundle file in {result.verify_seconds:.2f} s "
        f"({result.verify_cpu_seconds:.2f} s CPU) for {result.entries} entries with "
        f"{result.jobs} process(es): {result.per_second:.0f} entries/s"
    )
    sigs = result.signatures
    print(
        f"its {sigs.signatures} signatures alone in {sigs.seconds:.2f} s "
        f"({sigs.cpu_seconds:.2f} s CPU) with {sigs.jobs} process(es): "
        f"{sigs.per_second:.0f} signatures/s"
    )
    verdict = judge_audit(
        result.per_second, sigs.per_second, result.verify_cpu_seconds, sigs.cpu_seconds
    )
    print(render([verdict]))


def cmd_log_bench(args: argparse.Namespace) -> None:
    """``gateway log bench``: proof time and memory and the log's start-up at growing log
    sizes (docs/performance.md), from the sandbox's bench, which the log package does
    not import."""
    import tempfile

    from gateway.sandbox.bench.logsize import run_log_bench

    sizes = [int(float(size)) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="log-bench-") as scratch:
        location: Path | str = args.database_url or Path(args.dir or scratch) / "messagelog.db"
        if isinstance(location, Path):
            location.parent.mkdir(parents=True, exist_ok=True)
        results = run_log_bench(
            location, sizes, samples=args.samples, all_leaves_max=args.all_leaves_max
        )
    from gateway.sandbox.bench.targets import judge_log_sizes, render

    print(render(judge_log_sizes(results)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    parser.add_argument("--verbose", "-v", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        func: Callable[[argparse.Namespace], None],
        help_text: str,
    ) -> argparse.ArgumentParser:
        p = group.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    from gateway.trust.cli import add_pki_commands, add_trust_commands

    add_pki_commands(sub, add)

    from gateway.node.cli import add_commands as add_node_commands

    add_node_commands(sub, add)

    from gateway.keys.cli import add_commands as add_keys_commands

    add_keys_commands(sub, add)

    logs = sub.add_parser("log", help="read a node's message log").add_subparsers(
        dest="log_command", required=True, metavar="LOG_COMMAND"
    )
    p = add(logs, "show", cmd_log_show, "print message log entries as JSON lines")
    p.add_argument("--db", required=True)
    p.add_argument("--message-id", default=None)
    from gateway.audit.cli import add_data_key_arguments

    add_data_key_arguments(p)
    p = add(logs, "timestamps", cmd_log_timestamps, "list timestamped tree heads and the backlog")
    p.add_argument("--db", required=True)
    p = add(
        logs,
        "configurations",
        cmd_log_configurations,
        "list the configuration versions the node applied, its own instance's and each "
        "federated instance's (JSON lines)",
    )
    p.add_argument("--db", required=True)
    p = add(
        logs,
        "prove",
        cmd_log_prove,
        "prove when an entry existed: inclusion in a timestamped tree head, checked "
        "against the TSA certificate given (exit 1 if it cannot be proven)",
    )
    p.add_argument("--db", required=True)
    p.add_argument("--id", type=int, required=True, help="the entry's id (as 'log show' prints)")
    p.add_argument("--tsa-cert", required=True, help="the TSA certificate to trust (PEM)")
    p.add_argument("--ca", default=None, help="also require the TSA certificate from this CA")
    p.add_argument("--export", default=None, help="write the proof's files to this directory")
    add_data_key_arguments(p)
    from gateway.audit.cli import add_log_commands

    add_log_commands(logs, add)
    p = add(
        logs,
        "bench",
        cmd_log_bench,
        "measure proof time and memory and the log's start-up as a synthetic log grows",
    )
    p.add_argument("--sizes", default="1e5,1e6", help="comma-separated entry counts")
    p.add_argument("--samples", type=int, default=50, help="proofs of each kind per size")
    p.add_argument(
        "--all-leaves-max",
        type=int,
        default=1_000_000,
        help="largest size at which proofs are also built from all leaf hashes",
    )
    p.add_argument("--dir", default=None, help="keep the log file here")
    p.add_argument("--database-url", default=None, help="a PostgreSQL log instead")

    add_trust_commands(sub, add)

    add(sub, "errors", cmd_errors, "list every error code with its HTTP status")

    from gateway.central.cli import add_commands as add_central_commands

    add_central_commands(sub, add)

    from gateway.console.cli import add_commands as add_console_commands

    add_console_commands(sub, add)

    from gateway.audit.cli import add_commands as add_audit_commands

    audit = add_audit_commands(sub, add)
    p = add(audit, "bench", cmd_audit_bench, "measure verify speed on a synthetic log")
    p.add_argument("--entries", type=int, default=20000)
    p.add_argument("--jobs", type=int, default=None, help="signature processes (default: CPUs)")
    p.add_argument("--dir", default=None, help="keep the log and bundle here")

    from gateway.sandbox.setup_cli import add_commands as add_setup_commands

    add_setup_commands(sub, add)

    registry = sub.add_parser("registry", help="run a sample registry").add_subparsers(
        dest="registry_command", required=True, metavar="REGISTRY"
    )
    from registries.standalone import add_server_arguments

    p = add(registry, "melderegister", cmd_registry_melderegister, "a city's Melderegister")
    add_server_arguments(p, 8001)
    # Literal list (not imported from the app) so `gateway --help` stays import-light.
    p.add_argument(
        "--city",
        choices=["iserlohn", "lippstadt"],
        default="lippstadt",
        help="whose residents a new database is seeded with (default lippstadt)",
    )
    p.add_argument(
        "--operator-token-file",
        default=None,
        help="file holding the bearer token that opens GET /protokoll, the protocol of "
        "automated retrievals (without it the protocol is closed)",
    )
    p = add(registry, "gewerberegister", cmd_registry_gewerberegister, "Soest's Gewerberegister")
    add_server_arguments(p, 8002)
    from registries.gewerberegister.outbox_args import add_arguments as add_ihk_arguments

    add_ihk_arguments(p)
    p = add(registry, "ihk", cmd_registry_ihk, "the IHK's Gewerbeanzeige inbox")
    add_server_arguments(p, 8003)
    p = add(registry, "ariregister", cmd_registry_ariregister, "EE-TEST's e-Business Register")
    add_server_arguments(p, 8004)
    from registries.portal.cli import add_arguments as add_portal_arguments

    p = add(registry, "portal", cmd_registry_portal, "Soest's online trade office (portal)")
    add_portal_arguments(p)

    p = add(sub, "bench", cmd_bench, "measure the exchange path against baselines")
    p.add_argument("--levels", default="1,16,64", help="comma-separated concurrency levels")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    p.add_argument("--repeats", type=int, default=3, help="runs per scenario and level")
    p.add_argument(
        "--warm-up",
        type=float,
        default=None,
        help="seconds of uncounted load before each measured run (0: none; default 1)",
    )
    p.add_argument("--body-bytes", type=int, default=1024)
    p.add_argument(
        "--large-bodies", default="1048576,10485760", help="large body sizes (bytes), each way"
    )
    p.add_argument(
        "--large-concurrency", type=int, default=4, help="concurrency of the large bodies"
    )
    p.add_argument("--plot", default=None, help="also write the SVG of throughput and p99 here")
    p.add_argument("--soak", type=int, default=100_000, help="exchanges before reading RSS")
    p.add_argument("--out", default="bench/results", help="directory for the JSON report")
    p.add_argument(
        "--profile",
        default=None,
        metavar="DIR",
        help="also sample both nodes with py-spy during one extra run; stacks go to DIR",
    )
    p.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator: wrk (C, cheap on CPU), the Python one, or wrk when installed",
    )
    p.add_argument(
        "--no-nginx", action="store_true", help="leave out the nginx pair even when installed"
    )
    p.add_argument(
        "--registry-levels",
        default="1,16",
        help="concurrency levels of each sample registry's CPU per request ('' to skip)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="also compare one node with 1 and this many worker processes (default 2 "
        "when --database-url is given), on SQLite and PostgreSQL, as ratios",
    )
    p.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="a PostgreSQL server for that comparison (a database per node, dropped after)",
    )

    p = add(sub, "demo", cmd_demo, "run the three-city federation on loopback: Anna's story")
    p.add_argument("--serve", action="store_true", help="keep the federation running")
    p.add_argument(
        "--exit-on-failure",
        action="store_true",
        help="with --serve: stop the federation when one of its processes dies "
        "(default: report it and restart it with backoff)",
    )
    p.add_argument("--dir", default=None, help="state directory (default: a temporary one)")
    p.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="keep the nodes' logs in PostgreSQL: a database per node on this server "
        "(created, and dropped at the end; default: SQLite files)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args.func(args)
    except (GatewayError, CertificateError, FileExistsError, FileNotFoundError, ValueError) as exc:
        if args.verbose:
            raise
        print(f"gateway: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        from gateway.messagelog import LogStoreError, MessageLogError
        from gateway.node.config import ConfigError

        # A log the node cannot open (no schema yet, unreachable): one line, as for a
        # bad configuration.
        if isinstance(exc, ConfigError | LogStoreError | MessageLogError) and not args.verbose:
            print(f"gateway: error: {exc}", file=sys.stderr)
            sys.exit(2)
        raise
