"""The schema comes from Alembic alone, and it matches the ORM exactly; the local host's
Durable tables have a history of their own, which a deployment never applies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from dtbase_core.migrations import alembic_config, include_object
from dtbase_core.orm import Base
from local.cli import migrate
from local.durable import migrations as durable_migrations
from tests.support import TestDatabase


def test_migrations_match_the_orm(database: TestDatabase) -> None:
    command.upgrade(alembic_config(database.url), "heads")
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


@contextmanager
def scratch_database(database: TestDatabase, suffix: str) -> Iterator[str]:
    """A database of its own beside the suite's (which stays at head); its URL."""
    url = sa.make_url(database.url)
    name = f"{database.name}_{suffix}"
    admin = sa.create_engine(
        url.set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(
        sa.make_url(url).set(drivername="postgresql+psycopg"), poolclass=sa.NullPool
    )


def _durable_tables(url: str) -> list[str]:
    engine = _engine(url)
    with engine.connect() as conn:
        names = conn.scalars(
            sa.text(
                "select tablename from pg_tables where schemaname = 'public' "
                "and tablename like 'durable%' order by tablename"
            )
        ).all()
    engine.dispose()
    return list(names)


def _versions(url: str, table: str) -> set[str]:
    engine = _engine(url)
    with engine.connect() as conn:
        found = set(conn.scalars(sa.text(f"select version_num from {table}")))
    engine.dispose()
    return found


def test_a_deployed_database_gets_no_durable_table_and_the_local_host_adds_them(
    database: TestDatabase,
) -> None:
    with scratch_database(database, "deployed") as url:
        _dtbase_migrate(url)
        assert _durable_tables(url) == []
        core_heads = _versions(url, "alembic_version")
        migrate(url)  # what dtbase-local applies
        assert _durable_tables(url) == [
            "durable_alembic_version",
            "durable_history",
            "durable_instance",
            "durable_message",
            "durable_timer_run",
            "durable_work_item",
        ]
        assert _versions(url, "alembic_version") == core_heads
        assert _versions(url, "durable_alembic_version") == {"l0003"}
        # Autogenerate, through each history's env.py, proposes nothing: core's does not
        # offer to drop the local tables, the local one not core's.
        command.check(alembic_config(url))
        command.check(durable_migrations.alembic_config(url))
        # Core's history alone runs again (dtbase-migrate on a local database) unharmed.
        _dtbase_migrate(url)
        assert len(_durable_tables(url)) == 6


def test_a_local_database_of_the_old_history_still_starts(database: TestDatabase) -> None:
    """Its durable tables came from core's retired revisions 0002 and 0002a."""
    with scratch_database(database, "old_local") as url:
        # The old layout: core at its heads plus 0002a, the tables of 0002 and 0002a, no
        # version table of their own.
        command.upgrade(alembic_config(url), "heads")
        durable_migrations.upgrade(url, "l0002")
        engine = _engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("drop table durable_alembic_version"))
            conn.execute(sa.text("insert into alembic_version values ('0002a')"))
            conn.execute(
                sa.text(
                    "insert into durable_instance values ('kept', 't', 'Running', 'e', null, "
                    "null, null, null, null, '{}', now(), now())"
                )
            )
        engine.dispose()
        migrate(url)  # dtbase-local's start-up
        heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
        assert _versions(url, "alembic_version") == heads
        assert _versions(url, "durable_alembic_version") == {"l0003"}
        engine = _engine(url)
        with engine.connect() as conn:
            kept = conn.scalar(sa.text("select status from durable_instance"))
            claims = conn.scalar(sa.text("select count(claimed_by) from durable_work_item"))
        engine.dispose()
        assert (kept, claims) == ("Running", 0)
        command.check(alembic_config(url))
        command.check(durable_migrations.alembic_config(url))


def test_a_database_at_core_0002_alone_keeps_its_core_history(database: TestDatabase) -> None:
    """Older still: 0002 was core's only head beyond 0001."""
    with scratch_database(database, "older_local") as url:
        command.upgrade(alembic_config(url), "0001")
        durable_migrations.upgrade(url, "l0001")
        engine = _engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("drop table durable_alembic_version"))
            conn.execute(sa.text("update alembic_version set version_num = '0002'"))
        engine.dispose()
        migrate(url)
        heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
        assert _versions(url, "alembic_version") == heads
        assert _versions(url, "durable_alembic_version") == {"l0003"}
        assert "durable_timer_run" in _durable_tables(url)


