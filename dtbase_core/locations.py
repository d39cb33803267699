"""Locations: identifiers, schemas and coordinates (docs/api.md, Locations;
Locations respect their schema; Names and units together).

A location's coordinates are stored one row per identifier in the value table of that
identifier's datatype. Identifiers are found by (name, units), a null unit matching a null
unit. Every look-up by coordinates is confined to the location's schema and is one query
joining the value tables of the schema's identifiers.

Writers to one schema take its row lock (FOR NO KEY UPDATE) first, so two concurrent
inserts of the same coordinates cannot both pass the duplicate check; deleting a schema
takes the stronger FOR UPDATE, which waits for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dtbase_core.errors import AlreadyExists, Conflict, Invalid, NotFound
from dtbase_core.orm import (
    Datatype,
    Location,
    LocationIdentifier,
    LocationSchema,
    LocationSchemaIdentifier,
    Sensor,
    SensorLocation,
    location_value_tables,
)
from dtbase_core.values import check_same_length, check_value

# Keys that listings put beside the coordinates (list-locations, list-sensor-locations):
# an identifier with one of these names would be hidden by them.
RESERVED_IDENTIFIER_NAMES = frozenset({"id", "installation_datetime"})
SCHEMA_NAME_LENGTH = 100
IDENTIFIER_NAME_CONSTRAINT = "uq_location_identifier_name_units"


@dataclass(frozen=True)
class IdentifierSpec:
    """An identifier as a request names it."""

    name: str
    units: str | None
    datatype: Datatype


@dataclass(frozen=True)
class _Identifier:
    id: int
    name: str
    units: str | None
    datatype: Datatype

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "units": self.units, "datatype": self.datatype.value}


@dataclass(frozen=True)
class _Schema:
    id: int
    name: str
    description: str | None
    identifiers: tuple[_Identifier, ...]  # in the order they were linked

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "identifiers": [i.describe() for i in self.identifiers],
        }


def _units_text(units: str | None) -> str:
    return "no units" if units is None else f"units {units!r}"


def _specs(identifiers: Sequence[Mapping[str, Any]], field: str) -> list[IdentifierSpec]:
    """Identifier specs from a request, with their datatypes parsed and names checked."""
    specs: list[IdentifierSpec] = []
    seen: set[str] = set()
    for index, raw in enumerate(identifiers):
        name = raw["name"]
        try:
            datatype = Datatype(raw["datatype"])
        except ValueError:
            raise Invalid(
                f"{field}.{index}.datatype: {raw['datatype']!r} is not one of "
                f"{', '.join(repr(d.value) for d in Datatype)}",
                loc=("body", field, index, "datatype"),
            ) from None
        if name in RESERVED_IDENTIFIER_NAMES:
            raise Invalid(
                f"{field}.{index}.name: {name!r} is reserved (listings use it as a key)",
                loc=("body", field, index, "name"),
            )
        if name in seen:
            raise Invalid(
                f"{field}.{index}.name: identifier {name!r} is given twice",
                loc=("body", field, index, "name"),
            )
        seen.add(name)
        specs.append(IdentifierSpec(name=name, units=raw.get("units"), datatype=datatype))
    return specs


def _datatype_clash(existing: _Identifier, wanted: IdentifierSpec) -> Conflict:
    return Conflict(
        f"Location identifier '{existing.name}' ({_units_text(existing.units)}) exists "
        f"already with datatype '{existing.datatype.value}', not '{wanted.datatype.value}'"
    )


def _ensure_identifiers(session: Session, specs: Sequence[IdentifierSpec]) -> list[_Identifier]:
    """The identifiers for `specs`, created where no (name, units) match exists.

    Two queries whatever the count. An existing identifier with another datatype is a
    conflict naming it (DTBase silently ignored the datatype asked for).
    """
    if not specs:
        return []
    session.execute(
        insert(LocationIdentifier)
        .values([{"name": s.name, "units": s.units, "datatype": s.datatype} for s in specs])
        .on_conflict_do_nothing(constraint=IDENTIFIER_NAME_CONSTRAINT)
    )
    rows = session.execute(
        sa.select(
            LocationIdentifier.id,
            LocationIdentifier.name,
            LocationIdentifier.units,
            LocationIdentifier.datatype,
        ).where(LocationIdentifier.name.in_(sorted({s.name for s in specs})))
    )
    by_key = {(r.name, r.units): _Identifier(r.id, r.name, r.units, r.datatype) for r in rows}
    found = [by_key[(s.name, s.units)] for s in specs]
    for spec, identifier in zip(specs, found, strict=True):
        if identifier.datatype is not spec.datatype:
            raise _datatype_clash(identifier, spec)
    return found


def _link(session: Session, schema_id: int, identifiers: Sequence[_Identifier]) -> None:
    if identifiers:
        session.execute(
            sa.insert(LocationSchemaIdentifier).values(
                [{"schema_id": schema_id, "identifier_id": i.id} for i in identifiers]
            )
        )


def _schemas_query() -> sa.Select[*tuple[Any, ...]]:
    """Schemas with their identifiers in link order; schemas without any included."""
    return (
        sa.select(
            LocationSchema.id.label("schema_id"),
            LocationSchema.name.label("schema_name"),
            LocationSchema.description,
            LocationIdentifier.id.label("identifier_id"),
            LocationIdentifier.name,
            LocationIdentifier.units,
            LocationIdentifier.datatype,
        )
        .outerjoin(
            LocationSchemaIdentifier, LocationSchemaIdentifier.schema_id == LocationSchema.id
        )
        .outerjoin(
            LocationIdentifier, LocationIdentifier.id == LocationSchemaIdentifier.identifier_id
        )
        .order_by(LocationSchema.id, LocationSchemaIdentifier.id)
    )


def _group_schemas(rows: Any) -> list[_Schema]:
    heads: dict[int, tuple[str, str | None]] = {}
    members: dict[int, list[_Identifier]] = {}
    for row in rows:
        if row.schema_id not in heads:
            heads[row.schema_id] = (row.schema_name, row.description)
            members[row.schema_id] = []
        if row.identifier_id is not None:
            members[row.schema_id].append(
                _Identifier(row.identifier_id, row.name, row.units, row.datatype)
            )
    return [
        _Schema(schema_id, name, description, tuple(members[schema_id]))
        for schema_id, (name, description) in heads.items()
    ]


def _load_schema(session: Session, name: str, *, lock: bool = False) -> _Schema | None:
    """One schema and its identifiers in one query; `lock` takes its row lock for writers."""
    query = _schemas_query().where(LocationSchema.name == name)
    if lock:
        query = query.with_for_update(key_share=True, of=LocationSchema)
    schemas = _group_schemas(session.execute(query))
    return schemas[0] if schemas else None


def _check_coordinates(
    schema: _Schema, coordinates: Mapping[str, Any], *, partial: bool = False
) -> list[tuple[_Identifier, Any]]:
    """(identifier, value as stored) pairs in schema order, or Invalid naming the key.

    Keys must be identifiers of the schema, and (unless `partial`, as for a filter) every
    identifier must be given. Each value must fit its identifier's datatype.
    """
    by_name = {i.name: i for i in schema.identifiers}
    unknown = [key for key in coordinates if key not in by_name]
    if unknown:
        raise Invalid(
            f"coordinates: {', '.join(repr(k) for k in unknown)} "
            f"{'is not an identifier' if len(unknown) == 1 else 'are not identifiers'} "
            f"of location schema '{schema.name}'",
            loc=("body", "coordinates", unknown[0]),
        )
    if not partial:
        missing = [i.name for i in schema.identifiers if i.name not in coordinates]
        if missing:
            raise Invalid(
                f"coordinates: no value for {', '.join(repr(m) for m in missing)} "
                f"of location schema '{schema.name}'",
                loc=("body", "coordinates", missing[0]),
            )
    return [
        (i, check_value(coordinates[i.name], i.datatype, ("body", "coordinates", i.name)))
        for i in schema.identifiers
        if i.name in coordinates
    ]


def _matching(schema: _Schema, pairs: Sequence[tuple[_Identifier, Any]]) -> sa.Select[Any]:
    """Ids of the schema's locations whose coordinates include all `pairs`: one query."""
    query = sa.select(Location.id).where(Location.schema_id == schema.id)
    for n, (identifier, value) in enumerate(pairs):
        table = location_value_tables[identifier.datatype].alias(f"v{n}")
        query = query.join(
            table,
            sa.and_(
                table.c.location_id == Location.id,
                table.c.identifier_id == identifier.id,
                table.c.value == value,
            ),
        )
    return query


