"""Derived measures: a sensor type's measure computed from its stored measures by an
expression (dtbase_core/derived.py), never stored as readings."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import Base, Timestamped


class DerivedMeasure(Timestamped, Base):
    __tablename__ = "derived_measure"
    __table_args__ = (sa.UniqueConstraint("type_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    type_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sensor_type.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(100))
    units: Mapped[str | None] = mapped_column(sa.String(100))
    expression: Mapped[str] = mapped_column(sa.Text)
    # {"<variable>": "<name of a numeric stored measure of the type>"}
    inputs: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
