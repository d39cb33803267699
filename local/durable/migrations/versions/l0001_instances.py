"""Durable Functions instances, history, messages and work items

The local host's own tables (local/durable/store.py). Core's revision 0002 until they
left core's history; a database migrated then is stamped here (see env.py).

Revision ID: l0001
Revises:
Create Date: 2026-11-28 12:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "l0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "durable_instance",
        sa.Column("instance_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("execution_id", sa.String(length=32), nullable=False),
        sa.Column("input", sa.Text(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("custom_status", sa.Text(), nullable=True),
        sa.Column("parent_instance_id", sa.String(length=200), nullable=True),
        sa.Column("parent_task_id", sa.Integer(), nullable=True),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_updated_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_durable_instance")),
    )
    op.create_table(
        "durable_work_item",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("instance_id", sa.String(length=200), nullable=False),
        sa.Column("execution_id", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("input", sa.Text(), nullable=True),
        sa.Column("created_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_durable_work_item")),
    )
    op.create_index(
        op.f("ix_durable_work_item_instance_id"), "durable_work_item", ["instance_id"]
    )
    op.create_table(
        "durable_history",
        sa.Column("instance_id", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["durable_instance.instance_id"],
            name=op.f("fk_durable_history_instance_id_durable_instance"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", "seq", name=op.f("pk_durable_history")),
    )
    op.create_table(
        "durable_message",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("instance_id", sa.String(length=200), nullable=False),
        sa.Column("event", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("visible_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["durable_instance.instance_id"],
            name=op.f("fk_durable_message_instance_id_durable_instance"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_durable_message")),
    )
    op.create_index(op.f("ix_durable_message_instance_id"), "durable_message", ["instance_id"])
    op.create_index(op.f("ix_durable_message_visible_at"), "durable_message", ["visible_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_durable_message_visible_at"), table_name="durable_message")
    op.drop_index(op.f("ix_durable_message_instance_id"), table_name="durable_message")
    op.drop_table("durable_message")
    op.drop_table("durable_history")
    op.drop_index(op.f("ix_durable_work_item_instance_id"), table_name="durable_work_item")
    op.drop_table("durable_work_item")
    op.drop_table("durable_instance")
