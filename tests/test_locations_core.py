"""dtbase_core.locations against the database directly: the look-ups other areas call
(find_location_id, location_coordinates), their query counts, and the schema lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import locations
from dtbase_core.errors import Conflict, Invalid, NotFound
from dtbase_core.migrations import upgrade
from tests import support

XY = [
    {"name": "x", "units": "m", "datatype": "float"},
    {"name": "y", "units": "m", "datatype": "float"},
]
SITE = [
    {"name": "zone", "units": None, "datatype": "string"},
    {"name": "level", "units": None, "datatype": "integer"},
    {"name": "x", "units": "m", "datatype": "float"},
    {"name": "outdoor", "units": None, "datatype": "boolean"},
]


@pytest.fixture(scope="module")
def migrated(database: support.TestDatabase) -> support.TestDatabase:
    upgrade(database.url)
    return database


@pytest.fixture
def session(migrated: support.TestDatabase) -> Iterator[Session]:
    """A session on empty tables holding three schemas; rolled back afterwards."""
    migrated.truncate_all()
    with Session(migrated.engine) as session:
        locations.insert_location_schema(session, name="xy", description=None, identifiers=XY)
        locations.insert_location_schema(session, name="xy2", description=None, identifiers=XY)
        locations.insert_location_schema(session, name="site", description="s", identifiers=SITE)
        locations.insert_location_schema(session, name="bare", description=None, identifiers=[])
        yield session
        session.rollback()


class QueryCounter:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def _count(self, *args: Any) -> None:
        self.statements.append(args[2])

    def __enter__(self) -> QueryCounter:
        sa.event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: Any) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._count)


def add(session: Session, schema_name: str, **coordinates: Any) -> int:
    locations.insert_location_for_schema(session, schema_name=schema_name, coordinates=coordinates)
    return locations.find_location_id(session, schema_name=schema_name, coordinates=coordinates)


def test_find_location_id_respects_the_schema(session: Session) -> None:
    a = add(session, "xy", x=1.0, y=2.0)
    b = add(session, "xy2", x=1.0, y=2.0)
    c = add(session, "xy", x=1.0, y=3.0)
    assert (a, b, c) == (1, 2, 3)
    find = locations.find_location_id
    assert find(session, schema_name="xy", coordinates={"x": 1.0, "y": 2.0}) == a
    assert find(session, schema_name="xy2", coordinates={"x": 1.0, "y": 2.0}) == b
    assert find(session, schema_name="xy", coordinates={"y": 3.0, "x": 1.0}) == c
    # A JSON integer for a float identifier finds the float.
    assert find(session, schema_name="xy", coordinates={"x": 1, "y": 3}) == c

    with pytest.raises(NotFound) as missing:
        find(session, schema_name="xy2", coordinates={"x": 1.0, "y": 3.0})
    assert missing.value.detail == "Location not found"
    with pytest.raises(NotFound) as no_schema:
        find(session, schema_name="nope", coordinates={"x": 1.0, "y": 2.0})
    assert no_schema.value.detail == "Location schema does not exist"


def test_find_location_id_is_one_query_per_call(session: Session, migrated: Any) -> None:
    add(session, "site", zone="A", level=1, x=0.5, outdoor=True)
    target = add(session, "site", zone="A", level=2, x=0.5, outdoor=True)
    with QueryCounter(migrated.engine) as counter:
        found = locations.find_location_id(
            session,
            schema_name="site",
            coordinates={"zone": "A", "level": 2, "x": 0.5, "outdoor": True},
        )
    assert found == target
    # One query for the schema and its identifiers, one joining the four value tables.
    assert len(counter.statements) == 2


@pytest.mark.parametrize(
    ("coordinates", "key", "named"),
    [
        ({"zone": "A", "level": 1, "x": 0.5}, "outdoor", "'outdoor'"),
        ({"zone": "A", "level": 1, "x": 0.5, "outdoor": True, "z": 1}, "z", "'z'"),
        ({"zone": "A", "level": True, "x": 0.5, "outdoor": True}, "level", "integer"),
        ({"zone": "A", "level": 1.0, "x": 0.5, "outdoor": True}, "level", "integer"),
        ({"zone": "A", "level": 1, "x": "0.5", "outdoor": True}, "x", "float"),
        ({"zone": "A", "level": 1, "x": True, "outdoor": True}, "x", "float"),
        ({"zone": "A", "level": 1, "x": 0.5, "outdoor": 1}, "outdoor", "boolean"),
        ({"zone": 1, "level": 1, "x": 0.5, "outdoor": True}, "zone", "string"),
        ({"zone": "A", "level": 2**63, "x": 0.5, "outdoor": True}, "level", "integer"),
    ],
)
def test_find_location_id_invalid_coordinates(
    session: Session, coordinates: dict[str, Any], key: str, named: str
) -> None:
    add(session, "site", zone="A", level=1, x=0.5, outdoor=True)
    with pytest.raises(Invalid) as error:
        locations.find_location_id(session, schema_name="site", coordinates=coordinates)
    assert error.value.loc == ("body", "coordinates", key)
    assert named in error.value.detail


def test_location_coordinates(session: Session, migrated: Any) -> None:
    one = add(session, "site", zone="A", level=1, x=0.5, outdoor=False)
    two = add(session, "xy", x=1, y=-2.25)
    three = add(session, "bare")
    four = add(session, "site", zone="B", level=-7, x=3, outdoor=True)
    with QueryCounter(migrated.engine) as counter:
        found = locations.location_coordinates(session, [four, two, one, three, two, 999])
    # One query per value table, however many locations.
    assert len(counter.statements) == len(locations.location_value_tables)
    assert found == {
        four: {"zone": "B", "level": -7, "x": 3.0, "outdoor": True},
        two: {"x": 1.0, "y": -2.25},
        one: {"zone": "A", "level": 1, "x": 0.5, "outdoor": False},
        three: {},
        999: {},
    }
    assert list(found) == [four, two, one, three, 999]
    # Types are kept, and keys come in the schema's identifier order.
    assert [type(v) for v in found[four].values()] == [str, int, float, bool]
    assert list(found[one]) == ["zone", "level", "x", "outdoor"]
    with QueryCounter(migrated.engine) as counter:
        assert locations.location_coordinates(session, []) == {}
    assert counter.statements == []


def test_location_coordinates_match_list_locations(session: Session) -> None:
    for level in range(5):
        add(session, "site", zone=f"z{level}", level=level, x=level / 2, outdoor=level % 2 == 0)
    listed = locations.list_locations(session, schema_name="site")
    coordinates = locations.location_coordinates(session, [row["id"] for row in listed])
    assert [{"id": i, **c} for i, c in coordinates.items()] == listed


def test_list_locations_is_two_queries(session: Session, migrated: Any) -> None:
    for level in range(20):
        add(session, "site", zone="z", level=level, x=1.0, outdoor=True)
    with QueryCounter(migrated.engine) as counter:
        rows = locations.list_locations(
            session, schema_name="site", coordinates={"zone": "z", "outdoor": True}
        )
    assert len(rows) == 20 and len(counter.statements) == 2
    with QueryCounter(migrated.engine) as counter:
        assert len(locations.list_location_schemas(session)) == 4
    assert len(counter.statements) == 1


def test_identifier_datatype_clash_names_it(session: Session) -> None:
    with pytest.raises(Conflict) as clash:
        locations.insert_location_schema(
            session,
            name="other",
            description=None,
            identifiers=[{"name": "level", "units": None, "datatype": "float"}],
        )
    assert "'level'" in clash.value.detail and "integer" in clash.value.detail
    with pytest.raises(Invalid) as bad:
        locations.insert_location_schema(
            session,
            name="other",
            description=None,
            identifiers=[{"name": "w", "units": None, "datatype": "complex"}],
        )
    assert bad.value.loc == ("body", "identifiers", 0, "datatype")


def test_inserts_to_one_schema_are_serialised(migrated: support.TestDatabase) -> None:
    """A second writer waits on the schema lock, then sees the first one's location."""
    migrated.truncate_all()
    with Session(migrated.engine) as setup, setup.begin():
        locations.insert_location_schema(setup, name="xy", description=None, identifiers=XY)
    coordinates = {"x": 1.0, "y": 1.0}
    outcome: list[BaseException | None] = []
    second_started = threading.Event()

    def second_writer() -> None:
        with Session(migrated.engine) as other:
            try:
                second_started.set()
                locations.insert_location_for_schema(
                    other, schema_name="xy", coordinates=coordinates
                )
                other.commit()
                outcome.append(None)
            except BaseException as exc:  # reported to the main thread
                other.rollback()
                outcome.append(exc)

    with Session(migrated.engine) as first:
        locations.insert_location_for_schema(first, schema_name="xy", coordinates=coordinates)
        thread = threading.Thread(target=second_writer)
        thread.start()
        second_started.wait(5)
        thread.join(1.0)
        assert thread.is_alive(), "the second writer did not wait for the schema lock"
        first.commit()
    thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], Conflict)
    assert outcome[0].detail == "Location exists already"
    with Session(migrated.engine) as check:
        assert len(locations.list_locations(check, schema_name="xy")) == 1


def test_delete_schema_waits_for_a_pending_insert(migrated: support.TestDatabase) -> None:
    migrated.truncate_all()
    with Session(migrated.engine) as setup, setup.begin():
        locations.insert_location_schema(setup, name="xy", description=None, identifiers=XY)
    outcome: list[BaseException | None] = []

    def deleter() -> None:
        with Session(migrated.engine) as other:
            try:
                locations.delete_location_schema(other, schema_name="xy")
                other.commit()
                outcome.append(None)
            except BaseException as exc:  # reported to the main thread
                other.rollback()
                outcome.append(exc)

    with Session(migrated.engine) as first:
        locations.insert_location_for_schema(first, schema_name="xy", coordinates={"x": 0, "y": 0})
        thread = threading.Thread(target=deleter)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive(), "the delete did not wait for the insert"
        first.commit()
    thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], Conflict)
    assert "1 location;" in outcome[0].detail
