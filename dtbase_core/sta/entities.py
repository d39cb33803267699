"""The SensorThings entity sets over DTBase's tables: each a SELECT with named columns,
its properties (how a row reads as JSON, which columns a filter names), its navigation
properties (a join condition) and its ids.

Things are the assets, and the sensors attached to no asset now; a Thing's Datastreams
are those of the sensors attached to it now (docs/api.md, SensorThings API).

Ids: Sensors, ObservedProperties (measures), Locations, FeaturesOfInterest (one per
location) and HistoricalLocations (a sensor's installation) keep their integer ids. The
rest have no single-column key and get string ids: a Thing is `asset-<asset id>`, or
`sensor-<sensor id>` for a sensor attached to no asset, a Datastream
`<sensor id>-<measure id>`, an Observation `<sensor id>-<measure id>-<microseconds since
1970 UTC>`. Clients address them quoted, `Datastreams('3-7')`, as the standard says.

Navigation conditions `where(parent, target)` read `parent["column"]` and
`target.c.column`: the parent is a row (a navigation path, an $expand) or the columns of
the outer query (a $filter through a navigation property, as a correlated subquery).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from dtbase_core.orm.assets import Asset, AssetSensor, AssetType
from dtbase_core.orm.base import Datatype
from dtbase_core.orm.locations import (
    Location,
    LocationIdentifier,
    LocationSchema,
    location_value_tables,
)
from dtbase_core.orm.sensors import (
    Sensor,
    SensorLocation,
    SensorMeasure,
    SensorType,
    SensorTypeMeasure,
    reading_tables,
)
from dtbase_core.sta.errors import BadQuery, NoEntity

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ASSET_THING = "asset-"
SENSOR_THING = "sensor-"

Row = Any  # a row's mapping, or a selectable's columns


@dataclass(frozen=True)
class Prop:
    """A property: the columns it is read from and how its JSON value is made."""

    columns: tuple[str, ...]
    render: Callable[[Row], Any]
    # The column a $filter or $orderby compares; None: the property cannot be compared.
    sql: str | None = None


def plain(column: str) -> Prop:
    return Prop((column,), lambda row: row[column], column)


def constant(value: Any) -> Prop:
    return Prop((), lambda row: value, None)


@dataclass(frozen=True)
class Link:
    """A navigation property: the target set, one entity or many, and the join."""

    target: str
    many: bool
    where: Callable[[Row, Any], Any]
    # The parent's columns the condition reads.
    columns: tuple[str, ...]


@dataclass
class EntitySet:
    name: str
    singular: str
    source: Callable[[], sa.Select[*tuple[Any, ...]]]
    props: dict[str, Prop]
    links: dict[str, Link]
    # The where clause for one id (raises NoEntity for a malformed one) and the id's JSON.
    by_id: Callable[[Any, str | int], Any]
    # Columns appended to every ORDER BY, so that paging is stable.
    order: tuple[str, ...] = ("id",)
    # Columns a property compares as another kind (`result` compared with a string).
    typed: dict[tuple[str, str], str] = field(default_factory=dict)
    int_ids: bool = True

    def column(self, source: Any, path: list[str]) -> Any:
        """The SQL expression of a property path: a property of this set, or one
        through navigation properties that lead to one entity each."""
        head, *rest = path
        if not rest:
            if head == "id":
                return source.c.id
            prop = self.props.get(head)
            if prop is None or prop.sql is None:
                raise BadQuery(f"{self.name} have no property {head!r} to filter or sort by")
            return source.c[prop.sql]
        link = self.links.get(head)
        if link is None or link.many:
            raise BadQuery(f"{self.name}: {head!r} is not a navigation property to one entity")
        target = ENTITY_SETS[link.target]
        inner = target.source().subquery()
        value = target.column(inner, rest)
        return sa.select(value).where(link.where(source.c, inner)).limit(1).scalar_subquery()

    def typed_column(self, source: Any, name: str, kind: str) -> Any:
        column = self.typed.get((name, kind))
        return None if column is None else source.c[column]

    def id_json(self, row: Row) -> str | int:
        value = row["id"]
        return int(value) if self.int_ids else str(value)

    def needed_columns(self, selected: list[str] | None) -> set[str]:
        names = self.props if selected is None else [n for n in selected if n in self.props]
        columns = {"id", *self.order}
        for name in names:
            columns.update(self.props[name].columns)
        for link in self.links.values():
            columns.update(link.columns)
        return columns


def id_literal(value: str | int) -> str:
    """An id as it stands in a URL: an integer bare, a string quoted."""
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


def _int_id(text: str | int) -> int:
    try:
        return int(text)
    except ValueError:
        raise NoEntity(f"No entity with id {text!r}") from None


def _match(pattern: str, text: str | int) -> tuple[int, ...]:
    found = re.fullmatch(pattern, str(text))
    if found is None:
        raise NoEntity(f"No entity with id {text!r}")
    return tuple(int(group) for group in found.groups())


# --- shared SQL ------------------------------------------------------------------------


def asset_of_sensor(sensor_id: Any) -> Any:
    """The asset a sensor is attached to now (null: none; its latest attachment that has
    begun names no asset, or it has none)."""
    return (
        sa.select(AssetSensor.asset_id)
        .where(AssetSensor.sensor_id == sensor_id, AssetSensor.installation_datetime <= _now())
        .order_by(AssetSensor.installation_datetime.desc())
        .limit(1)
        .scalar_subquery()
    )


def thing_of_sensor(sensor_id: Any) -> Any:
    """The id of the Thing a sensor belongs to now: its asset, or itself."""
    asset = asset_of_sensor(sensor_id)
    return sa.case(
        (asset.is_(None), sa.func.concat(SENSOR_THING, sensor_id)),
        else_=sa.func.concat(ASSET_THING, asset),
    )


def location_at(sensor_id: Any, when: Any) -> Any:
    """The sensor's location at `when` (its latest installation not after it)."""
    return (
        sa.select(SensorLocation.location_id)
        .where(SensorLocation.sensor_id == sensor_id, SensorLocation.installation_datetime <= when)
        .order_by(SensorLocation.installation_datetime.desc())
        .limit(1)
        .scalar_subquery()
    )


