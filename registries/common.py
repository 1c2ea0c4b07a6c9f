"""What every sample registry shares: the error and health models, the database, the lifespan.

Each registry (and the portal) is its own FastAPI app with its own SQLite file; the parts
below were identical in all of them, and keeping one copy means a change to, say, how the
engine is opened or which cache header answers carry reaches every app at once.

* :class:`Strict` is the base of every request and response model: frozen, and unknown
  fields are refused, so a client that sends more than a schema allows learns it (422)
  instead of having the surplus silently dropped.
* :func:`sqlite_engine` and :func:`disposing_lifespan`: an app owns its engine from
  :func:`create_app <registries.melderegister.app.create_app>` until its ASGI lifespan
  ends, so tests and the demo can run several registries in one process.
* :func:`add_health` registers ``GET /health`` outside the OpenAPI document, because that
  document is what the gateway publishes as the service description and a probe is not
  a service.
* :func:`load_seed` reads a registry's seed data from its package's ``data/`` directory
  through :mod:`importlib.resources`, so an installed wheel finds the files too.
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

from fastapi import FastAPI, Response
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL
from sqlalchemy.pool import PoolProxiedConnection
from sqlmodel import create_engine

__all__ = [
    "NO_STORE",
    "Clock",
    "Datum",
    "Fehler",
    "GroupCommit",
    "Health",
    "Strict",
    "add_health",
    "disposing_lifespan",
    "json_response",
    "load_seed",
    "sqlite_engine",
]

Clock = Callable[[], datetime]
"""Returns the current time (aware, UTC); injected so tests can pin "now"."""

NO_STORE: Final = {"Cache-Control": "no-store"}
"""Answers carry personal data, which must not linger in intermediary caches."""

_JSON: Final = "application/json"
_ISO_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
EARLIEST: Final = date(1900, 1, 1)
"""Dates before this are typing errors, not history a sample register could hold."""


class Strict(BaseModel):
    """Base of request and response models: immutable, and extra fields are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Fehler(Strict):
    """A refusal that is not a field validation error."""

    fehler: str
    detail: str


class Health(Strict):
    """The body of ``GET /health``."""

    status: Literal["ok"] = "ok"


def _require_iso_date(value: object) -> object:
    """Accept only ``YYYY-MM-DD`` strings; pydantic would also take epoch numbers."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError("Datum im Format YYYY-MM-DD erwartet")
    return value


def _not_before_1900(value: date) -> date:
    if value < EARLIEST:
        raise ValueError("Datum vor 1900-01-01 ist nicht plausibel")
    return value


Datum = Annotated[date, BeforeValidator(_require_iso_date), AfterValidator(_not_before_1900)]
"""A calendar date in a JSON body: ``YYYY-MM-DD`` only, and not before 1900."""


def sqlite_engine(db_path: Path) -> Engine:
    """A SQLite engine for ``db_path``, creating its directory if needed.

    ``check_same_thread`` is off because FastAPI runs sync endpoints in a thread pool; each
    request still uses its own pooled connection, never one shared across threads.

    Every connection runs in WAL mode with ``synchronous=FULL``: a commit is still on disk
    before the answer goes out (each registry's protocol of retrievals must survive a
    crash), but it costs one append and one fsync of the log instead of a rollback
    journal's create, two fsyncs and unlink, which was most of a lookup's time.
    """
    db_path.parent.mkdir(parents=True, exist_ok=True)
    url = URL.create("sqlite", database=str(db_path))
    engine = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _wal)
    return engine


def _wal(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def disposing_lifespan(
    engine: Engine,
    *,
    on_start: Callable[[], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """An ASGI lifespan that runs ``on_start``, and on shutdown ``on_stop``, then disposes.

    The engine is disposed even if ``on_stop`` fails, so a stopped app never keeps its
    SQLite file open.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if on_start is not None:
            on_start()
        try:
            yield
        finally:
            try:
                if on_stop is not None:
                    on_stop()
            finally:
                engine.dispose()

    return lifespan


def add_health(app: FastAPI) -> None:
    """Register ``GET /health``, the liveness probe of the node and the demo runner."""

    @app.get("/health", include_in_schema=False)
    def health() -> Health:
        """Liveness probe; hidden from OpenAPI because a probe is not a service."""
        return Health()


def json_response(
    body: BaseModel, status: int, headers: Mapping[str, str] | None = None
) -> Response:
    """``body`` as a JSON answer with ``Cache-Control: no-store`` and any ``headers``."""
    return Response(
        body.model_dump_json().encode(),
        status_code=status,
        media_type=_JSON,
        headers={**NO_STORE, **(headers or {})},
    )