def _find_location(
    session: Session, schema: _Schema, coordinates: Mapping[str, Any], *, lock: bool = False
) -> int:
    query = _matching(schema, _check_coordinates(schema, coordinates))
    query = query.order_by(Location.id).limit(1)
    if lock:
        query = query.with_for_update(of=Location)
    location_id = session.scalar(query)
    if location_id is None:
        raise NotFound("Location not found")
    return location_id


def _insert_location(
    session: Session, schema: _Schema, coordinates: Mapping[str, Any], *, duplicate: str
) -> int:
    """Add a location to a schema whose row lock the caller holds."""
    pairs = _check_coordinates(schema, coordinates)
    if session.scalar(_matching(schema, pairs).limit(1)) is not None:
        raise AlreadyExists(duplicate)
    location_id = session.execute(
        sa.insert(Location).values(schema_id=schema.id).returning(Location.id)
    ).scalar_one()
    rows: dict[Datatype, list[dict[str, Any]]] = {}
    for identifier, value in pairs:
        rows.setdefault(identifier.datatype, []).append(
            {"location_id": location_id, "identifier_id": identifier.id, "value": value}
        )
    for datatype, values in rows.items():
        session.execute(location_value_tables[datatype].insert().values(values))
    return location_id


# ---------------------------------------------------------------------------------------
# The queries behind the endpoints.


