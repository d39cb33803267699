"""assets and annotations: asset types, the asset tree and its moves, sensors attached
to assets, annotations on an asset or a sensor

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column(
            "time_created",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("time_updated", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "asset_type",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("brick_class", sa.String(200), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_type")),
        sa.UniqueConstraint("name", name=op.f("uq_asset_type_name")),
    )
    op.create_table(
        "asset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["type_id"],
            ["asset_type.id"],
            name=op.f("fk_asset_type_id_asset_type"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["asset.id"], name=op.f("fk_asset_parent_id_asset"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset")),
        sa.UniqueConstraint("name", name=op.f("uq_asset_name")),
    )
    op.create_index(op.f("ix_asset_type_id"), "asset", ["type_id"])
    op.create_index(op.f("ix_asset_parent_id"), "asset", ["parent_id"])
    op.create_table(
        "asset_move",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column(
            "moved_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["asset.id"],
            name=op.f("fk_asset_move_asset_id_asset"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["asset.id"],
            name=op.f("fk_asset_move_parent_id_asset"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_move")),
    )
    op.create_index(op.f("ix_asset_move_asset_id"), "asset_move", ["asset_id"])
    op.create_index(op.f("ix_asset_move_parent_id"), "asset_move", ["parent_id"])
    op.create_table(
        "asset_sensor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sensor_id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=True),
        sa.Column("installation_datetime", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["sensor_id"],
            ["sensor.id"],
            name=op.f("fk_asset_sensor_sensor_id_sensor"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["asset.id"],
            name=op.f("fk_asset_sensor_asset_id_asset"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_sensor")),
        sa.UniqueConstraint(
            "sensor_id",
            "installation_datetime",
            name=op.f("uq_asset_sensor_sensor_id_installation_datetime"),
        ),
    )
    op.create_index(op.f("ix_asset_sensor_asset_id"), "asset_sensor", ["asset_id"])
    op.create_table(
        "annotation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=True),
        sa.Column("sensor_id", sa.Integer(), nullable=True),
        sa.Column("dt_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dt_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "tags",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("author", sa.String(320), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "(asset_id IS NULL) <> (sensor_id IS NULL)", name=op.f("ck_annotation_one_target")
        ),
        sa.CheckConstraint("dt_to IS NULL OR dt_to >= dt_from", name=op.f("ck_annotation_ordered")),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["asset.id"],
            name=op.f("fk_annotation_asset_id_asset"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sensor_id"],
            ["sensor.id"],
            name=op.f("fk_annotation_sensor_id_sensor"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotation")),
    )
    op.create_index("ix_annotation_asset_id_dt_from", "annotation", ["asset_id", "dt_from"])
    op.create_index("ix_annotation_sensor_id_dt_from", "annotation", ["sensor_id", "dt_from"])


def downgrade() -> None:
    op.drop_table("annotation")
    op.drop_table("asset_sensor")
    op.drop_table("asset_move")
    op.drop_table("asset")
    op.drop_table("asset_type")
