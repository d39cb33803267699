"""device telemetry: the dead-letter table of messages that could not be stored

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-13 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telemetry_dead_letter",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_bytes", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_dead_letter")),
        sa.UniqueConstraint("digest", name=op.f("uq_telemetry_dead_letter_digest")),
    )
    op.create_index(
        op.f("ix_telemetry_dead_letter_received_at"), "telemetry_dead_letter", ["received_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_telemetry_dead_letter_received_at"), "telemetry_dead_letter")
    op.drop_table("telemetry_dead_letter")
