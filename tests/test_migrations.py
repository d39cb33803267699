"""The schema comes from Alembic alone, and it matches the ORM exactly."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dtbase_core.migrations import alembic_config
from dtbase_core.orm import Base
from tests.support import TestDatabase


def _not_local_durable(name: str | None, type_: str, parent_names: object) -> bool:
    """The local host's Durable tables have their own metadata (local/durable_store.py,
    checked in tests/test_local_durable.py)."""
    return not (type_ == "table" and name is not None and name.startswith("durable_"))


def test_migrations_match_the_orm(database: TestDatabase) -> None:
    command.upgrade(alembic_config(database.url), "heads")
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _not_local_durable})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_nulls_are_not_distinct(database: TestDatabase) -> None:
    """Part A 3 at the database level: a second (name, null) measure is a duplicate."""
    command.upgrade(alembic_config(database.url), "heads")
    with database.engine.connect() as conn, conn.begin() as tx:
        insert = sa.text(
            "insert into sensor_measure (name, units, datatype) values ('m', null, 'float')"
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
