"""Test helpers: the database the suite runs against, local hosts in subprocesses, and an
authenticated HTTP client."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa

from dtbase_core.config import DEFAULT_USER_EMAIL, Settings
from dtbase_core.db import normalise_url
from dtbase_core.shards import has_citus

ROOT = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "test-admin-password"
JWT_SECRET = "test-secret-" + "x" * 40
QUIET_SCHEDULE = "0 0 0 1 1 *"


class TestDatabase:
    """A fresh database: on the server DT_TEST_DATABASE_URL names, or on an embedded one
    (or on `server_url`'s: see `beside`)."""

    __test__ = False  # not a test class, despite its name

    def __init__(self, server_url: str | None = None, join_citus: bool = True) -> None:
        self._embedded: Any = None
        self._tmp: str | None = None
        server_url = server_url or os.environ.get("DT_TEST_DATABASE_URL")
        if server_url:
            self.kind = f"server at {normalise_url(server_url).render_as_string()}"
        else:
            self._tmp = tempfile.mkdtemp(prefix="dtbase-test-")
            os.chmod(self._tmp, 0o755)
            from local.database import EmbeddedDatabase

            self._embedded = EmbeddedDatabase(Path(self._tmp))
            server_url = self._embedded.url
            self.kind = "embedded PostgreSQL"
        self.name = f"dtbase_test_{uuid.uuid4().hex[:8]}"
        self._server = normalise_url(server_url)
        with self._admin() as conn:
            self.citus_workers = citus_workers(conn)
            conn.execute(sa.text(f'create database "{self.name}"'))
        for host, port in self.citus_workers or []:
            with _autocommit(self._server.set(host=host, port=port)) as conn:
                conn.execute(sa.text(f'create database "{self.name}"'))
        self.url = self._server.set(database=self.name).render_as_string(hide_password=False)
        if self.citus_workers is not None and join_citus:
            self.join_citus_cluster()
        self.engine = sa.create_engine(
            normalise_url(self.url), connect_args={"options": "-c timezone=UTC"}
        )

    def join_citus_cluster(self) -> None:
        """Make the new database a Citus database of the server's cluster: the extension
        on every node, and the coordinator told where it and the workers are."""
        assert self.citus_workers is not None
        database = self._server.set(database=self.name)
        for host, port in self.citus_workers:
            with _autocommit(database.set(host=host, port=port)) as conn:
                conn.execute(sa.text("create extension citus"))
        with _autocommit(database) as conn:
            conn.execute(sa.text("create extension citus"))
            conn.execute(
                sa.text("select citus_set_coordinator_host(:h, :p)"),
                {"h": database.host, "p": database.port or 5432},
            )
            for host, port in self.citus_workers:
                conn.execute(sa.text("select citus_add_node(:h, :p)"), {"h": host, "p": port})

    def beside(self, join_citus: bool = True) -> TestDatabase:
        """Another fresh database on the same server (closing it leaves the server up).
        On a Citus coordinator, `join_citus=False` leaves the extension out of it until
        `join_citus_cluster()`."""
        return TestDatabase(self._server.render_as_string(hide_password=False), join_citus)

    def _admin(self) -> Any:
        return _autocommit(self._server)

    def truncate_all(self) -> None:
        """Empty every table but keep the default user (an admin); ids restart at 1."""
        for attempt in range(3):
            try:
                self._truncate_all()
                return
            except sa.exc.OperationalError as exc:
                # TRUNCATE locks its tables one by one while a running host's Durable
                # dispatcher reads some of them in another order: PostgreSQL may end one
                # of the two as a deadlock. The dispatcher retries its step; so does this.
                if not isinstance(exc.orig, psycopg.errors.DeadlockDetected) or attempt == 2:
                    raise

    def _truncate_all(self) -> None:
        with self.engine.begin() as conn:
            tables = conn.scalars(
                sa.text(
                    "select tablename from pg_tables where schemaname = 'public' "
                    "and tablename not in ('user_account') "
                    "and tablename not like '%alembic_version'"  # core's and the local host's
                )
            ).all()
            if tables:
                conn.execute(sa.text(f"truncate {', '.join(tables)} restart identity cascade"))
            conn.execute(
                sa.text("delete from user_account where email <> :e"), {"e": DEFAULT_USER_EMAIL}
            )
            # A test may have changed the default user's role.
            conn.execute(
                sa.text("update user_account set role = 'admin' where email = :e"),
                {"e": DEFAULT_USER_EMAIL},
            )

    def close(self) -> None:
        self.engine.dispose()
        for server in [self._server] + [
            self._server.set(host=host, port=port) for host, port in self.citus_workers or []
        ]:
            with _autocommit(server) as conn:
                conn.execute(sa.text(f'drop database if exists "{self.name}" with (force)'))
        if self._embedded is not None:
            self._embedded.stop()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


def _autocommit(url: sa.URL) -> Any:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    return engine.connect()


def citus_workers(admin: sa.Connection) -> list[tuple[str, int]] | None:
    """The workers of the Citus cluster whose coordinator `admin` is connected to (as
    DT_TEST_DATABASE_URL may name one: README, Citus), or None on plain PostgreSQL."""
    if not has_citus(admin):
        return None
    rows = admin.execute(
        sa.text(
            "select nodename, nodeport from pg_dist_node "
            "where groupid <> 0 and noderole = 'primary' order by nodeid"
        )
    )
    return [(host, int(port)) for host, port in rows]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalHost:
    """A `dtbase-local` process serving the API and the static site."""

    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    admin_email: str = DEFAULT_USER_EMAIL
    admin_password: str = ADMIN_PASSWORD
    env: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return self.url + "/api"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def host_environment(
    database_url: str | None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DT_")}
    env.update(
        {
            "DT_JWT_SECRET_KEY": JWT_SECRET,
            "DT_DEFAULT_USER_PASS": ADMIN_PASSWORD,
            "PYTHONUNBUFFERED": "1",
            # The app's own timers (weather ingress, daily forecast, notification outbox,
            # alert evaluation, retention) stay quiet in tests, which run them when they choose:
            # NCRONTAB cannot say "never", so midnight on the first of January.
            "DT_INGRESS_SCHEDULE": QUIET_SCHEDULE,
            "DT_FORECAST_SCHEDULE": QUIET_SCHEDULE,
            "DT_NOTIFY_SCHEDULE": QUIET_SCHEDULE,
            "DT_ALERT_SCHEDULE": QUIET_SCHEDULE,
            "DT_RETENTION_SCHEDULE": QUIET_SCHEDULE,
            # Tests that list services expect their own only; tests of the app's own
            # services turn this back on (tests/test_schedules_http.py).
            "DT_REGISTER_OWN_SERVICES": "false",
        }
    )
    if database_url:
        env["DT_DATABASE_URL"] = database_url
    env.update(extra or {})
    return env


def start_host(
    database_url: str | None,
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
    wait: bool = True,
    log_level: str = "warning",
    mqtt_port: int = 0,
) -> LocalHost:
    """`mqtt_port`: the embedded MQTT broker's, none by default (hosts start side by side)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"host-{port}.log"
    env = host_environment(database_url, extra_env)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.cli",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            log_level,
            "--mqtt-port",
            str(mqtt_port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    host = LocalHost(
        url=f"http://127.0.0.1:{port}",
        process=process,
        data_dir=data_dir,
        log_path=log_path,
        env=env,
    )
    if wait:
        wait_ready(host)
    return host


def wait_ready(host: LocalHost, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.process.poll() is not None:
            raise RuntimeError(f"local host exited early:\n{host.log()}")
        try:
            if httpx.get(host.api + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    host.stop()
    raise RuntimeError(f"local host did not become ready:\n{host.log()}")


class Api:
    """An httpx client for the API that signs in once and sends the token."""

    def __init__(self, base: str, email: str | None = None, password: str | None = None) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=120)
        self.token: str | None = None
        if email is not None:
            self.login(email, password or "")

    def login(self, email: str, password: str) -> dict[str, str]:
        reply = self.http.post("/auth/login", json={"email": email, "password": password})
        assert reply.status_code == 200, reply.text
        tokens = reply.json()
        self.token = tokens["access_token"]
        return tokens

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        merged = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        merged.update(headers or {})
        return merged

    def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        if json is not None:
            kw["json"] = json
        return self.http.post(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def ok(self, path: str, json: Any = None, status: int | None = None) -> Any:
        """POST and assert success (any 2xx, or exactly `status`); return the JSON."""
        reply = self.post(path, json)
        if status is None:
            assert 200 <= reply.status_code < 300, (path, reply.status_code, reply.text)
        else:
            assert reply.status_code == status, (path, reply.status_code, reply.text)
        return reply.json()

    def close(self) -> None:
        self.http.close()


def replace_settings(
    settings: Settings, *, services: dict[str, Any] | None = None, **changes: Any
) -> Settings:
    """A copy of `settings` with changes at the top and in the services group."""
    if services:
        changes["services"] = settings.services.model_copy(update=services)
    return settings.model_copy(update=changes)


class Receiver(ThreadingHTTPServer):
    """A service on 127.0.0.1 that answers each POST with what it received."""

    daemon_threads = True

    def __init__(self) -> None:
        receiver = self
        self.bodies: list[Any] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                receiver.bodies.append(body)
                payload = json.dumps({"received": body}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/run"
