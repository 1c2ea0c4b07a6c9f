"""``gateway node admin`` commands that read and change a running node's settings:
subsystems, services, access rights, local groups, maintenance mode and the audit trail.

Identifiers are given as usual (``DE-NRW/GOV/05974040/gewerbeamt``) and sent in the
API's path form (``:`` between parts). Each change prints what changed and the admin
record's log entry; a refusal exits 1 with the API's code (:mod:`gateway.node.admincli`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.node.admincli import API, AdminClient, emit, run_api, show_table

if TYPE_CHECKING:
    from gateway.node.admincli import AddFn, Subparsers


def _in_path(identifier: str) -> str:
    return identifier.replace("/", ":")


def _changed(answer: dict[str, Any]) -> None:
    """One line per change: what, the settings version and the log entry."""
    if answer.get("entry_id") is None and "version" in answer:
        print(f"{answer['action']} {answer['target']}: nothing to change")
        return
    entry = answer.get("entry_id")
    print(
        f"{answer['action']} {answer['target']}: done"
        + (f", settings version {answer['version']}" if "version" in answer else "")
        + (f", audit entry {entry}" if entry is not None else "")
    )
    for name in ("added", "removed"):
        for endpoint in answer.get(name, []):
            print(f"  {name} {endpoint['method']} {endpoint['path']}")


def _change(
    method: str,
    path: Callable[[argparse.Namespace], str],
    body: Callable[[argparse.Namespace], Any],
) -> Callable[[argparse.Namespace, AdminClient], None]:
    def command(args: argparse.Namespace, api: AdminClient) -> None:
        emit(args, api.call(method, path(args), body=body(args)), _changed)

    return command


def _list(
    path: str, key: str, columns: list[str]
) -> Callable[[argparse.Namespace, AdminClient], None]:
    def command(args: argparse.Namespace, api: AdminClient) -> None:
        emit(args, api.call("GET", f"{API}/{path}"), lambda d: show_table(path, d[key], columns))

    return command


def _enabled(flag: bool) -> Callable[[argparse.Namespace], Any]:
    return lambda args: {"enabled": flag}


def _value(text: str) -> Any:
    """A field value: JSON if it parses (numbers, booleans, lists), the text otherwise."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _fields(pairs: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"{pair!r} is not FIELD=VALUE")
        fields[name] = _value(value)
    return fields


def _subject(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"service": args.service}
    for name in ("client", "group", "local_group"):
        if getattr(args, name):
            body[name] = getattr(args, name)
    if args.method:
        body["methods"] = args.method
    if args.path:
        body["paths"] = args.path
    return body


def _audit(args: argparse.Namespace, api: AdminClient) -> None:
    params = {"since": args.since, "limit": str(args.limit) if args.limit else None}
    columns = ["entry_id", "at", "actor", "role", "action", "target", "before", "after"]
    emit(
        args,
        api.call("GET", f"{API}/audit", params=params),
        lambda d: show_table(f"admin audit records of {d['node']}", d["records"], columns),
    )


def _maintenance_status(args: argparse.Namespace, api: AdminClient) -> None:
    def render(d: dict[str, Any]) -> None:
        state = "on" if d["enabled"] else "off"
        print(
            f"maintenance mode {state}"
            + (f" since {d['since']}: {d['reason']}" if d["enabled"] else "")
            + f"; {d['in_flight']} exchanges in flight in the answering process"
            + (f" (pid {d['pid']})" if "pid" in d else "")
        )

    emit(args, api.call("GET", f"{API}/maintenance"), render)


def _new_service(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"id": args.id, "url": args.service_url, **_fields(args.set)}
    if args.from_openapi:
        body.update(openapi_url=args.from_openapi, from_openapi=True)
    return body


def _csr(args: argparse.Namespace, api: AdminClient) -> None:
    answer = api.call(
        "POST", f"{API}/certificates/csr", body={"owner": args.owner, "new_key": args.new_key}
    )

    def render(d: dict[str, Any]) -> None:
        if args.out:
            Path(args.out).write_text(d["csr"], "ascii")
            print(f"wrote {args.out}: {d['role']} key of {d['owner']} ({d['key_path']})")
        else:
            print(d["csr"], end="")

    emit(args, answer, render)