def load_seed(package: str, name: str) -> Any:
    """The parsed JSON file ``data/<name>`` of ``package`` (e.g. ``registries.ihk``).

    Read through :mod:`importlib.resources`, so the file is found in a checkout and in an
    installed wheel alike (``pyproject.toml`` lists ``data/*.json`` as package data).
    """
    return json.loads((files(package) / "data" / name).read_text(encoding="utf-8"))


class GroupCommit:
    """One thread that runs a registry's write transactions, several to one commit.

    A lookup that protocols itself is a read, an INSERT and a durable commit; run each in
    its own thread-pool thread and every lookup pays its own fsync, plus the hand-off
    between many threads contending for SQLite's one write lock and the GIL. Here each
    job is a function of an open connection; the thread takes the jobs waiting (up to
    ``max_batch``), runs them one after another in one transaction, commits once, and
    only then hands each caller its result, so an answer never leaves before its
    protocol row is on disk. If a job raises (or the commit fails), nothing of the batch
    was committed, and each of its jobs runs again alone, so only the job that fails
    fails.

    A job gets the driver's own ``sqlite3`` connection, not SQLAlchemy's: a lookup's
    statements are plain SQL text, and SQLAlchemy's execution and result set-up around
    each cost more CPU than SQLite's running of them. Each transaction begins
    ``IMMEDIATE``: a lookup's read and its protocol row are one transaction, its write
    lock is taken at once (never an upgrade from a snapshot another writer of the file
    could have made stale), and SQLite takes its file locks once per transaction instead
    of once for the read and again for the write.

    A job alone (no other job of this group commit between arrival and answer, the
    thread idle) runs on the caller's thread instead, in its own transaction, committed
    before :meth:`run` returns: one lookup at a time then pays no hand-off to the
    thread and back, at the price of the event loop waiting for that one fsync when it
    has nothing else to do (ADR 0063). ``inline=False`` sends every job to the thread.

    The thread starts with the first job it gets (apps under test without a lifespan
    work too) and ends with :meth:`stop`, which the app's lifespan calls before
    disposing the engine.
    """

    def __init__(self, engine: Engine, *, max_batch: int = 64, inline: bool = True) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._inline = inline
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # held by whoever runs a transaction
        self._conn: PoolProxiedConnection | None = None  # open between transactions
        self._pending = 0  # jobs in run(), not yet answered

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job`` in the next transaction; return its result once it is committed."""
        self._pending += 1
        try:
            if self._inline:
                # One turn of the loop first, so that jobs which arrived together have
                # all entered before this one decides it is alone.
                await asyncio.sleep(0)
                if self._pending == 1 and not self._writing.locked():
                    result: T = self._commit([job])[0]
                    return result
            loop = asyncio.get_running_loop()
            future: asyncio.Future[T] = loop.create_future()
            self._ensure_started()
            self._jobs.put(_Job(job, loop, future))
            return await future
        finally:
            self._pending -= 1

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="registry-group-commit", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        try:
            while True:
                first = self._jobs.get()
                if first is None:
                    return
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._jobs.put(None)  # stop after this batch
                        break
                    batch.append(more)
                self._run_batch(batch)
        finally:
            with self._writing:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

    def _commit(self, works: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        """Run ``works`` in one transaction and commit it; their results.

        One connection serves every transaction, kept open between them: checking one
        out of the pool and resetting it on return, per transaction, cost more CPU than
        a lone lookup's commit. After a failure it is closed (rolling back whatever it
        held) and the next transaction starts on a fresh one.
        """
        with self._writing:
            conn = self._conn or self._engine.raw_connection()
            self._conn = None
            try:
                driver = conn.driver_connection
                assert isinstance(driver, sqlite3.Connection)
                if not driver.in_transaction:
                    driver.execute("BEGIN IMMEDIATE")
                results = [work(driver) for work in works]
                driver.commit()
            except BaseException:
                conn.close()  # back to the pool, which rolls it back
                raise
            self._conn = conn
            return results

    def _run_batch(self, batch: list[_Job[Any]]) -> None:
        try:
            results = self._commit([job.work for job in batch])
        except Exception as exc:  # nothing of the batch was committed
            if len(batch) == 1:
                job = batch[0]
                job.loop.call_soon_threadsafe(_settle, job.future, False, exc)
                return
            for job in batch:  # alone, so only the job that fails fails
                self._run_batch([job])
            return
        for job, result in zip(batch, results, strict=True):
            job.loop.call_soon_threadsafe(_settle, job.future, True, result)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Job(Generic[T]):
    work: Callable[[sqlite3.Connection], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller went away
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
