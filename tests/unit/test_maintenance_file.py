"""The maintenance file every process of a node on one machine follows: one process
writes it, the others' watches take the state up; a new process starts in it; a file
that is not a record keeps the node in maintenance. Each "process" here is its own
:class:`Maintenance` and :class:`MaintenanceWatch` over the same real file."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from gateway.core.errors import Code, GatewayError
from gateway.node.maintenance import Maintenance
from gateway.node.maintenance_file import (
    WATCH_SECONDS,
    MaintenanceFile,
    MaintenanceRecord,
    MaintenanceWatch,
)

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def process(path: Path) -> MaintenanceWatch:
    """One worker's view of the node's maintenance file."""
    return MaintenanceWatch(Maintenance(), MaintenanceFile(path), lambda: NOW)


def refused(watch: MaintenanceWatch) -> bool:
    try:
        with watch.mode.admit(Code.SP_MAINTENANCE_MODE):
            return False
    except GatewayError as exc:
        assert exc.code is Code.SP_MAINTENANCE_MODE
        return True


def test_a_toggle_written_by_one_process_holds_in_every_process_and_a_new_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "maintenance.json"
    first, second = process(path), process(path)
    first.sync()
    second.sync()
    assert not refused(first) and not refused(second)

    first.file.write(MaintenanceRecord(NOW, "Umzug ins neue Rechenzentrum"))
    first.sync()
    second.sync()
    for watch in (first, second):
        assert refused(watch)
        assert (watch.mode.since, watch.mode.reason) == (NOW, "Umzug ins neue Rechenzentrum")
    assert json.loads(path.read_text("utf-8"))["since"] == "2026-03-02T09:30:00.000Z"

    restarted = process(path)  # a worker started again while the node is drained
    restarted.sync()
    assert refused(restarted) and restarted.mode.since == NOW

    second.file.clear()
    for watch in (first, second, restarted):
        watch.sync()
        assert not refused(watch) and watch.mode.since is None and watch.mode.reason == ""
    assert not path.exists()


def test_only_a_change_of_the_file_is_applied(tmp_path: Path) -> None:
    """A process's own state (set in process, as the node's tests do) stays until some
    process writes or removes the file."""
    watch = process(tmp_path / "maintenance.json")
    watch.sync()
    watch.mode.enter("in process", NOW)
    watch.sync()
    assert watch.mode.enabled
    watch.file.write(MaintenanceRecord(NOW, "Aktualisierung"))
    watch.sync()
    assert watch.mode.reason == "Aktualisierung"
    watch.file.clear()
    watch.sync()
    assert not watch.mode.enabled


def test_a_file_that_is_no_record_keeps_the_node_in_maintenance(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.json"
    path.write_text('{"since": "yesterday"}', "utf-8")
    watch = process(path)
    watch.sync()
    assert refused(watch)
    assert "cannot be read" in watch.mode.reason and str(path) in watch.mode.reason
    path.write_text(json.dumps({"since": "2026-03-02T09:30:00Z", "reason": "x"}), "utf-8")
    watch.sync()
    assert watch.mode.reason == "x"


def test_the_watch_takes_a_change_up_by_itself(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "maintenance.json"
        writer, watched = process(path), process(path)
        watched.start()
        try:
            assert not watched.mode.enabled
            writer.file.write(MaintenanceRecord(NOW, "Umzug"))
            for _ in range(int(20 / WATCH_SECONDS)):
                if watched.mode.enabled:
                    break
                await asyncio.sleep(WATCH_SECONDS / 2)
            assert watched.mode.enabled and watched.mode.reason == "Umzug"
        finally:
            await watched.stop()

    asyncio.run(scenario())


def test_toggles_of_two_processes_take_the_lock_one_after_the_other(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "maintenance.json"
        first, second = MaintenanceFile(path), MaintenanceFile(path)
        order: list[str] = []

        async def toggle(file: MaintenanceFile, name: str, hold: asyncio.Event) -> None:
            async with file.locked():
                order.append(f"{name} in")
                await hold.wait()
                order.append(f"{name} out")

        release = asyncio.Event()
        one = asyncio.create_task(toggle(first, "one", release))
        await asyncio.sleep(0.05)
        done = asyncio.Event()
        done.set()
        two = asyncio.create_task(toggle(second, "two", done))
        await asyncio.sleep(0.1)
        assert order == ["one in"]  # the second waits for the first's lock
        release.set()
        await asyncio.gather(one, two)
        assert order == ["one in", "one out", "two in", "two out"]

    asyncio.run(scenario())
