"""audit log: one row per write through the API (actor, route, target, time, outcome)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint(
            "actor_kind in ('user', 'api_key', 'service')",
            name=op.f("ck_audit_event_actor_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    op.create_index(op.f("ix_audit_event_at"), "audit_event", ["at"])
    op.create_index(op.f("ix_audit_event_actor_id"), "audit_event", ["actor", "id"])
    op.create_index(op.f("ix_audit_event_route_id"), "audit_event", ["route", "id"])


def downgrade() -> None:
    op.drop_table("audit_event")
