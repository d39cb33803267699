"""alerts: rules, per-series evaluation state, alerts, their transitions, evaluation ticks

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
OPEN = "state in ('pending', 'firing', 'acknowledged')"


def upgrade() -> None:
    op.create_table(
        "alert_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("measure_name", sa.String(length=100), nullable=False),
        sa.Column("units", sa.String(length=100), nullable=True),
        sa.Column("unique_identifier", sa.String(length=100), nullable=True),
        sa.Column("type_name", sa.String(length=100), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("silenced_until", TS, nullable=True),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.Column("time_created", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("time_updated", TS, nullable=True),
        sa.CheckConstraint(
            "kind in ('threshold', 'no_data', 'rate_of_change', 'forecast_deviation')",
            name=op.f("ck_alert_rule_kind"),
        ),
        sa.CheckConstraint(
            "severity in ('info', 'warning', 'critical')", name=op.f("ck_alert_rule_severity")
        ),
        sa.CheckConstraint(
            "(unique_identifier is null) <> (type_name is null)", name=op.f("ck_alert_rule_scope")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rule")),
        sa.UniqueConstraint("name", name=op.f("uq_alert_rule_name")),
    )
    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("rule_name", sa.String(length=100), nullable=False),
        sa.Column("sensor_id", sa.Integer(), nullable=True),
        sa.Column("unique_identifier", sa.String(length=100), nullable=False),
        sa.Column("measure_name", sa.String(length=100), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("fired_at", TS, nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=320), nullable=True),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("last_value", sa.Double(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "state in ('pending', 'firing', 'acknowledged', 'resolved')",
            name=op.f("ck_alert_state"),
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["alert_rule.id"],
            name=op.f("fk_alert_rule_id_alert_rule"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["sensor_id"], ["sensor.id"], name=op.f("fk_alert_sensor_id_sensor"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
    )
    op.create_index(op.f("ix_alert_rule_id"), "alert", ["rule_id"])
    op.create_index(op.f("ix_alert_sensor_id"), "alert", ["sensor_id"])
    op.create_index("ix_alert_state_started_at", "alert", ["state", "started_at"])
    op.create_index(
        "uq_alert_open_series",
        "alert",
        ["rule_id", "sensor_id"],
        unique=True,
        postgresql_where=sa.text(OPEN),
    )
    op.create_table(
        "alert_series",
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        sa.Column("measure_id", sa.Integer(), nullable=False),
        sa.Column("watermark", TS, nullable=False),
        sa.Column("last_timestamp", TS, nullable=True),
        sa.Column("last_value", sa.Double(), nullable=True),
        sa.Column("phase", sa.String(length=8), nullable=False),
        sa.Column("since", TS, nullable=True),
        sa.Column("streak", sa.Integer(), nullable=False),
        sa.Column("watched_since", TS, nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "phase in ('ok', 'pending', 'firing')", name=op.f("ck_alert_series_phase")
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alert.id"], name=op.f("fk_alert_series_alert_id_alert"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["alert_rule.id"],
            name=op.f("fk_alert_series_rule_id_alert_rule"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sensor_id"],
            ["sensor.id"],
            name=op.f("fk_alert_series_sensor_id_sensor"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rule_id", "sensor_id", name=op.f("pk_alert_series")),
    )
    op.create_index(op.f("ix_alert_series_sensor_id"), "alert_series", ["sensor_id"])
    op.create_index(op.f("ix_alert_series_alert_id"), "alert_series", ["alert_id"])
    op.create_table(
        "alert_transition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alert.id"],
            name=op.f("fk_alert_transition_alert_id_alert"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_transition")),
    )
    op.create_index(op.f("ix_alert_transition_alert_id"), "alert_transition", ["alert_id"])
    op.create_table(
        "alert_tick",
        sa.Column("tick", TS, nullable=False),
        sa.Column("evaluated_at", TS, nullable=False),
        sa.Column("transitions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tick", name=op.f("pk_alert_tick")),
    )


def downgrade() -> None:
    op.drop_table("alert_tick")
    op.drop_table("alert_transition")
    op.drop_table("alert_series")
    op.drop_table("alert")
    op.drop_table("alert_rule")