def insert_location_schema(
    session: Session,
    *,
    name: str,
    description: str | None,
    identifiers: Sequence[Mapping[str, Any]],
) -> None:
    specs = _specs(identifiers, "identifiers")
    schema_id = session.execute(
        insert(LocationSchema)
        .values(name=name, description=description)
        .on_conflict_do_nothing(index_elements=[LocationSchema.name])
        .returning(LocationSchema.id)
    ).scalar()
    if schema_id is None:
        raise AlreadyExists("LocationSchema exists already")
    _link(session, schema_id, _ensure_identifiers(session, specs))


def insert_location(
    session: Session, *, identifiers: Sequence[Mapping[str, Any]], values: Sequence[Any]
) -> str:
    """Add a location given by position, in the schema named after its identifiers.

    The schema (its name and description: the identifier names sorted and joined with
    '-') is created if missing; otherwise it must have exactly these identifiers. Returns
    the schema's name.
    """
    specs = _specs(identifiers, "identifiers")
    if not specs:
        raise Invalid("identifiers: at least one identifier is needed", loc=("body", "identifiers"))
    check_same_length(specs, values, "identifiers", "values")
    checked = [
        check_value(value, spec.datatype, ("body", "values", index))
        for index, (spec, value) in enumerate(zip(specs, values, strict=True))
    ]
    name = "-".join(sorted(s.name for s in specs))
    if len(name) > SCHEMA_NAME_LENGTH:
        raise Invalid(
            f"identifiers: the schema name they make ({len(name)} characters) is longer "
            f"than {SCHEMA_NAME_LENGTH}",
            loc=("body", "identifiers"),
        )
    created = session.execute(
        insert(LocationSchema)
        .values(name=name, description=name)
        .on_conflict_do_nothing(index_elements=[LocationSchema.name])
        .returning(LocationSchema.id)
    ).scalar()
    if created is not None:
        _link(session, created, _ensure_identifiers(session, specs))
    schema = _load_schema(session, name, lock=True)
    if schema is None:  # deleted by another request since the insert above saw it
        raise Conflict(f"Location schema '{name}' was deleted meanwhile; try again")
    if created is None:
        _check_schema_identifiers(schema, specs)
    coordinates = {spec.name: value for spec, value in zip(specs, checked, strict=True)}
    _insert_location(session, schema, coordinates, duplicate="Location or schema exists already")
    return name


def _check_schema_identifiers(schema: _Schema, specs: Sequence[IdentifierSpec]) -> None:
    by_key = {(i.name, i.units): i for i in schema.identifiers}
    for spec in specs:
        existing = by_key.get((spec.name, spec.units))
        if existing is not None and existing.datatype is not spec.datatype:
            raise _datatype_clash(existing, spec)
    if set(by_key) != {(s.name, s.units) for s in specs}:
        have = ", ".join(f"'{i.name}' ({_units_text(i.units)})" for i in schema.identifiers)
        raise Conflict(
            f"Location schema '{schema.name}' exists already with other identifiers: "
            f"{have or 'none'}"
        )


def insert_location_for_schema(
    session: Session, *, schema_name: str, coordinates: Mapping[str, Any]
) -> None:
    schema = _load_schema(session, schema_name, lock=True)
    if schema is None:
        raise NotFound("Location schema does not exist")
    _insert_location(session, schema, coordinates, duplicate="Location exists already")


