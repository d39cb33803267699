"""services: `parameters_schema`; schedules (`service_schedule`), the occurrences the
dispatcher started (`service_schedule_occurrence`), and the schedule of a logged run

Existing services have no schema (they take any parameters, as before) and existing runs
no schedule.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("service", sa.Column("parameters_schema", sa.JSON(), nullable=True))
    op.create_table(
        "service_schedule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("parameter_set_id", sa.Integer(), nullable=True),
        sa.Column("cron", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "time_created",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("time_updated", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["service.id"],
            name=op.f("fk_service_schedule_service_id_service"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parameter_set_id"],
            ["service_parameter_set.id"],
            name=op.f("fk_service_schedule_parameter_set_id_service_parameter_set"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_schedule")),
        sa.UniqueConstraint("service_id", "name", name=op.f("uq_service_schedule_service_id_name")),
    )
    op.create_index(
        op.f("ix_service_schedule_parameter_set_id"), "service_schedule", ["parameter_set_id"]
    )
    op.add_column("service_run_log", sa.Column("schedule_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_service_run_log_schedule_id_service_schedule"),
        "service_run_log",
        "service_schedule",
        ["schedule_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(op.f("ix_service_run_log_schedule_id"), "service_run_log", ["schedule_id"])
    op.create_table(
        "service_schedule_occurrence",
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("occurrence", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column(
            "time_created",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["service_schedule.id"],
            name=op.f("fk_service_schedule_occurrence_schedule_id_service_schedule"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["service_run_log.id"],
            name=op.f("fk_service_schedule_occurrence_run_id_service_run_log"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint(
            "schedule_id", "occurrence", name=op.f("pk_service_schedule_occurrence")
        ),
    )
    op.create_index(
        op.f("ix_service_schedule_occurrence_run_id"), "service_schedule_occurrence", ["run_id"]
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_service_schedule_occurrence_run_id"), table_name="service_schedule_occurrence"
    )
    op.drop_table("service_schedule_occurrence")
    op.drop_index(op.f("ix_service_run_log_schedule_id"), table_name="service_run_log")
    op.drop_constraint(
        op.f("fk_service_run_log_schedule_id_service_schedule"),
        "service_run_log",
        type_="foreignkey",
    )
    op.drop_column("service_run_log", "schedule_id")
    op.drop_index(op.f("ix_service_schedule_parameter_set_id"), table_name="service_schedule")
    op.drop_table("service_schedule")
    op.drop_column("service", "parameters_schema")
