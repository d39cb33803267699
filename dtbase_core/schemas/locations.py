"""Bodies of /location (docs/api.md, Locations)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from dtbase_core.orm.base import Datatype
from dtbase_core.schemas.common import Body, Name, Units, Value


class LocationIdentifierIn(BaseModel):
    # `units` is required but nullable, as in DTBase (docs/api.md, Names, units and nulls).
    name: Name
    units: Units | None
    datatype: Datatype


class LocationIdentifier(BaseModel):
    name: str
    units: str | None
    datatype: Datatype


class InsertLocationSchemaIn(Body):
    name: Name
    description: str | None
    identifiers: list[LocationIdentifierIn]


class InsertLocationIn(Body):
    identifiers: list[LocationIdentifierIn] = Field(min_length=1)
    values: list[Value]


class SchemaNameIn(Body):
    schema_name: Name


class CoordinatesIn(Body):
    schema_name: Name
    coordinates: dict[str, Value]


class ListLocationsIn(Body):
    schema_name: Name
    coordinates: dict[str, Value] | None = None


class LocationSchemaOut(BaseModel):
    name: str
    description: str | None
    identifiers: list[LocationIdentifier]


class SchemaNameOut(BaseModel):
    schema_name: str


# A location as listed: {"id": <location id>, "<identifier>": value, ...}.
LocationOut = dict[str, Value]
