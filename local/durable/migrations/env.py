"""Alembic environment of the local Durable runtime's tables (local/durable/store.py)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from alembic.script import ScriptDirectory

from dtbase_core.migrations import LOCAL_TABLE_PREFIX, MIGRATION_LOCK
from local.durable.migrations import VERSION_TABLE
from local.durable.store import metadata

config = context.config

# Before they had a history of their own, these tables were core's revisions 0002 (the
# first four) and 0002a (timer runs); core forgets those ids (dtbase_core/migrations).
ADOPTED = (("durable_timer_run", "l0002"), ("durable_instance", "l0001"))


def include_object(obj: object, name: str | None, type_: str, *args: object) -> bool:
    """Autogenerate here sees the runtime's tables only, never core's."""
    return type_ != "table" or bool(name and name.startswith(LOCAL_TABLE_PREFIX))


def adopt_tables_of_the_old_history(connection: sa.Connection) -> None:
    """A database migrated when these tables were in core's history has them but no
    version table of its own: stamp it where those tables leave it."""
    inspector = sa.inspect(connection)
    if inspector.has_table(VERSION_TABLE):
        return
    for table, revision in ADOPTED:
        if inspector.has_table(table):
            context.get_context().stamp(ScriptDirectory.from_config(config), revision)
            return


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "local.durable.migrations.alembic_config sets the URL"
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=VERSION_TABLE,
            include_object=include_object,
        )
        with context.begin_transaction():
            connection.execute(sa.text(f"select pg_advisory_xact_lock({MIGRATION_LOCK})"))
            adopt_tables_of_the_old_history(connection)
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
run_migrations_online()
