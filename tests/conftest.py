"""Fixtures: one real PostgreSQL database per session (embedded, or the server named by
DT_TEST_DATABASE_URL), one local host serving it over real HTTP, and clean tables for
each test that asks for them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.support import ADMIN_PASSWORD, Api, LocalHost, TestDatabase, start_host

# Lets the tests import the function app itself (to read its routes); the hosts they
# start get their own environment (tests/support.py).
os.environ.setdefault("DT_LOCAL_MODE", "1")
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="dtbase-run-"))
os.chmod(os.environ["XDG_RUNTIME_DIR"], 0o700)


def pytest_report_header(config: pytest.Config) -> str:
    where = os.environ.get("DT_TEST_DATABASE_URL") or "embedded PostgreSQL"
    return f"dtbase test database: {where}"


@pytest.fixture(scope="session")
def database() -> Iterator[TestDatabase]:
    db = TestDatabase()
    yield db
    db.close()


@pytest.fixture(scope="session")
def host_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="dtbase-hosts-") as tmp:
        os.chmod(tmp, 0o755)
        yield Path(tmp)


@pytest.fixture(scope="session")
def live_host(database: TestDatabase, host_root: Path) -> Iterator[LocalHost]:
    host = start_host(database.url, host_root / "main")
    yield host
    host.stop()


@pytest.fixture
def host_factory(database: TestDatabase, host_root: Path) -> Iterator[Callable[..., LocalHost]]:
    """Start more hosts on the same database, with extra settings: host_factory(env={...}),
    and a log level (`log_level="debug"`).

    `mqtt_port=free_port()` starts the embedded MQTT broker. `own_database=True` gives the
    host a fresh database of its own. Hosts sharing a database share its Durable work (as
    instances of one app share a task hub), so a host whose settings change what an
    activity does (the outbound policy, the service key) needs one: another host would
    otherwise run some of its activities with its own."""
    started: list[LocalHost] = []
    owned: list[TestDatabase] = []

    def start(
        env: dict[str, str] | None = None,
        log_level: str = "warning",
        own_database: bool = False,
        mqtt_port: int = 0,
    ) -> LocalHost:
        data_dir = host_root / f"extra-{len(started)}-{os.getpid()}"
        url = database.url
        if own_database:
            owned.append(database.beside())
            url = owned[-1].url
        host = start_host(url, data_dir, env, log_level=log_level, mqtt_port=mqtt_port)
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()
    for db in owned:
        db.close()


@pytest.fixture
def clean_db(database: TestDatabase) -> TestDatabase:
    database.truncate_all()
    return database


@pytest.fixture
def admin(live_host: LocalHost, clean_db: TestDatabase) -> Iterator[Api]:
    """A client signed in as the default (admin) user, on empty tables."""
    api = Api(live_host.api, live_host.admin_email, ADMIN_PASSWORD)
    yield api
    api.close()


@pytest.fixture
def anon(live_host: LocalHost) -> Iterator[Api]:
    api = Api(live_host.api)
    yield api
    api.close()


@pytest.fixture
def sensor_per_datatype(database: TestDatabase) -> Iterator[Session]:
    """A session on a migrated, emptied database with a sensor of each datatype: sensor
    `float` of type `t-float` with measure `float`, and so on."""
    from dtbase_core import sensors
    from dtbase_core.migrations import upgrade
    from dtbase_core.orm.base import Datatype

    upgrade(database.url)
    database.truncate_all()
    with Session(database.engine) as session:
        for datatype in Datatype:
            measure = {"name": datatype.value, "units": None, "datatype": datatype.value}
            sensors.insert_sensor_type(
                session, name=f"t-{datatype.value}", description=None, measures=[measure]
            )
            sensors.insert_sensor(
                session, type_name=f"t-{datatype.value}", unique_identifier=datatype.value
            )
        session.commit()
        yield session
        session.rollback()
