"""The local Durable runtime's tables have their own Alembic history, applied by
`dtbase-local` only: a deployed database (`dtbase-migrate`) never has them. Its versions
are kept in a table of their own, `durable_alembic_version`, beside core's."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent
VERSION_TABLE = "durable_alembic_version"


def alembic_config(url: str | sa.URL) -> Config:
    from dtbase_core.migrations import alembic_config as core_config

    cfg = core_config(url)
    cfg.set_main_option("script_location", str(HERE))
    return cfg


def upgrade(url: str | sa.URL, revision: str = "heads") -> None:
    command.upgrade(alembic_config(url), revision)
