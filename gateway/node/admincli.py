"""``gateway node keys ...`` and ``gateway node admin ...``: the management API's keys
and its command-line client.

``keys`` works on the node's files (``api-keys.json``, ``admin.key``), offline, so an
operator who lost every key can still make one; the running node picks a change up on
its next call. ``admin`` is a plain HTTP client of ``/api/v1``: it can do nothing the
API would not let its key do. Its exit status is 0 when the API did what was asked, 1
when the API refused (the refusal's code is printed), 2 for a usage or connection
problem (nothing was asked, or no answer came).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from gateway.node.apikeys import NodeKeyStore
    from gateway.node.config import NodeConfig

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    AddFn = Callable[
        [Subparsers, str, Callable[[argparse.Namespace], None], str], argparse.ArgumentParser
    ]

KEY_ENV = "GATEWAY_ADMIN_KEY"
"""An API key given in the environment instead of a file."""

API = "/api/v1"


class ApiRefused(Exception):
    """The API answered with a refusal (``admin.*`` code): exit status 1."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code


def _now() -> datetime:
    return datetime.now(UTC)


def _config(path: str) -> NodeConfig:
    from gateway.node.config import load_config

    return load_config(Path(path))


# ---------------------------------------------------------------------- where and who


def admin_url(config: NodeConfig) -> str:
    """The admin listener's base URL from ``metrics_listen`` (a wildcard bind is asked
    on loopback)."""
    listen = config.node.metrics_listen
    if not listen:
        raise ValueError('the node sets metrics_listen = "": it serves no admin listener')
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", "::", "[::]"):  # noqa: S104 (the wildcard a node binds: ask loopback)
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def read_key(key_file: str | None, config: NodeConfig | None) -> str:
    """The API key: ``--key-file``, else ``GATEWAY_ADMIN_KEY``, else the node's
    ``admin.key``; a ValueError saying where it looked otherwise."""
    if key_file is None and os.environ.get(KEY_ENV, "").strip():
        return os.environ[KEY_ENV].strip()
    path = Path(key_file) if key_file else (config.node.admin_key if config else None)
    if path is None:
        raise ValueError(f"no API key: give --key-file, set {KEY_ENV}, or give --config")
    try:
        key = path.read_text("utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read the API key {path}: {exc.strerror}") from None
    if not key:
        raise ValueError(f"the API key file {path} is empty")
    return key


