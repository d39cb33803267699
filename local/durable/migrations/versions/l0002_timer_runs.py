"""one row per timer occurrence fired, so that hosts sharing a database fire each
occurrence once (the Functions host's timers are singletons)

Core's revision 0002a until the local host's tables left core's history.

Revision ID: l0002
Revises: l0001
Create Date: 2026-11-28 12:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "l0002"
down_revision = "l0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "durable_timer_run",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scheduled_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "scheduled_time", name=op.f("pk_durable_timer_run")),
    )


def downgrade() -> None:
    op.drop_table("durable_timer_run")
