"""A node's settings change while it runs: recorded first, then in force, never
breaking an exchange already admitted, and kept in the log across restarts.

Soest (consumer) and Lippstadt (provider) run in process on a real loopback federation;
Lippstadt's settings are changed through its ``SettingsManager`` (what the management
API calls) and through ``gateway node settings`` while it is stopped. Each test gives
Lippstadt a log of its own, so each starts from node.toml's bootstrap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from gateway.conf.directory import TrustParameters
from gateway.core.adminrecord import AdminRecord
from gateway.core.errors import Code
from gateway.core.ids import ServiceId, SubsystemId
from gateway.core.roles import ApiRole
from gateway.node.config import NodeConfig, load_config
from gateway.node.health import Health
from gateway.node.server import Node
from gateway.node.settings import mutations
from gateway.node.settings.errors import SettingsCode, SettingsError
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    ORDNUNGSAMT,
    SERVICE,
    SLOW,
    SLOW_SECONDS,
    SOEST,
    RecordingRegistry,
)
from tests.pg import PgCluster

pytestmark = pytest.mark.integration

ADMIN = "key:k1:test-admin"


@pytest.fixture(scope="module")
def snet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    net = LocalNet.create(tmp_path_factory.mktemp("snet"), [SOEST, LIPPSTADT], datetime.now(UTC))
    net.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    net.add_service(  # answers after SLOW_SECONDS: exchanges that are surely in flight
        ServiceSpec(
            id=SLOW,
            url=f"{registry.url}/langsam",
            openapi_url=None,
            allowed=(GEWERBEAMT,),
            timeout_seconds=SLOW_SECONDS * 5,
        )
    )
    net.write_configs(
        parameters=TrustParameters(timestamping_interval_seconds=3600),
        globalconf_refresh_seconds=3600,
    )
    net.start_trust()
    try:
        yield net
    finally:
        net.stop()


def _lippstadt(net: LocalNet, log: Path) -> NodeConfig:
    """Lippstadt's node.toml, with a log of the test's own."""
    config = load_config(net.nodes[LIPPSTADT.ags].config)
    return config.model_copy(update={"node": config.node.model_copy(update={"messagelog": log})})


async def _call(
    http: httpx.AsyncClient, soest: Node, client: SubsystemId, service: ServiceId = SERVICE
) -> httpx.Response:
    assert soest.endpoints is not None
    return await http.get(
        f"{soest.endpoints.consumer_url}/r1/{service}/personen",
        params={"familienname": "Schmidt"},
        headers={"X-Road-Client": str(client)},
    )


def _denied(reply: httpx.Response) -> bool:
    return bool(reply.headers.get("X-Road-Error") == Code.SP_ACCESS_DENIED.value)


def _grant(client: SubsystemId, service: ServiceId = SERVICE) -> mutations.SettingsChange:
    return lambda s: mutations.grant_access(s, str(service), client=str(client))


def _revoke(client: SubsystemId, service: ServiceId = SERVICE) -> mutations.SettingsChange:
    return lambda s: mutations.revoke_access(s, str(service), client=str(client))


def _revoke_all(client: SubsystemId, service: ServiceId) -> mutations.SettingsChange:
    return lambda s: mutations.revoke_all_access(s, str(service), client=str(client))


async def _grant_in_force_for_the_next_exchange(net: LocalNet, log: Path) -> None:
    lipp = Node(_lippstadt(net, log))
    soest = Node(load_config(net.nodes[SOEST.ags].config))
    await lipp.start()
    await soest.start()
    try:
        # The first start recorded node.toml's settings as version 1.
        bootstrap = lipp.log.store.admin_records()
        assert [(r.record.actor, r.record.action) for r in bootstrap] == [
            ("bootstrap", "settings.bootstrap")
        ]
        assert lipp.settings.current.version == 1
        async with httpx.AsyncClient(timeout=30) as http:
            assert _denied(await _call(http, soest, ORDNUNGSAMT))
            result = await lipp.settings.change(
                actor=ADMIN,
                role=ApiRole.SERVICE_ADMINISTRATOR,
                action="access.grant",
                target=str(SERVICE),
                mutate=_grant(ORDNUNGSAMT),
            )
            # Durable before it is in force: the record and the version are in the log.
            stored = lipp.log.store.latest_settings()
            assert stored is not None and stored.version == result.version == 2
            assert stored.entry_id == result.entry_id
            assert result.before == {}
            assert result.after == {
                "access": [{"service": str(SERVICE), "client": str(ORDNUNGSAMT)}]
            }
            records = lipp.log.store.admin_records()
            assert [(r.record.actor, r.record.role, r.record.action) for r in records[1:]] == [
                (ADMIN, "service_administrator", "access.grant")
            ]
            # In force for the very next exchange, with no restart.
            reply = await _call(http, soest, ORDNUNGSAMT)
            assert reply.status_code == 200, reply.text
            assert lipp.endpoints is not None and lipp.endpoints.metrics_url is not None
            metrics = (await http.get(f"{lipp.endpoints.metrics_url}/metrics")).text
            assert "\ngateway_settings_version 2.0\n" in metrics

            # Concurrent changes are serialised: each gets its own version, none is lost.
            first, second = await asyncio.gather(
                lipp.settings.change(
                    actor=ADMIN,
                    role=ApiRole.SERVICE_ADMINISTRATOR,
                    action="access.revoke",
                    target=str(SERVICE),
                    mutate=_revoke(ORDNUNGSAMT),
                ),
                lipp.settings.change(
                    actor=ADMIN,
                    role=ApiRole.SERVICE_ADMINISTRATOR,
                    action="access.grant",
                    target=str(SLOW),
                    mutate=_grant(ORDNUNGSAMT, SLOW),
                ),
            )
            assert {first.version, second.version} == {3, 4}
            assert _denied(await _call(http, soest, ORDNUNGSAMT))
            assert lipp.settings.current.settings.policy().grants_for(
                ORDNUNGSAMT, frozenset(), SLOW
            )

            # A refused change changes nothing and records nothing.
            with pytest.raises(SettingsError) as refused:
                await lipp.settings.change(
                    actor=ADMIN,
                    role=ApiRole.SERVICE_ADMINISTRATOR,
                    action="access.revoke",
                    target=str(SERVICE),
                    mutate=_revoke(ORDNUNGSAMT),
                )
            assert refused.value.code is SettingsCode.UNKNOWN_ACCESS
            assert lipp.settings.current.version == 4
            assert len(lipp.log.store.admin_records()) == 4

            # A timeout of 2.5 s: the signed record carries it as text (no floats in
            # canonical JSON), the settings document and the service as the number.
            timed = await lipp.settings.change(
                actor=ADMIN,
                role=ApiRole.SERVICE_ADMINISTRATOR,
                action="service.update",
                target=str(SERVICE),
                mutate=lambda s: mutations.set_service_timeout(s, str(SERVICE), 2.5),
            )
            assert [s["timeout_seconds"] for s in timed.before["services"]] == [10]
            assert [s["timeout_seconds"] for s in timed.after["services"]] == [2.5]
            record = lipp.log.store.admin_records()[-1].record
            assert isinstance(record.after, dict)
            assert [s["timeout_seconds"] for s in record.after["services"]] == ["2.5"]
            assert lipp.settings.current.services[SERVICE].timeout_seconds == 2.5
            reply = await _call(http, soest, GEWERBEAMT)
            assert reply.status_code == 200, reply.text

            # Another process of a node cluster records a version this one has not
            # taken up yet (written here straight into the shared log). A change made
            # here on the older version is made again on top of it: nothing is undone.
            behind = lipp.settings.current
            theirs = mutations.grant_access(behind.settings, str(SERVICE), client=str(ORDNUNGSAMT))
            record = AdminRecord(
                at=lipp.context.clock.now(),
                actor="key:k2:other-process",
                role=ApiRole.SERVICE_ADMINISTRATOR,
                action="access.grant",
                target=str(SERVICE),
                before=None,
                after={"access": [{"service": str(SERVICE), "client": str(ORDNUNGSAMT)}]},
            )
            signer = lipp.context.signers[lipp.id.owner]
            await lipp.log.append_admin(record, signer, theirs.to_json(), base=behind.version)
            assert lipp.settings.current is behind
            ours = await lipp.settings.change(
                actor=ADMIN,
                role=ApiRole.SERVICE_ADMINISTRATOR,
                action="access.revoke",
                target=str(SLOW),
                mutate=_revoke(ORDNUNGSAMT, SLOW),
            )
            assert ours.version == behind.version + 2
            policy = lipp.settings.current.settings.policy()
            assert policy.grants_for(ORDNUNGSAMT, frozenset(), SERVICE)  # theirs, kept
            assert not policy.grants_for(ORDNUNGSAMT, frozenset(), SLOW)  # ours
            stored = lipp.log.store.latest_settings()
            assert stored is not None and stored.version == ours.version
            reply = await _call(http, soest, ORDNUNGSAMT)
            assert reply.status_code == 200, reply.text
    finally:
        await soest.stop()
        await lipp.stop()


def test_a_grant_is_in_force_for_the_next_exchange(snet: LocalNet, tmp_path: Path) -> None:
    asyncio.run(_grant_in_force_for_the_next_exchange(snet, tmp_path / "lipp.sqlite"))


async def _takes_up_the_versions_of_other_processes(net: LocalNet, url: str) -> None:
    config = _lippstadt(net, Path("unused"))
    node = config.node.model_copy(
        update={"messagelog": None, "database_url": url, "settings_poll_seconds": 3600}
    )
    lipp = Node(config.model_copy(update={"node": node}))
    await lipp.start()
    try:
        ready = Health(lipp.context)
        start = lipp.settings.current
        signer = lipp.context.signers[lipp.id.owner]

        async def record_elsewhere(document: bytes, base: int) -> None:
            """What another process of the cluster records: this process's manager does
            not see it, only its follower can (a poll is an hour away: by NOTIFY)."""
            record = AdminRecord(
                at=lipp.context.clock.now(),
                actor="key:k2:other-process",
                role=ApiRole.SERVICE_ADMINISTRATOR,
                action="access.grant",
                target=str(SERVICE),
                before=None,
                after={"access": [{"service": str(SERVICE), "client": str(ORDNUNGSAMT)}]},
            )
            await lipp.log.append_admin(record, signer, document, base=base)

        async def until(condition: Callable[[], bool], what: str) -> None:
            for _ in range(300):
                if condition():
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"gave up waiting for {what}")

        theirs = mutations.grant_access(start.settings, str(SERVICE), client=str(ORDNUNGSAMT))
        await record_elsewhere(theirs.to_json(), start.version)
        await until(lambda: lipp.settings.current.version == start.version + 1, "their grant")
        assert lipp.settings.current.settings == theirs
        assert lipp.settings.current.policy.grants_for(ORDNUNGSAMT, frozenset(), SERVICE)
        assert ready.settings().ok

        # A version this process cannot use: it keeps the one it has and is not ready.
        await record_elsewhere(b'{"clients": 1}', start.version + 1)
        await until(lambda: not ready.settings().ok, "readiness to fail")
        assert f"settings version {start.version + 2}" in ready.settings().detail
        assert lipp.settings.current.settings == theirs

        # A usable one on top: in force, ready again; an older one is never taken up.
        await record_elsewhere(start.settings.to_json(), start.version + 2)
        await until(lambda: lipp.settings.current.version == start.version + 3, "the next")
        assert ready.settings().ok
        assert lipp.settings.current.settings == start.settings
        older = lipp.log.store.latest_settings()
        assert older is not None
        old = dataclasses.replace(older, version=start.version + 1, document=theirs.to_json())
        assert not await lipp.settings.adopt(old)
        assert lipp.settings.current.version == start.version + 3
    finally:
        await lipp.stop()


def test_a_process_takes_up_the_versions_other_processes_record(
    snet: LocalNet, pg_cluster: PgCluster
) -> None:
    asyncio.run(_takes_up_the_versions_of_other_processes(snet, pg_cluster.fresh_database()))


async def _unrecorded_change_not_in_force(net: LocalNet, log: Path) -> None:
    node = Node(_lippstadt(net, log))  # built, its log not started: nothing can be recorded
    try:
        before = node.settings.current
        with pytest.raises(SettingsError) as refused:
            await node.settings.change(
                actor=ADMIN,
                role=ApiRole.SERVICE_ADMINISTRATOR,
                action="access.grant",
                target=str(SERVICE),
                mutate=_grant(ORDNUNGSAMT),
            )
        assert refused.value.code is SettingsCode.PERSIST_FAILED
        assert node.settings.current is before
        assert not before.policy.grants_for(ORDNUNGSAMT, frozenset(), SERVICE)
    finally:
        await node.log.close()


def test_a_change_the_log_cannot_record_is_not_in_force(snet: LocalNet, tmp_path: Path) -> None:
    asyncio.run(_unrecorded_change_not_in_force(snet, tmp_path / "lipp.sqlite"))


async def _revoke_during_exchanges(net: LocalNet, log: Path, registry: RecordingRegistry) -> None:
    lipp = Node(_lippstadt(net, log))
    soest = Node(load_config(net.nodes[SOEST.ags].config))
    await lipp.start()
    await soest.start()
    try:
        async with httpx.AsyncClient(timeout=60) as http:

            def waiting() -> int:
                with registry.lock:
                    return sum("/langsam" in call.path for call in registry.calls)

            before = waiting()
            # Exchanges admitted and waiting for the (slow) registry ...
            slow = [asyncio.create_task(_call(http, soest, GEWERBEAMT, SLOW)) for _ in range(4)]
            # ... and a stream of quick ones, admitted before or after the revoke.
            quick: list[asyncio.Task[httpx.Response]] = []
            while waiting() < before + len(slow):
                quick.append(asyncio.create_task(_call(http, soest, GEWERBEAMT)))
                await asyncio.sleep(0.02)
            for service in (SLOW, SERVICE):
                await lipp.settings.change(
                    actor=ADMIN,
                    role=ApiRole.SERVICE_ADMINISTRATOR,
                    action="access.revoke",
                    target=str(service),
                    mutate=_revoke_all(GEWERBEAMT, service),
                )
            quick += [asyncio.create_task(_call(http, soest, GEWERBEAMT)) for _ in range(4)]
            replies = await asyncio.gather(*slow, *quick)
            # Every exchange admitted before the revoke succeeded; the others were refused
            # at admission with access_denied, and nothing failed in any other way.
            for reply in replies[: len(slow)]:
                assert reply.status_code == 200, reply.text
                assert reply.json() == {"ergebnis": "zu spaet"}
            outcomes = [r.status_code == 200 or _denied(r) for r in replies]
            assert all(outcomes), [
                r.text for r in replies if not (r.status_code == 200 or _denied(r))
            ]
            assert all(_denied(r) for r in replies[-4:])
            assert _denied(await _call(http, soest, GEWERBEAMT, SLOW))
    finally:
        await soest.stop()
        await lipp.stop()


def test_a_revoke_never_fails_an_admitted_exchange(
    snet: LocalNet, registry: RecordingRegistry, tmp_path: Path
) -> None:
    asyncio.run(_revoke_during_exchanges(snet, tmp_path / "lipp.sqlite", registry))


async def _restart_keeps_the_log_settings(
    net: LocalNet, log: Path, caplog: pytest.LogCaptureFixture
) -> None:
    soest = Node(load_config(net.nodes[SOEST.ags].config))
    lipp = Node(_lippstadt(net, log))
    await lipp.start()
    await soest.start()
    try:
        await lipp.settings.change(
            actor=ADMIN,
            role=ApiRole.SERVICE_ADMINISTRATOR,
            action="access.grant",
            target=str(SERVICE),
            mutate=_grant(ORDNUNGSAMT),
        )
        await lipp.stop()
        # node.toml (unchanged: without Ordnungsamt's right) now differs from the log.
        with caplog.at_level(logging.INFO, logger="gateway.node"):
            lipp = Node(_lippstadt(net, log))
        assert "settings version 2 from the log" in caplog.text
        assert "differ from the settings in force" in caplog.text
        await lipp.start()
        assert lipp.settings.current.version == 2
        assert len(lipp.log.store.admin_records()) == 2  # no second bootstrap
        async with httpx.AsyncClient(timeout=30) as http:
            reply = await _call(http, soest, ORDNUNGSAMT)
            assert reply.status_code == 200, reply.text
    finally:
        await soest.stop()
        await lipp.stop()


def test_settings_survive_a_restart_though_node_toml_differs(
    snet: LocalNet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(_restart_keeps_the_log_settings(snet, tmp_path / "lipp.sqlite", caplog))


def test_export_diff_and_import_on_a_stopped_node(
    snet: LocalNet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A copy of node.toml next to the original's files, with the test's own log.
    log = tmp_path / "lipp.sqlite"
    original = snet.nodes[LIPPSTADT.ags].config
    text = original.read_text("utf-8")
    assert 'messagelog = "messagelog.sqlite"' in text
    config_path = original.parent / f"node-{tmp_path.name}.toml"
    config_path.write_text(text.replace("messagelog.sqlite", str(log)), "utf-8")

    async def start_and_stop() -> None:
        node = Node(load_config(config_path))
        await node.start()
        await node.stop()

    asyncio.run(start_and_stop())  # version 1: node.toml's settings
    main(["node", "settings", "export", "--config", str(config_path)])
    exported = capsys.readouterr().out
    assert f'client = "{GEWERBEAMT}"' in exported
    main(["node", "settings", "diff", "--config", str(config_path)])
    assert "has the settings in force (version 1)" in capsys.readouterr().out

    edited = tmp_path / "node-settings.toml"
    edited.write_text(exported.replace(f'client = "{GEWERBEAMT}"', f'client = "{ORDNUNGSAMT}"'))
    with pytest.raises(SystemExit) as differs:
        main(["node", "settings", "diff", "--config", str(config_path), "--file", str(edited)])
    assert differs.value.code == 1
    assert f"+ access: service={SERVICE}, client={ORDNUNGSAMT}" in capsys.readouterr().out

    main(["node", "settings", "import", "--config", str(config_path), str(edited)])
    out = capsys.readouterr().out
    assert f"- access: service={SERVICE}, client={GEWERBEAMT}" in out
    assert "settings version 2 recorded" in out

    async def exchange_both() -> tuple[httpx.Response, httpx.Response]:
        lipp = Node(load_config(config_path))
        soest = Node(load_config(snet.nodes[SOEST.ags].config))
        await lipp.start()
        await soest.start()
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                return (
                    await _call(http, soest, GEWERBEAMT),
                    await _call(http, soest, ORDNUNGSAMT),
                )
        finally:
            await soest.stop()
            await lipp.stop()

    gewerbeamt, ordnungsamt = asyncio.run(exchange_both())
    assert _denied(gewerbeamt)
    assert ordnungsamt.status_code == 200, ordnungsamt.text

    # While something answers on the node's peer port, import refuses: one log, one writer.
    peer = load_config(config_path).node.peer_listen
    host, _, port = peer.rpartition(":")
    with socket.create_server((host, int(port))), pytest.raises(ValueError, match="is running"):
        main(
            [
                "--verbose",
                "node",
                "settings",
                "import",
                "--config",
                str(config_path),
                str(edited),
            ]
        )

    bad = tmp_path / "bad.toml"
    bad.write_text("[[acess]]\nservice = 'x'\n", "utf-8")
    with pytest.raises(SettingsError, match="unknown section"):
        main(["--verbose", "node", "settings", "import", "--config", str(config_path), str(bad)])
