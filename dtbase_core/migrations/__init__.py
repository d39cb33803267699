"""Alembic migrations: the only way the schema is created or changed (docs/api.md,
Migrations and settings)."""

from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent
MIGRATION_LOCK = 7283401  # pg_advisory_xact_lock key: one migration at a time
# The local host's tables (`durable_*`) have their own history (local/durable/migrations):
# this one never creates them, and autogenerate here never proposes dropping them.
LOCAL_TABLE_PREFIX = "durable_"
# Revisions that moved to that history: a database that ran them forgets their ids here.
RETIRED = ("0002", "0002a")
BASE_REVISION = "0001"


def include_object(obj: object, name: str | None, type_: str, *args: object) -> bool:
    """What autogenerate compares: everything but the local host's tables."""
    return not (type_ == "table" and name is not None and name.startswith(LOCAL_TABLE_PREFIX))


def forget_retired_revisions(connection: sa.Connection) -> None:
    """Drop the retired ids from alembic_version; every other revision descends from
    0001, so 0001 stands in for them when nothing else is left."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return
    version = sa.table("alembic_version", sa.column("version_num"))
    current = set(connection.scalars(sa.select(version.c.version_num)))
    if not current & set(RETIRED):
        return
    connection.execute(sa.delete(version).where(version.c.version_num.in_(RETIRED)))
    if not current - set(RETIRED):
        connection.execute(sa.insert(version).values(version_num=BASE_REVISION))


def alembic_config(url: str | sa.URL) -> Config:
    from dtbase_core.db import normalise_url

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    rendered = normalise_url(url).render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def upgrade(url: str | sa.URL, revision: str = "heads") -> None:
    """Every branch to its head: areas add their migrations on branches of their own."""
    command.upgrade(alembic_config(url), revision)


def main(argv: list[str] | None = None) -> int:
    """`dtbase-migrate [revision]`: apply migrations to DT_DATABASE_URL (for deployments)."""
    from dtbase_core.config import get_settings

    args = sys.argv[1:] if argv is None else argv
    url = get_settings().database_url
    if not url:
        print("dtbase-migrate: DT_DATABASE_URL is not set", file=sys.stderr)
        return 2
    revision = args[0] if args else "heads"
    upgrade(url, revision)
    print(f"dtbase-migrate: database at {revision}")
    return 0
