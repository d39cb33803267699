"""Retention: sensor_type.retention_days

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sensor_type", sa.Column("retention_days", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_sensor_type_retention_days"),  # op.f: named as is, not by the convention
        "sensor_type",
        "retention_days between 1 and 36500",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_sensor_type_retention_days"), "sensor_type", type_="check")
    op.drop_column("sensor_type", "retention_days")
