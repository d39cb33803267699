"""Alembic migrations: the only way the schema is created or changed (Part A 12)."""

from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent


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
