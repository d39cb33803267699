"""A slow, hung or dead database: bounded waits, prompt routes that need no database, a
bounded /health, and an embedded database restarted after it dies."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import sqlalchemy as sa

from dtbase_core.db import Timeouts, create_db_engine
from tests.support import ADMIN_PASSWORD, Api, LocalHost, TestDatabase, start_host

# Small bounds for these hosts; a DB route must answer within reply + connect (+ margin).
STATEMENT, LOCK, CONNECT, POOL = 1, 1, 2, 1
REPLY = STATEMENT + 2  # dtbase_core.db.REPLY_GRACE_SECONDS
SMALL_TIMEOUTS = {
    "DT_DB_STATEMENT_TIMEOUT_SECONDS": str(STATEMENT),
    "DT_DB_LOCK_TIMEOUT_SECONDS": str(LOCK),
    "DT_DB_CONNECT_TIMEOUT_SECONDS": str(CONNECT),
    "DT_DB_POOL_TIMEOUT_SECONDS": str(POOL),
}
SENSOR_TYPE = {"name": "t", "measures": [{"name": "m", "units": None, "datatype": "float"}]}


def timed(call: object) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    reply = call()  # type: ignore[operator]
    return reply, time.monotonic() - start


def readings_body(values: int = 1) -> dict[str, object]:
    return {
        "measure_name": "m",
        "unique_identifier": "s-1",
        "readings": [1.0] * values,
        "timestamps": [f"2024-01-01T00:00:{i:02d}Z" for i in range(values)],
    }


# --- locks and statements, on the shared test database -----------------------------------


@pytest.fixture
def sensor(admin: Api) -> Api:
    admin.ok("/sensor/insert-sensor-type", SENSOR_TYPE, 201)
    admin.ok("/sensor/insert-sensor", {"type_name": "t", "unique_identifier": "s-1"}, 201)
    return admin


def _with_sensor_locked(database: TestDatabase, api: Api) -> httpx.Response:
    """insert-sensor-readings while another transaction holds the sensor row FOR UPDATE."""
    with database.engine.connect() as conn, conn.begin():
        conn.execute(sa.text("select id from sensor where unique_identifier = 's-1' for update"))
        return api.post("/sensor/insert-sensor-readings", readings_body())


def test_a_lock_waited_for_too_long_is_a_409_naming_it(
    sensor: Api, database: TestDatabase, host_factory
) -> None:
    host = host_factory({**SMALL_TIMEOUTS, "DT_DB_STATEMENT_TIMEOUT_SECONDS": "30"})
    api = Api(host.api, host.admin_email, ADMIN_PASSWORD)
    reply, took = timed(lambda: _with_sensor_locked(database, api))
    assert reply.status_code == 409, reply.text
    assert reply.json()["detail"] == (
        "Timed out after 1 s waiting for a lock held by a concurrent write; retry"
    )
    assert took < LOCK + 2
    # Nothing was written, and the same request goes through once the lock is gone.
    assert api.ok("/sensor/insert-sensor-readings", readings_body(), 201)


def test_a_statement_running_too_long_is_a_503_naming_it(
    sensor: Api, database: TestDatabase, host_factory
) -> None:
    host = host_factory({**SMALL_TIMEOUTS, "DT_DB_LOCK_TIMEOUT_SECONDS": "30"})
    api = Api(host.api, host.admin_email, ADMIN_PASSWORD)
    reply, took = timed(lambda: _with_sensor_locked(database, api))
    assert reply.status_code == 503, reply.text
    assert reply.json()["detail"] == "Database statement timed out after 1 s"
    assert took < STATEMENT + 2


# --- a host with its own embedded database, hung or killed --------------------------------


@pytest.fixture
def own_host(host_root: Path, request: pytest.FixtureRequest) -> Iterator[LocalHost]:
    """A host with an embedded PostgreSQL of its own (DT_DATABASE_URL unset)."""
    host = start_host(None, host_root / f"own-{request.node.name}-{os.getpid()}", SMALL_TIMEOUTS)
    yield host
    host.stop()


def _server_processes(host: LocalHost) -> list[psutil.Process]:
    pid = int((host.data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    return [postmaster, *postmaster.children(recursive=True)]


def _wait_healthy(host: LocalHost, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(host.api + "/health", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"/health did not come back within {within} s:\n{host.log()}")


def test_a_hung_database_delays_no_route_beyond_its_bounds(own_host: LocalHost) -> None:
    api = Api(own_host.api, own_host.admin_email, ADMIN_PASSWORD)
    api.ok("/sensor/insert-sensor-type", SENSOR_TYPE, 201)  # pooled connections now idle
    replies: list[tuple[int, str, float]] = []

    def db_call() -> None:
        reply, took = timed(lambda: api.post("/sensor/list-sensors", {}))
        replies.append((reply.status_code, reply.text, took))

    # More database calls than the host has worker threads (min(32, cores + 4)).
    callers = [threading.Thread(target=db_call) for _ in range((os.cpu_count() or 1) + 6)]
    processes = _server_processes(own_host)
    try:
        for process in processes:
            process.send_signal(signal.SIGSTOP)
        for caller in callers:
            caller.start()
        quick = httpx.Client(base_url=own_host.api, timeout=10)
        health, took = timed(lambda: quick.get("/health"))
        assert health.status_code == 503 and took < 2.5, (health.text, took)
        assert health.json()["status"] == "unavailable"
        # The check is still stuck: the next call says so at once.
        health, took = timed(lambda: quick.get("/health"))
        assert health.status_code == 503 and took < 0.5, (health.text, took)
        # While the database calls hold every worker thread, the routes that need no
        # database answer promptly, every time.
        probes = 0
        while any(caller.is_alive() for caller in callers) or probes < 3:
            for path in ("/openapi.json", "/auth/config", "/docs", "/no-such-route"):
                reply, took = timed(lambda p=path: quick.get(p))  # type: ignore[misc]
                assert reply.status_code in (200, 404) and took < 1, (path, took)
            probes += 1
        for caller in callers:
            caller.join()
    finally:
        for process in processes:
            process.send_signal(signal.SIGCONT)
    assert probes > 3
    # Every database call was refused within the bounds: a stuck reply, then a connection
    # attempt; callers queued behind a full thread pool wait for one round of those more.
    assert len(replies) == len(callers)
    for status, text, took in replies:
        assert status == 503 and "Database unavailable: no " in text, text
        assert took < 2 * (REPLY + CONNECT) + 2, (text, took)
    _wait_healthy(own_host, within=REPLY + 5)
    assert api.post("/sensor/list-sensors", {}).json() == []


def test_a_dead_embedded_database_is_restarted(own_host: LocalHost) -> None:
    api = Api(own_host.api, own_host.admin_email, ADMIN_PASSWORD)
    api.ok("/sensor/insert-sensor-type", SENSOR_TYPE, 201)
    postmaster = _server_processes(own_host)[0]
    postmaster.send_signal(signal.SIGKILL)
    postmaster.wait(5)
    _wait_healthy(own_host, within=30)
    assert _server_processes(own_host)[0].pid != postmaster.pid
    # The data survived (crash recovery), and writes work again.
    assert [t["name"] for t in api.get("/sensor/list-sensor-types").json()] == ["t"]
    api.ok("/sensor/insert-sensor", {"type_name": "t", "unique_identifier": "s-1"}, 201)


# --- stale pooled connections --------------------------------------------------------------


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text("select pg_backend_pid()")))


def _terminate(database: TestDatabase, pid: int) -> None:
    with database.engine.connect() as conn:
        # cast: Citus adds a pg_terminate_backend(bigint, bigint) of its own
        terminate = sa.text("select pg_terminate_backend(cast(:pid as int), 5000)")
        assert conn.scalar(terminate, {"pid": pid})


def test_a_pooled_connection_idle_past_the_bound_is_pinged_and_replaced(
    database: TestDatabase,
) -> None:
    engine = create_db_engine(database.url, timeouts=Timeouts(), ping_idle_seconds=0)
    try:
        first = _backend_pid(engine)
        _terminate(database, first)  # as a server restart would
        assert _backend_pid(engine) != first  # the ping found it dead: no error
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_goes_out_without_a_ping(database: TestDatabase) -> None:
    engine = create_db_engine(database.url, timeouts=Timeouts(), ping_idle_seconds=3600)
    try:
        first = _backend_pid(engine)
        _terminate(database, first)
        with pytest.raises(sa.exc.OperationalError):  # no ping: the query meets it dead
            _backend_pid(engine)
        assert _backend_pid(engine) != first  # and the pool has replaced it
    finally:
        engine.dispose()