def _coordinates() -> Any:
    """A location's coordinates as one JSON object {identifier name: value}."""
    values = sa.union_all(
        *(
            sa.select(
                table.c.location_id,
                table.c.identifier_id,
                sa.func.to_jsonb(table.c.value).label("value"),
            )
            for table in location_value_tables.values()
        )
    ).subquery()
    return (
        sa.select(sa.func.jsonb_object_agg(LocationIdentifier.name, values.c.value))
        .select_from(values)
        .join(LocationIdentifier, LocationIdentifier.id == values.c.identifier_id)
        .where(values.c.location_id == Location.id)
        .scalar_subquery()
    )


def _geojson(coordinates: dict[str, Any] | None) -> dict[str, Any]:
    """A Point where the coordinates name latitude and longitude (or x and y); otherwise
    a Feature without geometry carrying the coordinates as its properties."""
    coords = {k.lower(): v for k, v in (coordinates or {}).items()}
    for x, y in (("longitude", "latitude"), ("lon", "lat"), ("x", "y")):
        if isinstance(coords.get(x), int | float) and isinstance(coords.get(y), int | float):
            point = [coords[x], coords[y]]
            for z in ("altitude", "elevation", "z"):
                if isinstance(coords.get(z), int | float):
                    point.append(coords[z])
                    break
            return {"type": "Point", "coordinates": point}
    return {"type": "Feature", "geometry": None, "properties": coordinates or {}}


# --- entity sets -------------------------------------------------------------------------


def _things() -> sa.Select[*tuple[Any, ...]]:
    """The assets, then the sensors attached to none, in the same columns."""
    parent = aliased(Asset)
    assets = (
        sa.select(
            sa.func.concat(ASSET_THING, Asset.id).label("id"),
            Asset.id.label("asset_id"),
            sa.cast(sa.null(), sa.Integer).label("sensor_id"),
            Asset.name.label("name"),
            sa.func.coalesce(Asset.description, "").label("description"),
            AssetType.name.label("type"),
            AssetType.brick_class.label("brick_class"),
            parent.name.label("parent"),
            sa.cast(sa.null(), sa.String).label("unique_identifier"),
        )
        .join(AssetType, AssetType.id == Asset.type_id)
        .outerjoin(parent, parent.id == Asset.parent_id)
    )
    sensors = (
        sa.select(
            sa.func.concat(SENSOR_THING, Sensor.id).label("id"),
            sa.cast(sa.null(), sa.Integer).label("asset_id"),
            Sensor.id.label("sensor_id"),
            sa.func.coalesce(Sensor.name, Sensor.unique_identifier).label("name"),
            sa.func.coalesce(Sensor.notes, "").label("description"),
            SensorType.name.label("type"),
            sa.cast(sa.null(), sa.String).label("brick_class"),
            sa.cast(sa.null(), sa.String).label("parent"),
            Sensor.unique_identifier.label("unique_identifier"),
        )
        .join(SensorType, SensorType.id == Sensor.type_id)
        .where(asset_of_sensor(Sensor.id).is_(None))
    )
    union = sa.union_all(assets, sensors).subquery("things")
    return sa.select(*union.c)