def _import_cert(args: argparse.Namespace, api: AdminClient) -> None:
    try:
        pem = Path(args.file).read_text("ascii")
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {args.file}: {exc}") from None

    def render(d: dict[str, Any]) -> None:
        when = "in use now" if d["installed"] else "in use after a restart"
        print(f"imported the {d['role']} certificate {d['serial']} of {d['owner']}: {when}")

    emit(args, api.call("POST", f"{API}/certificates", body={"pem": pem}), render)


def add_change_commands(sub: Subparsers, add: AddFn) -> None:
    """The settings, maintenance and audit commands under ``gateway node admin``."""
    subsystems = sub.add_parser("subsystems", help="hosted subsystems").add_subparsers(
        dest="what", required=True, metavar="SUBSYSTEMS_COMMAND"
    )
    add(
        subsystems,
        "list",
        run_api(_list("subsystems", "clients", ["id", "connection_type"])),
        "list",
    )
    p = add(
        subsystems,
        "add",
        run_api(
            _change(
                "POST",
                lambda a: f"{API}/subsystems",
                lambda a: {"id": a.id, "connection_type": a.connection_type},
            )
        ),
        "add a hosted subsystem",
    )
    p.add_argument("id")
    p.add_argument("--connection-type", default="https", choices=["http", "https", "https-no-auth"])
    p = add(
        subsystems,
        "remove",
        run_api(_change("DELETE", lambda a: f"{API}/subsystems/{_in_path(a.id)}", lambda a: None)),
        "remove a hosted subsystem",
    )
    p.add_argument("id")
    p = add(
        subsystems,
        "connection-type",
        run_api(
            _change(
                "PUT",
                lambda a: f"{API}/subsystems/{_in_path(a.id)}/connection-type",
                lambda a: {"connection_type": a.type},
            )
        ),
        "set a subsystem's connection type",
    )
    p.add_argument("id")
    p.add_argument("type", choices=["http", "https", "https-no-auth"])

    services = sub.add_parser("services", help="provided services").add_subparsers(
        dest="what", required=True, metavar="SERVICES_COMMAND"
    )
    add(
        services,
        "list",
        run_api(
            _list(
                "services",
                "services",
                [
                    "id",
                    "url",
                    "enabled",
                    "timeout_seconds",
                    "require_issue",
                    "require_user_id",
                    "endpoints",
                ],
            )
        ),
        "list",
    )
    p = add(
        services,
        "add",
        run_api(
            _change(
                "POST",
                lambda a: f"{API}/services",
                _new_service,
            )
        ),
        "provide a service",
    )
    p.add_argument("id")
    p.add_argument("service_url", metavar="URL", help="the registry's URL of the service")
    p.add_argument(
        "--from-openapi",
        default=None,
        metavar="URL",
        help="the service description: its endpoints are read from this OpenAPI document",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="another field, e.g. timeout_seconds=10",
    )
    p = add(
        services,
        "remove",
        run_api(_change("DELETE", lambda a: f"{API}/services/{_in_path(a.id)}", lambda a: None)),
        "stop providing a service",
    )
    p.add_argument("id")
    for name, enabled in (("enable", True), ("disable", False)):
        p = add(
            services,
            name,
            run_api(
                _change(
                    "PATCH",
                    lambda a: f"{API}/services/{_in_path(a.id)}",
                    _enabled(enabled),
                )
            ),
            f"{name} a service",
        )
        p.add_argument("id")
    p = add(
        services,
        "set",
        run_api(
            _change(
                "PATCH", lambda a: f"{API}/services/{_in_path(a.id)}", lambda a: _fields(a.fields)
            )
        ),
        "change fields of a service (url=..., timeout_seconds=..., require_issue=true)",
    )
    p.add_argument("id")
    p.add_argument("fields", nargs="+", metavar="FIELD=VALUE")
    p = add(
        services,
        "refresh",
        run_api(
            _change("POST", lambda a: f"{API}/services/{_in_path(a.id)}/refresh", lambda a: None)
        ),
        "reread the service's OpenAPI document and set its endpoints from it",
    )
    p.add_argument("id")

    access = sub.add_parser("access", help="access rights").add_subparsers(
        dest="what", required=True, metavar="ACCESS_COMMAND"
    )
    add(
        access,
        "list",
        run_api(
            _list(
                "access",
                "access",
                ["service", "client", "group", "local_group", "methods", "paths"],
            )
        ),
        "list",
    )
    for name, method in (("grant", "POST"), ("revoke", "DELETE")):
        p = add(
            access,
            name,
            run_api(_change(method, lambda a: f"{API}/access", _subject)),
            f"{name} an access right",
        )
        p.add_argument("service")
        who = p.add_mutually_exclusive_group(required=True)
        who.add_argument("--client", default=None)
        who.add_argument("--group", default=None, help="a global group")
        who.add_argument("--local-group", dest="local_group", default=None)
        p.add_argument("--method", action="append", default=[], help="only this method; repeatable")
        p.add_argument("--path", action="append", default=[], help="only this path; repeatable")

    groups = sub.add_parser("groups", help="local groups").add_subparsers(
        dest="what", required=True, metavar="GROUPS_COMMAND"
    )
    add(
        groups,
        "list",
        run_api(_list("local-groups", "local_groups", ["owner", "code", "description", "members"])),
        "list",
    )
    p = add(
        groups,
        "add",
        run_api(
            _change(
                "POST",
                lambda a: f"{API}/local-groups",
                lambda a: {
                    "owner": a.owner,
                    "code": a.code,
                    "description": a.description,
                    "members": a.member,
                },
            )
        ),
        "add a local group",
    )
    p.add_argument("owner")
    p.add_argument("code")
    p.add_argument("--description", default="")
    p.add_argument("--member", action="append", default=[])
    p = add(
        groups,
        "remove",
        run_api(
            _change(
                "DELETE",
                lambda a: f"{API}/local-groups/{_in_path(a.owner)}:{a.code}",
                lambda a: None,
            )
        ),
        "remove a local group",
    )
    p.add_argument("owner")
    p.add_argument("code")
    for name, method in (("add-members", "POST"), ("remove-members", "DELETE")):
        p = add(
            groups,
            name,
            run_api(
                _change(
                    method,
                    lambda a: f"{API}/local-groups/{_in_path(a.owner)}:{a.code}/members",
                    lambda a: {"members": a.members},
                )
            ),
            f"{name.replace('-', ' ')} of a local group",
        )
        p.add_argument("owner")
        p.add_argument("code")
        p.add_argument("members", nargs="+")

    maintenance = sub.add_parser("maintenance", help="maintenance mode").add_subparsers(
        dest="what", required=True, metavar="MAINTENANCE_COMMAND"
    )
    p = add(
        maintenance,
        "on",
        run_api(
            _change(
                "PUT",
                lambda a: f"{API}/maintenance",
                lambda a: {"enabled": True, "reason": a.reason},
            )
        ),
        "refuse new exchanges; those in flight finish",
    )
    p.add_argument("--reason", default="maintenance")
    add(
        maintenance,
        "off",
        run_api(_change("PUT", lambda a: f"{API}/maintenance", lambda a: {"enabled": False})),
        "accept exchanges again",
    )
    add(
        maintenance,
        "status",
        run_api(_maintenance_status),
        "whether the node is in maintenance mode",
    )

    p = add(sub, "csr", run_api(_csr), "a CSR for the node's or a member's key (PEM)")
    p.add_argument("owner", help="this node's id (authentication) or a member id (signing)")
    p.add_argument("--new-key", action="store_true", help="make a new key for it")
    p.add_argument("--out", default=None, help="write the CSR here instead of stdout")
    p = add(sub, "import-cert", run_api(_import_cert), "import an issued certificate (PEM)")
    p.add_argument("file")

    p = add(sub, "audit", run_api(_audit), "the admin audit records")
    p.add_argument("--since", default=None)
    p.add_argument("--limit", type=int, default=None)
