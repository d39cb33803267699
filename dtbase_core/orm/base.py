"""Declarative base, shared column types and the two enums of DTBase's tables."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so Alembic migrations can address them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Datatype(enum.StrEnum):
    STRING = "string"
    FLOAT = "float"
    INTEGER = "integer"
    BOOLEAN = "boolean"


class HttpMethod(enum.StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    DELETE = "DELETE"


DATATYPE_ENUM = sa.Enum(
    Datatype, name="value_datatype", values_callable=lambda e: [m.value for m in e]
)
HTTP_METHOD_ENUM = sa.Enum(
    HttpMethod, name="http_method", values_callable=lambda e: [m.value for m in e]
)

# The SQL column type that holds each datatype's values in the typed value tables.
VALUE_COLUMN_TYPES: dict[Datatype, sa.types.TypeEngine] = {
    Datatype.STRING: sa.Text(),
    Datatype.FLOAT: sa.Double(),
    Datatype.INTEGER: sa.BigInteger(),
    Datatype.BOOLEAN: sa.Boolean(),
}

UtcDateTime = sa.DateTime(timezone=True)


class Timestamped:
    """time_created / time_updated on every entity table, as in DTBase's tables."""

    time_created: Mapped[datetime] = mapped_column(
        UtcDateTime, server_default=sa.func.now(), nullable=False
    )
    time_updated: Mapped[datetime | None] = mapped_column(UtcDateTime, onupdate=sa.func.now())