def _thing_by_id(source: Any, text: str | int) -> Any:
    kind, number = _match_thing(text)
    return (source.c.asset_id if kind == ASSET_THING else source.c.sensor_id) == number


def _match_thing(text: str | int) -> tuple[str, int]:
    found = re.fullmatch(f"({ASSET_THING}|{SENSOR_THING})(\\d+)", str(text))
    if found is None:
        raise NoEntity(f"No entity with id {text!r}")
    return found.group(1), int(found.group(2))


def _thing_properties(row: Row) -> dict[str, Any]:
    if row["asset_id"] is not None:
        return {
            "asset_type": row["type"],
            "brick_class": row["brick_class"],
            "parent": row["parent"],
        }
    return {"unique_identifier": row["unique_identifier"], "sensor_type": row["type"]}


def _locations_of_thing(thing_id: Any) -> Any:
    """The current locations of the sensors that make up a Thing now."""
    return sa.select(location_at(Sensor.id, _now())).where(thing_of_sensor(Sensor.id) == thing_id)


def _things_at(location_id: Any) -> Any:
    """The Things whose sensors are at the location now."""
    return sa.select(thing_of_sensor(Sensor.id)).where(
        location_at(Sensor.id, _now()) == location_id
    )


def _sensors() -> sa.Select[*tuple[Any, ...]]:
    return sa.select(
        Sensor.id.label("id"),
        sa.func.coalesce(Sensor.name, Sensor.unique_identifier).label("name"),
        sa.func.coalesce(Sensor.notes, SensorType.description, "").label("description"),
        SensorType.name.label("sensor_type"),
        Sensor.unique_identifier.label("unique_identifier"),
    ).join(SensorType, SensorType.id == Sensor.type_id)


def _measures() -> sa.Select[*tuple[Any, ...]]:
    return sa.select(
        SensorMeasure.id.label("id"),
        SensorMeasure.name.label("name"),
        SensorMeasure.units.label("units"),
        SensorMeasure.datatype.label("datatype"),
    )


def _datastreams() -> sa.Select[*tuple[Any, ...]]:
    return (
        sa.select(
            sa.func.concat(Sensor.id, "-", SensorMeasure.id).label("id"),
            Sensor.id.label("sensor_id"),
            SensorMeasure.id.label("measure_id"),
            sa.func.concat(
                sa.func.coalesce(Sensor.name, Sensor.unique_identifier), " ", SensorMeasure.name
            ).label("name"),
            sa.func.concat(SensorMeasure.name, " of sensor ", Sensor.unique_identifier).label(
                "description"
            ),
            SensorMeasure.units.label("units"),
            sa.cast(SensorMeasure.datatype, sa.String).label("datatype"),
            thing_of_sensor(Sensor.id).label("thing_id"),
        )
        .select_from(Sensor)
        .join(SensorTypeMeasure, SensorTypeMeasure.type_id == Sensor.type_id)
        .join(SensorMeasure, SensorMeasure.id == SensorTypeMeasure.measure_id)
    )


def _datastream_by_id(source: Any, text: str | int) -> Any:
    sensor_id, measure_id = _match(r"(\d+)-(\d+)", text)
    return sa.and_(source.c.sensor_id == sensor_id, source.c.measure_id == measure_id)


OBSERVATION_TYPES = {
    "float": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
    "integer": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation",
    "boolean": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_TruthObservation",
    "string": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation",
}


