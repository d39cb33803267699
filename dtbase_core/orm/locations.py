"""Locations: identifiers, schemas, locations and their typed coordinate values, as
DTBase's location tables."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import (
    DATATYPE_ENUM,
    VALUE_COLUMN_TYPES,
    Base,
    Datatype,
    Timestamped,
)


class LocationIdentifier(Timestamped, Base):
    __tablename__ = "location_identifier"
    # NULLS NOT DISTINCT: a null unit is a value like any other (docs/api.md, Names and units
    # together).
    __table_args__ = (sa.UniqueConstraint("name", "units", postgresql_nulls_not_distinct=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    units: Mapped[str | None] = mapped_column(sa.String(100))
    datatype: Mapped[Datatype] = mapped_column(DATATYPE_ENUM)


class LocationSchema(Timestamped, Base):
    __tablename__ = "location_schema"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    description: Mapped[str | None] = mapped_column(sa.Text)


class LocationSchemaIdentifier(Timestamped, Base):
    __tablename__ = "location_schema_identifier_relation"
    __table_args__ = (sa.UniqueConstraint("schema_id", "identifier_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    schema_id: Mapped[int] = mapped_column(
        sa.ForeignKey("location_schema.id", ondelete="CASCADE"), index=True
    )
    identifier_id: Mapped[int] = mapped_column(
        sa.ForeignKey("location_identifier.id", ondelete="RESTRICT"), index=True
    )


class Location(Timestamped, Base):
    __tablename__ = "location"

    id: Mapped[int] = mapped_column(primary_key=True)
    schema_id: Mapped[int] = mapped_column(
        sa.ForeignKey("location_schema.id", ondelete="RESTRICT"), index=True
    )


def _value_table(datatype: Datatype) -> sa.Table:
    name = f"location_{datatype.value}_value"
    return sa.Table(
        name,
        Base.metadata,
        sa.Column(
            "location_id",
            sa.ForeignKey("location.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "identifier_id",
            sa.ForeignKey("location_identifier.id", ondelete="RESTRICT"),
            primary_key=True,
            index=True,
        ),
        sa.Column("value", VALUE_COLUMN_TYPES[datatype], nullable=False),
    )


# One table per datatype, as DTBase stores coordinates (entity-attribute-value).
location_value_tables: dict[Datatype, sa.Table] = {dt: _value_table(dt) for dt in Datatype}
