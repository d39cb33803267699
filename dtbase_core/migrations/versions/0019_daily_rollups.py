"""Daily rollups of the numeric readings, beside the hourly ones, backfilled from them

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sensor_reading_daily",
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        sa.Column("measure_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("sum", sa.Double(), nullable=False),
        sa.Column("min", sa.Double(), nullable=False),
        sa.Column("max", sa.Double(), nullable=False),
        sa.Column("first_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_value", sa.Double(), nullable=False),
        sa.Column("last_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_value", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint(
            "sensor_id", "measure_id", "day", name=op.f("pk_sensor_reading_daily")
        ),
    )
    # UTC days of the hourly rows (date_bin from the epoch, as the writes fold them).
    op.execute(
        """
        INSERT INTO sensor_reading_daily
        SELECT sensor_id, measure_id,
               date_bin('1 day', hour, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS day,
               sum(count), sum(sum), min(min), max(max),
               min(first_timestamp), (array_agg(first_value ORDER BY first_timestamp))[1],
               max(last_timestamp), (array_agg(last_value ORDER BY last_timestamp DESC))[1]
        FROM sensor_reading_hourly
        GROUP BY sensor_id, measure_id, day
        """
    )


def downgrade() -> None:
    op.drop_table("sensor_reading_daily")