def list_locations(
    session: Session, *, schema_name: str, coordinates: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The schema's locations as {"id", identifier: value...}, filtered by `coordinates`.

    An unknown schema has no locations. One query for the schema, one for the locations.
    """
    schema = _load_schema(session, schema_name)
    if schema is None:
        return []
    wanted = dict(_check_coordinates(schema, coordinates or {}, partial=True))
    query = sa.select(Location.id).where(Location.schema_id == schema.id)
    for n, identifier in enumerate(schema.identifiers):
        table = location_value_tables[identifier.datatype].alias(f"c{n}")
        query = query.outerjoin(
            table,
            sa.and_(table.c.location_id == Location.id, table.c.identifier_id == identifier.id),
        ).add_columns(table.c.value)
        if identifier in wanted:
            query = query.where(table.c.value == wanted[identifier])
    listing = []
    for row in session.execute(query.order_by(Location.id)):
        location: dict[str, Any] = {"id": row[0]}
        values: tuple[Any, ...] = tuple(row[1:])
        for identifier, value in zip(schema.identifiers, values, strict=True):
            if value is not None:
                location[identifier.name] = value
        listing.append(location)
    return listing


def list_location_schemas(session: Session) -> list[dict[str, Any]]:
    """Every schema, those without identifiers too, in insertion order: one query."""
    return [schema.describe() for schema in _group_schemas(session.execute(_schemas_query()))]


def list_location_identifiers(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        sa.select(
            LocationIdentifier.name, LocationIdentifier.units, LocationIdentifier.datatype
        ).order_by(LocationIdentifier.id)
    )
    return [{"name": r.name, "units": r.units, "datatype": r.datatype.value} for r in rows]


def get_schema_details(session: Session, *, schema_name: str) -> dict[str, Any]:
    schema = _load_schema(session, schema_name)
    if schema is None:
        raise NotFound("No such schema")
    return schema.describe()


def delete_location_schema(session: Session, *, schema_name: str) -> None:
    """Delete a schema with no locations; its identifiers stay for other schemas to use."""
    schema_id = session.scalar(
        sa.select(LocationSchema.id).where(LocationSchema.name == schema_name).with_for_update()
    )
    if schema_id is None:
        raise NotFound(f"Location schema '{schema_name}' not found.")
    count = session.scalar(
        sa.select(sa.func.count()).select_from(Location).where(Location.schema_id == schema_id)
    )
    if count:
        raise Conflict(
            f"Location schema '{schema_name}' still has {count} "
            f"location{'' if count == 1 else 's'}; delete them first"
        )
    session.execute(sa.delete(LocationSchema).where(LocationSchema.id == schema_id))


def delete_location(session: Session, *, schema_name: str, coordinates: Mapping[str, Any]) -> None:
    """Delete a location that no sensor location record refers to."""
    schema = _load_schema(session, schema_name)
    if schema is None:
        raise NotFound("Location schema does not exist")
    # The row lock makes a concurrent insert-sensor-location wait for (and then fail on)
    # the delete, or the delete see its record.
    location_id = _find_location(session, schema, coordinates, lock=True)
    sensors = session.scalars(
        sa.select(Sensor.unique_identifier)
        .join(SensorLocation, SensorLocation.sensor_id == Sensor.id)
        .where(SensorLocation.location_id == location_id)
        .order_by(SensorLocation.id)
    ).all()
    if sensors:
        names = ", ".join(f"'{s}'" for s in dict.fromkeys(sensors))
        raise Conflict(
            f"Location {location_id} is used by {len(sensors)} sensor location "
            f"record{'' if len(sensors) == 1 else 's'} (sensors {names}); it cannot be deleted"
        )
    session.execute(sa.delete(Location).where(Location.id == location_id))


# ---------------------------------------------------------------------------------------
# For other areas (sensors: insert-sensor-location, list-sensor-locations).


def find_location_id(session: Session, *, schema_name: str, coordinates: dict[str, Any]) -> int:
    """The id of the schema's location at exactly these coordinates.

    Raises NotFound("Location schema does not exist") / NotFound("Location not found"),
    and Invalid (loc ("body", "coordinates", key)) for a missing, extra or mistyped key.
    """
    schema = _load_schema(session, schema_name)
    if schema is None:
        raise NotFound("Location schema does not exist")
    return _find_location(session, schema, coordinates)


def location_coordinates(session: Session, location_ids: list[int]) -> dict[int, dict[str, Any]]:
    """{location id: {identifier name: value}} for the given ids, one query per value table.

    Every id asked for is a key (an unknown id maps to {}); the coordinates of each come in
    the order of their schema's identifiers, as list-locations gives them.
    """
    ids = list(dict.fromkeys(location_ids))
    if not ids:
        return {}
    found: dict[int, list[tuple[int, str, Any]]] = {i: [] for i in ids}
    for table in location_value_tables.values():
        rows = session.execute(
            sa.select(
                table.c.location_id,
                LocationSchemaIdentifier.id,
                LocationIdentifier.name,
                table.c.value,
            )
            .join(LocationIdentifier, LocationIdentifier.id == table.c.identifier_id)
            .join(Location, Location.id == table.c.location_id)
            .outerjoin(
                LocationSchemaIdentifier,
                sa.and_(
                    LocationSchemaIdentifier.schema_id == Location.schema_id,
                    LocationSchemaIdentifier.identifier_id == table.c.identifier_id,
                ),
            )
            .where(table.c.location_id.in_(ids))
        )
        for row in rows:
            found[row[0]].append((row[1] or 0, row[2], row[3]))
    return {
        location_id: {name: value for _, name, value in sorted(values, key=lambda v: v[0])}
        for location_id, values in found.items()
    }
