"""Assets and annotations: asset types, the asset tree with the history of its moves,
sensors attached to assets with their history, and time-ranged notes on an asset or a
sensor (docs/api.md, Assets and annotations)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import Base, Timestamped, UtcDateTime


class AssetType(Timestamped, Base):
    __tablename__ = "asset_type"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    # The Brick Schema class the type stands for, e.g. "brick:Air_Handling_Unit".
    brick_class: Mapped[str | None] = mapped_column(sa.String(200))


class Asset(Timestamped, Base):
    __tablename__ = "asset"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    type_id: Mapped[int] = mapped_column(
        sa.ForeignKey("asset_type.id", ondelete="RESTRICT"), index=True
    )
    # The current parent; asset_move keeps the earlier ones. An asset with children
    # cannot be deleted (dtbase_core/assets.py), hence RESTRICT.
    parent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("asset.id", ondelete="RESTRICT"), index=True
    )
    description: Mapped[str | None] = mapped_column(sa.Text)


class AssetMove(Base):
    """Every parent an asset had, from when: one row at creation, one per move."""

    __tablename__ = "asset_move"

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(sa.ForeignKey("asset.id", ondelete="CASCADE"), index=True)
    # Null: a root from then on, or a former parent since deleted.
    parent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("asset.id", ondelete="SET NULL"), index=True
    )
    moved_at: Mapped[datetime] = mapped_column(
        UtcDateTime, server_default=sa.func.now(), nullable=False
    )


class AssetSensor(Timestamped, Base):
    """A sensor's attachments to assets, like its location history: the row with the
    latest installation_datetime is where the sensor is now; a null asset detaches it."""

    __tablename__ = "asset_sensor"
    __table_args__ = (sa.UniqueConstraint("sensor_id", "installation_datetime"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sensor_id: Mapped[int] = mapped_column(sa.ForeignKey("sensor.id", ondelete="CASCADE"))
    asset_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("asset.id", ondelete="CASCADE"), index=True
    )
    installation_datetime: Mapped[datetime] = mapped_column(UtcDateTime)


class Annotation(Timestamped, Base):
    """A note on an asset or a sensor over [dt_from, dt_to], or at dt_from alone."""

    __tablename__ = "annotation"
    __table_args__ = (
        sa.CheckConstraint("(asset_id IS NULL) <> (sensor_id IS NULL)", name="one_target"),
        sa.CheckConstraint("dt_to IS NULL OR dt_to >= dt_from", name="ordered"),
        sa.Index("ix_annotation_asset_id_dt_from", "asset_id", "dt_from"),
        sa.Index("ix_annotation_sensor_id_dt_from", "sensor_id", "dt_from"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_id: Mapped[int | None] = mapped_column(sa.ForeignKey("asset.id", ondelete="CASCADE"))
    sensor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sensor.id", ondelete="CASCADE"))
    dt_from: Mapped[datetime] = mapped_column(UtcDateTime)
    dt_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    text: Mapped[str] = mapped_column(sa.Text)
    tags: Mapped[list[str]] = mapped_column(
        ARRAY(sa.Text), server_default=sa.text("'{}'::text[]"), nullable=False
    )
    # Who wrote it: the signed-in user's email, kept if the user is deleted later.
    author: Mapped[str] = mapped_column(sa.String(320))