def _observations() -> sa.Select[*tuple[Any, ...]]:
    """Every reading: one branch per datatype's table, numbers in `num` (booleans as
    `flag`), strings in `txt`. A condition on sensor and measure reaches each branch's
    primary key (PostgreSQL pushes it into every branch of the UNION ALL)."""
    branches = []
    for datatype, table in reading_tables.items():
        value = table.c.value
        number = {
            Datatype.FLOAT: value,
            Datatype.INTEGER: sa.cast(value, sa.Double),
        }.get(datatype, sa.null())
        branches.append(
            sa.select(
                table.c.sensor_id,
                table.c.measure_id,
                table.c.timestamp,
                sa.cast(number, sa.Double).label("num"),
                sa.cast(value if datatype is Datatype.STRING else sa.null(), sa.Text).label("txt"),
                sa.cast(value if datatype is Datatype.BOOLEAN else sa.null(), sa.Boolean).label(
                    "flag"
                ),
                sa.literal(datatype.value).label("datatype"),
            )
        )
    union = sa.union_all(*branches).subquery("readings")
    micros = sa.cast(sa.extract("epoch", union.c.timestamp) * 1_000_000, sa.BigInteger)
    return sa.select(
        sa.func.concat(union.c.sensor_id, "-", union.c.measure_id, "-", micros).label("id"),
        *union.c,
    )


def _observation_by_id(source: Any, text: str | int) -> Any:
    sensor_id, measure_id, micros = _match(r"(\d+)-(\d+)-(-?\d+)", text)
    return sa.and_(
        source.c.sensor_id == sensor_id,
        source.c.measure_id == measure_id,
        source.c.timestamp == EPOCH + timedelta(microseconds=micros),
    )


def _result(row: Row) -> Any:
    datatype = row["datatype"]
    if datatype == "string":
        return row["txt"]
    if datatype == "boolean":
        return row["flag"]
    if datatype == "integer" and row["num"] is not None:
        return int(row["num"])
    return row["num"]


def _locations() -> sa.Select[*tuple[Any, ...]]:
    return sa.select(
        Location.id.label("id"),
        sa.func.concat(LocationSchema.name, " ", Location.id).label("name"),
        sa.func.coalesce(LocationSchema.description, LocationSchema.name).label("description"),
        LocationSchema.name.label("schema"),
        _coordinates().label("coordinates"),
    ).join(LocationSchema, LocationSchema.id == Location.schema_id)


def _historical_locations() -> sa.Select[*tuple[Any, ...]]:
    return sa.select(
        SensorLocation.id.label("id"),
        SensorLocation.installation_datetime.label("time"),
        SensorLocation.sensor_id.label("sensor_id"),
        SensorLocation.location_id.label("location_id"),
        thing_of_sensor(SensorLocation.sensor_id).label("thing_id"),
    )


def _by_int_id(source: Any, text: str | int) -> Any:
    return source.c.id == _int_id(text)


def _now() -> Any:
    return sa.func.now()


GEOJSON = "application/geo+json"

