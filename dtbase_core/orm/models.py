"""Models: models, scenarios, measures, runs, products and typed values, as DTBase's
model tables.

Fixes (docs/api.md, Names and units together; Model runs): null scenario descriptions are
not distinct, every value table cascades from its product, and a run outlives the sensor it
compared against (the reference becomes null) instead of blocking the sensor's deletion.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import (
    DATATYPE_ENUM,
    VALUE_COLUMN_TYPES,
    Base,
    Datatype,
    Timestamped,
    UtcDateTime,
)


class Model(Timestamped, Base):
    __tablename__ = "model"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)


class ModelScenario(Timestamped, Base):
    __tablename__ = "model_scenario"
    __table_args__ = (
        sa.UniqueConstraint("model_id", "description", postgresql_nulls_not_distinct=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("model.id", ondelete="CASCADE"))
    description: Mapped[str | None] = mapped_column(sa.Text)


class ModelMeasure(Timestamped, Base):
    __tablename__ = "model_measure"
    __table_args__ = (sa.UniqueConstraint("name", "units"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    units: Mapped[str] = mapped_column(sa.String(100))
    datatype: Mapped[Datatype] = mapped_column(DATATYPE_ENUM)


class ModelRun(Base):
    __tablename__ = "model_run"
    __table_args__ = (
        sa.UniqueConstraint(
            "model_id", "scenario_id", "time_created", postgresql_nulls_not_distinct=True
        ),
        sa.Index("ix_model_run_model_id_time_created", "model_id", "time_created"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("model.id", ondelete="RESTRICT"))
    scenario_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("model_scenario.id", ondelete="RESTRICT"), index=True
    )
    # Set by the API (the run's own time), defaulting to now.
    time_created: Mapped[datetime] = mapped_column(UtcDateTime, server_default=sa.func.now())
    time_updated: Mapped[datetime | None] = mapped_column(UtcDateTime, onupdate=sa.func.now())
    sensor_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sensor.id", ondelete="SET NULL"), index=True
    )
    sensor_measure_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sensor_measure.id", ondelete="RESTRICT"), index=True
    )
    # A model's own figures about the run (ARIMA: cross-validated RMSE and MAPE); SQL
    # NULL when there are none (migration 0003).
    metrics: Mapped[dict[str, Any] | None] = mapped_column(
        sa.JSON(none_as_null=True), nullable=True
    )


class ModelProduct(Timestamped, Base):
    __tablename__ = "model_product"
    __table_args__ = (sa.UniqueConstraint("run_id", "measure_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("model_run.id", ondelete="CASCADE"))
    measure_id: Mapped[int] = mapped_column(
        sa.ForeignKey("model_measure.id", ondelete="RESTRICT"), index=True
    )


def _value_table(datatype: Datatype) -> sa.Table:
    return sa.Table(
        f"model_{datatype.value}_value",
        Base.metadata,
        sa.Column(
            "product_id",
            sa.ForeignKey("model_product.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("timestamp", UtcDateTime, primary_key=True),
        sa.Column("value", VALUE_COLUMN_TYPES[datatype], nullable=False),
    )


model_value_tables: dict[Datatype, sa.Table] = {dt: _value_table(dt) for dt in Datatype}