class AdminClient:
    """Calls of one node's management API with one key."""

    def __init__(self, url: str, key: str, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}"}
        self._timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """The JSON answer, :class:`ApiRefused` for a refusal, ValueError without one."""
        import httpx

        url = f"{self.url}{path}"
        try:
            response = httpx.request(
                method,
                url,
                params={k: v for k, v in (params or {}).items() if v is not None},
                json=body,
                headers=self._headers,
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise ValueError(f"no answer from {url}: {exc}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400:
            if isinstance(answer, dict) and "type" in answer:
                raise ApiRefused(response.status_code, answer["type"], answer.get("message", ""))
            raise ValueError(f"{url} answered {response.status_code}: {response.text[:200]}")
        if answer is None:
            raise ValueError(f"{url} answered {response.status_code} without JSON")
        return answer


def client_of(args: argparse.Namespace) -> AdminClient:
    config = _config(args.config) if args.config else None
    if args.url:
        url = args.url
    elif config is not None:
        url = admin_url(config)
    else:
        raise ValueError("give --url or --config (the node's node.toml)")
    return AdminClient(url, read_key(args.key_file, config))


# ---------------------------------------------------------------------- output


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def show_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """``rows`` as a table of ``columns`` on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console(width=max(120, os.get_terminal_size(1).columns if sys.stdout.isatty() else 200)).print(
        table
    )


def emit(args: argparse.Namespace, answer: Any, render: Callable[[Any], None]) -> None:
    """``--json``: the API's answer as it came; otherwise ``render`` it."""
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        render(answer)


def run_api(
    func: Callable[[argparse.Namespace, AdminClient], None],
) -> Callable[[argparse.Namespace], None]:
    """A command over the API: a refusal is one line with its code and exit status 1."""

    def command(args: argparse.Namespace) -> None:
        client = client_of(args)
        try:
            func(args, client)
        except ApiRefused as refused:
            print(f"gateway: refused: {refused}", file=sys.stderr)
            sys.exit(1)

    return command


def _fail(message: str) -> NoReturn:
    raise ValueError(message)


# ---------------------------------------------------------------------- keys (offline)


def _store(args: argparse.Namespace) -> NodeKeyStore:
    from gateway.node.apikeys import NodeKeyStore

    node = _config(args.config).node
    store = NodeKeyStore(node.api_keys, node.admin_key)
    made = store.ensure(_now())
    if made is not None:
        print(f"created {node.api_keys}; system administrator key {made} in {node.admin_key}")
    return store


def _offline(func: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    """A ``keys`` command: the store's refusals are usage problems (exit status 2)."""
    from gateway.core.errors import AdminError

    def command(args: argparse.Namespace) -> None:
        try:
            func(args)
        except AdminError as exc:
            _fail(str(exc))

    return command


def cmd_keys_create(args: argparse.Namespace) -> None:
    expires = None
    if args.expires:
        try:
            expires = datetime.fromisoformat(args.expires)
        except ValueError:
            _fail(f"--expires {args.expires!r} is not an RFC 3339 time")
    row, secret = _store(args).create("cli", args.name, args.role, expires, _now())
    print(json.dumps({**row.listed(_now()), "key": secret}))


def cmd_keys_list(args: argparse.Namespace) -> None:
    now = _now()
    for row in _store(args).listed():
        print(json.dumps(row.listed(now)))


def cmd_keys_revoke(args: argparse.Namespace) -> None:
    row = _store(args).revoke(args.key_id, _now())
    print(json.dumps(row.listed(_now())))


# ---------------------------------------------------------------------- reads


def _diagnostics(args: argparse.Namespace, api: AdminClient) -> None:
    def render(d: dict[str, Any]) -> None:
        print(f"node {d['node']} at {d['at']}: {'ready' if d['ready'] else 'NOT READY'}")
        show_table("checks", d["checks"], ["check", "ok", "detail"])
        print(f"global configuration: {json.dumps(d['globalconf'])}")
        print(f"timestamping: {json.dumps(d['timestamping'])}")
        print(f"message log queue: {d['messagelog']['queue_depth']}")
        show_table(
            "OCSP", d["ocsp"], ["certificate", "status", "age_seconds", "fetched_from", "detail"]
        )
        show_table("peers", d["peers"], ["node", "address", "reachable", "error"])

    emit(args, api.call("GET", f"{API}/diagnostics"), render)


def _certificates(args: argparse.Namespace, api: AdminClient) -> None:
    def render(d: dict[str, Any]) -> None:
        rows = [{**c, "ocsp": c["ocsp"]["status"]} for c in d["certificates"]]
        columns = ["role", "owner", "subject", "serial", "not_after", "days_left", "ocsp"]
        show_table(f"certificates of {d['node']}", rows, columns)

    emit(args, api.call("GET", f"{API}/certificates"), render)


def _opdata(args: argparse.Namespace, api: AdminClient) -> None:
    params = {"since": args.since, "until": args.until, "client": args.client}
    columns = ["request_in", "side", "client", "service", "status", "error_code", "message_id"]
    emit(
        args,
        api.call("GET", f"{API}/operational", params=params),
        lambda d: show_table(f"operational records of {d['node']}", d["records"], columns),
    )


def add_key_commands(node: Subparsers, add: AddFn) -> None:
    """``gateway node keys create|list|revoke``."""
    from gateway.core.roles import NODE_ROLE_PERMISSIONS

    keys = node.add_parser(
        "keys", help="the management API's keys (offline, on the node's files)"
    ).add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    p = add(keys, "create", _offline(cmd_keys_create), "make an API key; its secret is shown once")
    p.add_argument("--config", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, choices=[r.value for r in NODE_ROLE_PERMISSIONS])
    p.add_argument("--expires", default=None, help="RFC 3339 time with a zone")
    p = add(keys, "list", _offline(cmd_keys_list), "list the API keys (JSON lines, no secrets)")
    p.add_argument("--config", required=True)
    p = add(keys, "revoke", _offline(cmd_keys_revoke), "revoke an API key from now on")
    p.add_argument("--config", required=True)
    p.add_argument("key_id")


def add_admin_commands(node: Subparsers, add: AddFn) -> Subparsers:
    """``gateway node admin ...``; returns its subcommands so the change commands
    (:mod:`gateway.node.admincli_changes`) add theirs."""
    admin = node.add_parser(
        "admin",
        help="operate a running node through its management API",
        description="Operate a running node through its management API (/api/v1). Exit "
        "status: 0 done, 1 refused by the API, 2 usage or connection problem.",
    )
    admin.add_argument("--config", default=None, help="the node's node.toml (URL and key)")
    admin.add_argument("--url", default=None, help="the admin listener, e.g. http://127.0.0.1:9090")
    admin.add_argument(
        "--key-file", default=None, help=f"API key file (default: ${KEY_ENV}, then admin.key)"
    )
    admin.add_argument("--json", action="store_true", help="print the API's JSON answer")
    sub = admin.add_subparsers(dest="admin_command", required=True, metavar="ADMIN_COMMAND")
    add(sub, "diagnostics", run_api(_diagnostics), "configuration, OCSP, timestamping, peers")
    add(sub, "certificates", run_api(_certificates), "own certificates, expiry, OCSP status")
    p = add(sub, "opdata", run_api(_opdata), "operational monitoring records")
    p.add_argument("--since", default=None)
    p.add_argument("--until", default=None)
    p.add_argument("--client", default=None)
    return sub