def _dtbase_migrate(url: str) -> None:
    """`dtbase-migrate`, the deployment's command, against `url`."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.support import ROOT

    done = subprocess.run(
        [str(Path(sys.executable).parent / "dtbase-migrate")],
        cwd=ROOT,
        env={**os.environ, "DT_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_0007_gives_logged_runs_a_status(database: TestDatabase) -> None:
    """Rows written before 0007 were all of ended runs: failed where run-service wrote its
    own status code for a call that got no reply (400, 502, 504, no JSON), else completed;
    and finished when they started."""
    with scratch_database(database, "runs") as url:
        cfg = alembic_config(url)
        command.upgrade(cfg, "0006")
        engine = _engine(url)
        rows = [(200, '{"ok": 1}'), (502, None), (504, None), (400, None), (502, '{"e": 1}')]
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "insert into service (name, url, http_method) values ('s', 'http://x/', 'GET')"
                )
            )
            for code, reply in rows:
                conn.execute(
                    sa.text(
                        "insert into service_run_log (service_id, parameters, "
                        "response_status_code, response_json, timestamp) "
                        "values (1, 'null', :code, cast(:reply as json), "
                        "'2026-01-01T00:00:00Z')"
                    ),
                    {"code": code, "reply": reply},
                )
        command.upgrade(cfg, "0007")
        with engine.connect() as conn:
            found = conn.execute(
                sa.text(
                    "select status, finished_at = timestamp, detail from service_run_log "
                    "order by id"
                )
            ).all()
            checked = conn.scalar(
                sa.text(
                    "select count(*) from pg_constraint where conname = 'ck_service_run_log_status'"
                )
            )
        assert [tuple(row) for row in found] == [
            ("completed", True, None),
            ("failed", True, None),
            ("failed", True, None),
            ("failed", True, None),
            ("completed", True, None),  # the service's own 502, with its JSON
        ]
        assert checked == 1
        with engine.connect() as conn:
            with pytest.raises(sa.exc.IntegrityError, match="ck_service_run_log_status"):
                conn.execute(sa.text("update service_run_log set status = 'lost'"))
            conn.rollback()
        command.downgrade(cfg, "0006")
        engine.dispose()


def test_nulls_are_not_distinct(database: TestDatabase) -> None:
    """A null unit is a value (docs/api.md, Names and units together), at the database
    level: a second (name, null) measure is a duplicate."""
    command.upgrade(alembic_config(database.url), "heads")
    with database.engine.connect() as conn, conn.begin() as tx:
        insert = sa.text(
            "insert into sensor_measure (name, units, datatype) "
            "values ('nulls-not-distinct', null, 'float')"  # a name no other test leaves
        )
        conn.execute(insert)
        try:
            conn.execute(insert)
            raised = False
        except sa.exc.IntegrityError:
            raised = True
        tx.rollback()
    assert raised


def test_downgrade_and_upgrade_round_trip(database: TestDatabase) -> None:
    """Runs on a scratch database: the suite's own one stays at head."""
    url = sa.make_url(database.url)
    name = database.name + "_mig"
    admin = sa.create_engine(
        url.set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    try:
        scratch_url = url.set(database=name).render_as_string(hide_password=False)
        cfg = alembic_config(scratch_url)
        command.upgrade(cfg, "heads")
        command.downgrade(cfg, "base")
        engine = sa.create_engine(
            sa.make_url(scratch_url).set(drivername="postgresql+psycopg"), poolclass=sa.NullPool
        )
        with engine.connect() as conn:
            left = conn.scalars(
                sa.text(
                    "select tablename from pg_tables where schemaname='public' "
                    "and tablename <> 'alembic_version'"
                )
            ).all()
            types = conn.scalars(
                sa.text(
                    "select typname from pg_type where typname in ('value_datatype', 'http_method')"
                )
            ).all()
        engine.dispose()
        assert left == [] and types == []
        command.upgrade(cfg, "heads")
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


def test_dtbase_migrate_command(database: TestDatabase) -> None:
    """What a deployment runs: `dtbase-migrate` against DT_DATABASE_URL."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.support import ROOT

    env = {**os.environ, "DT_DATABASE_URL": database.url}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dtbase-migrate")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "database at heads" in done.stdout
    env.pop("DT_DATABASE_URL")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dtbase-migrate")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "DT_DATABASE_URL" in done.stderr
