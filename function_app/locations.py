"""/location: identifiers, schemas and locations (docs/api.md, Locations;
Locations respect their schema)."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from dtbase_core import locations
from dtbase_core.apikeys import Scope
from dtbase_core.roles import Role
from dtbase_core.schemas.locations import (
    CoordinatesIn,
    InsertLocationIn,
    InsertLocationSchemaIn,
    ListLocationsIn,
    LocationIdentifier,
    LocationOut,
    LocationSchemaOut,
    SchemaNameIn,
    SchemaNameOut,
)
from function_app.http import Call, endpoint

bp = func.Blueprint()


@endpoint(
    bp,
    "location/insert-location-schema",
    body=InsertLocationSchemaIn,
    status=201,
    errors={409: "LocationSchema exists already, or an identifier exists with another datatype"},
)
def insert_location_schema(call: Call[InsertLocationSchemaIn]) -> Any:
    """Create a location schema; identifiers are reused by (name, units) or created."""
    locations.insert_location_schema(call.session, **call.body.model_dump())
    return {"detail": "Location schema inserted"}


@endpoint(
    bp,
    "location/insert-location",
    body=InsertLocationIn,
    response=SchemaNameOut,
    status=201,
    errors={409: "Location or schema exists already"},
)
def insert_location(call: Call[InsertLocationIn]) -> Any:
    """Add a location to the schema named after its identifiers, creating that schema."""
    return {"schema_name": locations.insert_location(call.session, **call.body.model_dump())}


@endpoint(
    bp,
    "location/insert-location-for-schema",
    body=CoordinatesIn,
    status=201,
    errors={400: "Location schema does not exist", 409: "Location exists already"},
)
def insert_location_for_schema(call: Call[CoordinatesIn]) -> Any:
    """Add a location to a schema; `coordinates` has one value per identifier."""
    locations.insert_location_for_schema(call.session, **call.body.model_dump())
    return {"detail": "Location inserted"}


@endpoint(
    bp,
    "location/list-locations",
    body=ListLocationsIn,
    response=list[LocationOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_locations(call: Call[ListLocationsIn]) -> Any:
    """A schema's locations, optionally only those matching some coordinates."""
    return locations.list_locations(call.session, **call.body.model_dump())


@endpoint(
    bp,
    "location/list-location-schemas",
    method="GET",
    response=list[LocationSchemaOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_location_schemas(call: Call[None]) -> Any:
    """Every location schema with its identifiers, in the order they were created."""
    return locations.list_location_schemas(call.session)


@endpoint(
    bp,
    "location/list-location-identifiers",
    method="GET",
    response=list[LocationIdentifier],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_location_identifiers(call: Call[None]) -> Any:
    """Every location identifier, in the order they were created."""
    return locations.list_location_identifiers(call.session)


@endpoint(
    bp,
    "location/get-schema-details",
    body=SchemaNameIn,
    response=LocationSchemaOut,
    errors={400: "No such schema"},
    role=Role.VIEWER,
    scope=Scope.READ,
)
def get_schema_details(call: Call[SchemaNameIn]) -> Any:
    """One location schema with its identifiers."""
    return locations.get_schema_details(call.session, schema_name=call.body.schema_name)


@endpoint(
    bp,
    "location/delete-location-schema",
    body=SchemaNameIn,
    errors={400: "Location schema '<name>' not found.", 409: "The schema still has locations"},
)
def delete_location_schema(call: Call[SchemaNameIn]) -> Any:
    """Delete a location schema that has no locations left."""
    locations.delete_location_schema(call.session, schema_name=call.body.schema_name)
    return {"detail": f"Location schema '{call.body.schema_name}' has been deleted."}


@endpoint(
    bp,
    "location/delete-location",
    body=CoordinatesIn,
    errors={
        400: "Location not found, or Location schema does not exist",
        409: "The location is used by sensor location records",
    },
)
def delete_location(call: Call[CoordinatesIn]) -> Any:
    """Delete the schema's location at these coordinates, unless a sensor was placed there."""
    locations.delete_location(call.session, **call.body.model_dump())
    return {"detail": "Location deleted"}
