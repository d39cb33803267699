"""notifications: channels (webhook, email), the delivery outbox and its attempts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_channel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("recipients", sa.JSON(), nullable=True),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("template", sa.Text(), nullable=True),
        sa.Column(
            "time_created", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("time_updated", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_channel")),
        sa.CheckConstraint("kind in ('webhook', 'email')", name=op.f("ck_notification_channel_kind")),
        sa.UniqueConstraint("name", name=op.f("uq_notification_channel_name")),
    )
    op.create_table(
        "notification_delivery",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "channel_id",
            sa.Integer(),
            sa.ForeignKey(
                "notification_channel.id",
                ondelete="SET NULL",
                name=op.f("fk_notification_delivery_channel_id_notification_channel"),
            ),
            nullable=True,
        ),
        sa.Column("channel_name", sa.Text(), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_delivery")),
        sa.CheckConstraint(
            "status in ('pending', 'delivered', 'dead')", name=op.f("ck_notification_delivery_status")
        ),
    )
    op.create_index(
        op.f("ix_notification_delivery_channel_id"), "notification_delivery", ["channel_id"]
    )
    op.create_index(
        op.f("ix_notification_delivery_channel_name"), "notification_delivery", ["channel_name"]
    )
    op.create_index(
        "ix_notification_delivery_due",
        "notification_delivery",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "notification_attempt",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "delivery_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "notification_delivery.id",
                ondelete="CASCADE",
                name=op.f("fk_notification_attempt_delivery_id_notification_delivery"),
            ),
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_attempt")),
    )
    op.create_index(
        op.f("ix_notification_attempt_delivery_id"), "notification_attempt", ["delivery_id"]
    )


def downgrade() -> None:
    op.drop_table("notification_attempt")
    op.drop_table("notification_delivery")
    op.drop_table("notification_channel")
