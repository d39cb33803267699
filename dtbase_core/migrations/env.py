"""Alembic environment: online migrations against the configured URL.

Its own engine, without the statement and lock timeouts of dtbase_core/db.py: a migration
may rewrite big tables, and waits for another host's migration (the advisory lock).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from dtbase_core.migrations import MIGRATION_LOCK, citus, forget_retired_revisions, include_object
from dtbase_core.orm import Base

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "dtbase_core.migrations.alembic_config sets the URL"
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=Base.metadata, include_object=include_object
        )
        with context.begin_transaction():
            # Two hosts starting at once must not both run the same migration.
            connection.execute(sa.text(f"select pg_advisory_xact_lock({MIGRATION_LOCK})"))
            forget_retired_revisions(connection)
            context.run_migrations()
            # On a Citus coordinator: place the tables the revisions made (a no-op elsewhere).
            citus.distribute(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
run_migrations_online()
