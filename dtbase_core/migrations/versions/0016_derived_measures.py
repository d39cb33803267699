"""derived measures: a sensor type's measures computed from its other measures

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "derived_measure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("units", sa.String(100), nullable=True),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column(
            "time_created",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("time_updated", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["type_id"],
            ["sensor_type.id"],
            name=op.f("fk_derived_measure_type_id_sensor_type"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_derived_measure")),
        sa.UniqueConstraint("type_id", "name", name=op.f("uq_derived_measure_type_id_name")),
    )
    op.create_index(op.f("ix_derived_measure_type_id"), "derived_measure", ["type_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_derived_measure_type_id"), "derived_measure")
    op.drop_table("derived_measure")