ENTITY_SETS: dict[str, EntitySet] = {
    entity.name: entity
    for entity in (
        EntitySet(
            "Things",
            "Thing",
            _things,
            props={
                "name": plain("name"),
                "description": plain("description"),
                "properties": Prop(
                    ("asset_id", "type", "brick_class", "parent", "unique_identifier"),
                    _thing_properties,
                ),
            },
            links={
                "Datastreams": Link(
                    "Datastreams", True, lambda p, t: t.c.thing_id == p["id"], ("id",)
                ),
                "Locations": Link(
                    "Locations",
                    True,
                    lambda p, t: t.c.id.in_(_locations_of_thing(p["id"])),
                    ("id",),
                ),
                "HistoricalLocations": Link(
                    "HistoricalLocations", True, lambda p, t: t.c.thing_id == p["id"], ("id",)
                ),
            },
            by_id=_thing_by_id,
            int_ids=False,
        ),
        EntitySet(
            "Locations",
            "Location",
            _locations,
            props={
                "name": plain("name"),
                "description": plain("description"),
                "encodingType": constant(GEOJSON),
                "location": Prop(("coordinates",), lambda row: _geojson(row["coordinates"])),
                "properties": Prop(("schema",), lambda row: {"schema": row["schema"]}),
            },
            links={
                "Things": Link(
                    "Things", True, lambda p, t: t.c.id.in_(_things_at(p["id"])), ("id",)
                ),
                "HistoricalLocations": Link(
                    "HistoricalLocations", True, lambda p, t: t.c.location_id == p["id"], ("id",)
                ),
            },
            by_id=_by_int_id,
        ),
        EntitySet(
            "HistoricalLocations",
            "HistoricalLocation",
            _historical_locations,
            props={"time": plain("time")},
            links={
                "Thing": Link("Things", False, lambda p, t: t.c.id == p["thing_id"], ("thing_id",)),
                "Locations": Link(
                    "Locations", True, lambda p, t: t.c.id == p["location_id"], ("location_id",)
                ),
            },
            by_id=_by_int_id,
        ),
        EntitySet(
            "Sensors",
            "Sensor",
            _sensors,
            props={
                "name": plain("name"),
                "description": plain("description"),
                "encodingType": constant("text/plain"),
                "metadata": Prop(("sensor_type",), lambda row: row["sensor_type"], "sensor_type"),
                "properties": Prop(
                    ("unique_identifier", "sensor_type"),
                    lambda row: {
                        "unique_identifier": row["unique_identifier"],
                        "sensor_type": row["sensor_type"],
                    },
                ),
            },
            links={
                "Datastreams": Link(
                    "Datastreams", True, lambda p, t: t.c.sensor_id == p["id"], ("id",)
                ),
            },
            by_id=_by_int_id,
        ),
        EntitySet(
            "ObservedProperties",
            "ObservedProperty",
            _measures,
            props={
                "name": plain("name"),
                "definition": Prop(
                    ("name",), lambda row: f"urn:dtbase:measure:{row['name']}", None
                ),
                "description": Prop(
                    ("name", "units"),
                    lambda row: row["name"] + (f" ({row['units']})" if row["units"] else ""),
                    None,
                ),
                "properties": Prop(
                    ("units", "datatype"),
                    lambda row: {"units": row["units"], "datatype": str(row["datatype"])},
                ),
            },
            links={
                "Datastreams": Link(
                    "Datastreams", True, lambda p, t: t.c.measure_id == p["id"], ("id",)
                ),
            },
            by_id=_by_int_id,
        ),
        EntitySet(
            "Datastreams",
            "Datastream",
            _datastreams,
            props={
                "name": plain("name"),
                "description": plain("description"),
                "unitOfMeasurement": Prop(
                    ("units",),
                    lambda row: {
                        "name": row["units"],
                        "symbol": row["units"],
                        "definition": None,
                    },
                ),
                "observationType": Prop(
                    ("datatype",), lambda row: OBSERVATION_TYPES[row["datatype"]], None
                ),
                "properties": Prop(("datatype",), lambda row: {"datatype": row["datatype"]}),
            },
            links={
                "Thing": Link("Things", False, lambda p, t: t.c.id == p["thing_id"], ("thing_id",)),
                "Sensor": Link(
                    "Sensors", False, lambda p, t: t.c.id == p["sensor_id"], ("sensor_id",)
                ),
                "ObservedProperty": Link(
                    "ObservedProperties",
                    False,
                    lambda p, t: t.c.id == p["measure_id"],
                    ("measure_id",),
                ),
                "Observations": Link(
                    "Observations",
                    True,
                    lambda p, t: sa.and_(
                        t.c.sensor_id == p["sensor_id"], t.c.measure_id == p["measure_id"]
                    ),
                    ("sensor_id", "measure_id"),
                ),
            },
            by_id=_datastream_by_id,
            order=("sensor_id", "measure_id"),
            int_ids=False,
        ),
        EntitySet(
            "Observations",
            "Observation",
            _observations,
            props={
                "phenomenonTime": plain("timestamp"),
                "resultTime": plain("timestamp"),
                "result": Prop(("num", "txt", "flag", "datatype"), _result, "num"),
            },
            links={
                "Datastream": Link(
                    "Datastreams",
                    False,
                    lambda p, t: sa.and_(
                        t.c.sensor_id == p["sensor_id"], t.c.measure_id == p["measure_id"]
                    ),
                    ("sensor_id", "measure_id"),
                ),
                "FeatureOfInterest": Link(
                    "FeaturesOfInterest",
                    False,
                    lambda p, t: t.c.id == location_at(p["sensor_id"], p["timestamp"]),
                    ("sensor_id", "timestamp"),
                ),
            },
            by_id=_observation_by_id,
            order=("sensor_id", "measure_id", "timestamp"),
            typed={("result", "string"): "txt", ("result", "boolean"): "flag"},
            int_ids=False,
        ),
        EntitySet(
            "FeaturesOfInterest",
            "FeatureOfInterest",
            _locations,
            props={
                "name": plain("name"),
                "description": plain("description"),
                "encodingType": constant(GEOJSON),
                "feature": Prop(("coordinates",), lambda row: _geojson(row["coordinates"])),
                "properties": Prop(("schema",), lambda row: {"schema": row["schema"]}),
            },
            links={
                "Observations": Link(
                    "Observations",
                    True,
                    lambda p, t: location_at(t.c.sensor_id, t.c.timestamp) == p["id"],
                    ("id",),
                ),
            },
            by_id=_by_int_id,
        ),
    )
}
