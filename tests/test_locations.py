"""/location over HTTP: DTBase's contract (docs/api.md, Locations) with the changes of
"Where this API differs from DTBase" (Locations respect their schema; Names and units
together)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from tests import support
from tests.support import ADMIN_PASSWORD, Api, LocalHost

ROUTES_POST = [
    "insert-location-schema",
    "insert-location",
    "insert-location-for-schema",
    "list-locations",
    "get-schema-details",
    "delete-location-schema",
    "delete-location",
]
ROUTES_GET = ["list-location-schemas", "list-location-identifiers"]

XY = [
    {"name": "x", "units": "m", "datatype": "float"},
    {"name": "y", "units": "m", "datatype": "float"},
]
TABLES = [
    "location_identifier",
    "location_schema",
    "location_schema_identifier_relation",
    "location",
    "location_float_value",
    "location_integer_value",
    "location_string_value",
    "location_boolean_value",
]


def row_counts(database: support.TestDatabase) -> dict[str, int]:
    with database.engine.connect() as conn:
        return {t: conn.scalar(sa.text(f"select count(*) from {t}")) for t in TABLES}


def state(api: Api, database: support.TestDatabase) -> dict[str, Any]:
    """Everything the location endpoints can show, plus the raw row counts."""
    schemas = api.get("/location/list-location-schemas").json()
    return {
        "schemas": schemas,
        "identifiers": api.get("/location/list-location-identifiers").json(),
        "locations": {
            s["name"]: api.ok("/location/list-locations", {"schema_name": s["name"]})
            for s in schemas
        },
        "rows": row_counts(database),
    }


def refused(api: Api, path: str, body: Any, status: int) -> Any:
    reply = api.post(path, body)
    assert reply.status_code == status, (path, body, reply.status_code, reply.text)
    return reply.json()["detail"]


def schema(api: Api, name: str, identifiers: list[dict[str, Any]], description: Any = None) -> None:
    body = {"name": name, "description": description, "identifiers": identifiers}
    assert api.ok("/location/insert-location-schema", body, 201) == {
        "detail": "Location schema inserted"
    }


def add(api: Api, schema_name: str, **coordinates: Any) -> None:
    body = {"schema_name": schema_name, "coordinates": coordinates}
    assert api.ok("/location/insert-location-for-schema", body, 201) == {
        "detail": "Location inserted"
    }


def listing(api: Api, schema_name: str, coordinates: Any = None) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"schema_name": schema_name}
    if coordinates is not None:
        body["coordinates"] = coordinates
    return api.ok("/location/list-locations", body, 200)


def test_every_route_needs_a_token(anon: Api) -> None:
    for route in ROUTES_POST:
        reply = anon.post(f"/location/{route}")
        assert (reply.status_code, reply.json()) == (401, {"detail": "Not authenticated"}), route
    for route in ROUTES_GET:
        reply = anon.get(f"/location/{route}")
        assert (reply.status_code, reply.json()) == (401, {"detail": "Not authenticated"}), route


def test_schema_round_trip(admin: Api) -> None:
    schema(admin, "xy", XY, "a plane")
    schema(admin, "bare", [], None)
    details = admin.ok("/location/get-schema-details", {"schema_name": "xy"}, 200)
    assert details == {"name": "xy", "description": "a plane", "identifiers": XY}
    assert admin.ok("/location/get-schema-details", {"schema_name": "bare"}, 200) == {
        "name": "bare",
        "description": None,
        "identifiers": [],
    }
    # Schemas without identifiers are listed too (docs/api.md, Locations respect
    # their schema), in insertion order.
    assert admin.get("/location/list-location-schemas").json() == [
        {"name": "xy", "description": "a plane", "identifiers": XY},
        {"name": "bare", "description": None, "identifiers": []},
    ]
    assert admin.get("/location/list-location-identifiers").json() == XY
    assert refused(admin, "/location/get-schema-details", {"schema_name": "nope"}, 400) == (
        "No such schema"
    )


def test_duplicate_schema_is_409_and_writes_nothing(
    admin: Api, database: support.TestDatabase
) -> None:
    schema(admin, "xy", XY)
    before = state(admin, database)
    body = {
        "name": "xy",
        "description": "again",
        "identifiers": [{"name": "z", "units": None, "datatype": "integer"}],
    }
    assert refused(admin, "/location/insert-location-schema", body, 409) == (
        "LocationSchema exists already"
    )
    assert state(admin, database) == before


def test_identifiers_are_found_by_name_and_units(admin: Api) -> None:
    schema(
        admin,
        "a",
        [
            {"name": "x", "units": "m", "datatype": "float"},
            {"name": "label", "units": None, "datatype": "string"},
        ],
    )
    # Same (name, units) reused, null units matching null; other units make another one.
    schema(
        admin,
        "b",
        [
            {"name": "label", "units": None, "datatype": "string"},
            {"name": "x", "units": "cm", "datatype": "float"},
        ],
    )
    schema(admin, "c", [{"name": "x", "units": "m", "datatype": "float"}])
    assert admin.get("/location/list-location-identifiers").json() == [
        {"name": "x", "units": "m", "datatype": "float"},
        {"name": "label", "units": None, "datatype": "string"},
        {"name": "x", "units": "cm", "datatype": "float"},
    ]
    details = admin.ok("/location/get-schema-details", {"schema_name": "b"})
    assert details["identifiers"] == [
        {"name": "label", "units": None, "datatype": "string"},
        {"name": "x", "units": "cm", "datatype": "float"},
    ]
    # Locations in schemas sharing the identifier x (m) stay apart (docs/api.md, Locations
    # respect their schema).
    add(admin, "a", x=1.5, label="one")
    add(admin, "c", x=1.5)
    add(admin, "b", x=1.5, label="one")
    assert listing(admin, "a") == [{"id": 1, "x": 1.5, "label": "one"}]
    assert listing(admin, "c") == [{"id": 2, "x": 1.5}]
    assert listing(admin, "b") == [{"id": 3, "label": "one", "x": 1.5}]
    assert listing(admin, "c", {"x": 1.5}) == [{"id": 2, "x": 1.5}]


def test_identifier_with_another_datatype_is_409(
    admin: Api, database: support.TestDatabase
) -> None:
    schema(
        admin,
        "a",
        [
            {"name": "depth", "units": "m", "datatype": "float"},
            {"name": "tag", "units": None, "datatype": "string"},
        ],
    )
    before = state(admin, database)
    body = {
        "name": "b",
        "description": None,
        "identifiers": [
            {"name": "new", "units": None, "datatype": "boolean"},
            {"name": "depth", "units": "m", "datatype": "integer"},
        ],
    }
    detail = refused(admin, "/location/insert-location-schema", body, 409)
    assert "'depth'" in detail and "'m'" in detail and "float" in detail and "integer" in detail
    body = {
        "name": "b",
        "description": None,
        "identifiers": [{"name": "tag", "units": None, "datatype": "integer"}],
    }
    detail = refused(admin, "/location/insert-location-schema", body, 409)
    assert "'tag'" in detail and "no units" in detail
    # Neither the schema, nor the new identifier, nor a link was written.
    assert state(admin, database) == before


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (
            {
                "name": "s",
                "description": None,
                "identifiers": [{"name": "x", "units": None, "datatype": "decimal"}],
            },
            ["body", "identifiers", 0, "datatype"],
        ),
        (
            {"name": "s", "description": None, "identifiers": [{"name": "x", "datatype": "float"}]},
            ["body", "identifiers", 0, "units"],
        ),
        ({"name": "s", "identifiers": []}, ["body", "description"]),
        ({"name": "s" * 101, "description": None, "identifiers": []}, ["body", "name"]),
        ({"name": "", "description": None, "identifiers": []}, ["body", "name"]),
        (
            {
                "name": "s",
                "description": None,
                "identifiers": [{"name": "x" * 101, "units": None, "datatype": "float"}],
            },
            ["body", "identifiers", 0, "name"],
        ),
        (
            {
                "name": "s",
                "description": None,
                "identifiers": [{"name": "x", "units": "u" * 101, "datatype": "float"}],
            },
            ["body", "identifiers", 0, "units"],
        ),
        (
            {
                "name": "s",
                "description": None,
                "identifiers": [
                    {"name": "x", "units": None, "datatype": "float"},
                    {"name": "x", "units": "m", "datatype": "float"},
                ],
            },
            ["body", "identifiers", 1, "name"],
        ),
        (
            {
                "name": "s",
                "description": None,
                "identifiers": [{"name": "id", "units": None, "datatype": "integer"}],
            },
            ["body", "identifiers", 0, "name"],
        ),
        ({"name": 5, "description": None, "identifiers": []}, ["body", "name"]),
        ({"name": "s", "description": None, "identifiers": "x"}, ["body", "identifiers"]),
    ],
)
def test_bad_schema_bodies_are_422(
    admin: Api, database: support.TestDatabase, body: dict[str, Any], loc: list[Any]
) -> None:
    detail = refused(admin, "/location/insert-location-schema", body, 422)
    assert detail[0]["loc"] == loc
    assert set(row_counts(database).values()) == {0}


def test_unicode_and_sql_looking_names(admin: Api) -> None:
    name = "Robert'); DROP TABLE location_schema;--"
    ids = [
        {"name": "höhe ☃", "units": "m²", "datatype": "float"},
        {"name": 'név"; --', "units": None, "datatype": "string"},
    ]
    schema(admin, name, ids, "ünïcödé")
    add(admin, name, **{"höhe ☃": 2.5, 'név"; --': "'; DELETE FROM location; --"})
    assert admin.ok("/location/get-schema-details", {"schema_name": name})["identifiers"] == ids
    assert listing(admin, name) == [
        {"id": 1, "höhe ☃": 2.5, 'név"; --': "'; DELETE FROM location; --"}
    ]
    assert listing(admin, name, {'név"; --': "'; DELETE FROM location; --"})[0]["id"] == 1


def test_insert_location_creates_then_reuses_its_schema(admin: Api) -> None:
    ids = [
        {"name": "y", "units": None, "datatype": "integer"},
        {"name": "x", "units": None, "datatype": "float"},
    ]
    reply = admin.ok("/location/insert-location", {"identifiers": ids, "values": [2, 1.0]}, 201)
    assert reply == {"schema_name": "x-y"}
    assert admin.ok("/location/get-schema-details", {"schema_name": "x-y"}) == {
        "name": "x-y",
        "description": "x-y",
        "identifiers": ids,
    }
    # A second, different location goes into the same schema (docs/api.md, Locations
    # respect their schema); a JSON
    # integer is accepted for the float identifier and stored as a float.
    reply = admin.ok("/location/insert-location", {"identifiers": ids, "values": [3, 4]}, 201)
    assert reply == {"schema_name": "x-y"}
    # Identifiers in another order are the same set.
    reply = admin.ok(
        "/location/insert-location", {"identifiers": ids[::-1], "values": [5.5, 6]}, 201
    )
    assert reply == {"schema_name": "x-y"}
    rows = listing(admin, "x-y")
    assert rows == [
        {"id": 1, "y": 2, "x": 1.0},
        {"id": 2, "y": 3, "x": 4.0},
        {"id": 3, "y": 6, "x": 5.5},
    ]
    assert [type(r["x"]) for r in rows] == [float, float, float]
    assert [type(r["y"]) for r in rows] == [int, int, int]
    # The same coordinates twice: 409, as DTBase clients expect.
    reply = admin.post("/location/insert-location", {"identifiers": ids, "values": [3, 4.0]})
    assert (reply.status_code, reply.json()) == (
        409,
        {"detail": "Location or schema exists already"},
    )
    assert len(listing(admin, "x-y")) == 3
    assert len(admin.get("/location/list-location-schemas").json()) == 1


def test_insert_location_adds_to_a_schema_made_by_insert_location_schema(admin: Api) -> None:
    schema(admin, "x-y", XY, "made first")
    assert admin.ok(
        "/location/insert-location", {"identifiers": XY, "values": [0.5, 1.5]}, 201
    ) == {"schema_name": "x-y"}
    assert listing(admin, "x-y") == [{"id": 1, "x": 0.5, "y": 1.5}]
    assert admin.ok("/location/get-schema-details", {"schema_name": "x-y"})["description"] == (
        "made first"
    )


def test_insert_location_refusals_write_nothing(admin: Api, database: support.TestDatabase) -> None:
    schema(admin, "x-y", XY)
    schema(admin, "flag", [{"name": "flag", "units": None, "datatype": "boolean"}])
    admin.ok("/location/insert-location", {"identifiers": XY, "values": [1.0, 2.0]}, 201)
    before = state(admin, database)
    cm = [
        {"name": "x", "units": "cm", "datatype": "float"},
        {"name": "y", "units": "cm", "datatype": "float"},
    ]
    cases: list[tuple[dict[str, Any], int, Any]] = [
        # Lengths differ.
        ({"identifiers": XY, "values": [1.0]}, 422, ["body", "values"]),
        ({"identifiers": XY, "values": [1.0, 2.0, 3.0]}, 422, ["body", "values"]),
        ({"identifiers": [], "values": []}, 422, ["body", "identifiers"]),
        # Wrong types, each value checked (not only the first).
        ({"identifiers": XY, "values": [1.0, "two"]}, 422, ["body", "values", 1]),
        ({"identifiers": XY, "values": [True, 2.0]}, 422, ["body", "values", 0]),
        ({"identifiers": XY, "values": [1.0, None]}, 422, ["body", "values", 1]),
        (
            {
                "identifiers": [{"name": "n", "units": None, "datatype": "integer"}],
                "values": [True],
            },
            422,
            ["body", "values", 0],
        ),
        (
            {"identifiers": [{"name": "n", "units": None, "datatype": "integer"}], "values": [1.5]},
            422,
            ["body", "values", 0],
        ),
        (
            {
                "identifiers": [{"name": "n", "units": None, "datatype": "integer"}],
                "values": [2**63],
            },
            422,
            ["body", "values", 0],
        ),
        (
            {
                "identifiers": [{"name": "n", "units": None, "datatype": "string"}],
                "values": ["a\x00b"],
            },
            422,
            ["body", "values", 0],
        ),
        (
            {
                "identifiers": [{"name": "n", "units": None, "datatype": "quaternion"}],
                "values": [1],
            },
            422,
            ["body", "identifiers", 0, "datatype"],
        ),
        (
            {"identifiers": [XY[0], XY[0]], "values": [1.0, 1.0]},
            422,
            ["body", "identifiers", 1, "name"],
        ),
        (
            {
                "identifiers": [
                    {"name": "a" * 60, "units": None, "datatype": "float"},
                    {"name": "b" * 60, "units": None, "datatype": "float"},
                ],
                "values": [1.0, 2.0],
            },
            422,
            ["body", "identifiers"],
        ),
        # The schema x-y exists with other units; flag exists with another datatype.
        ({"identifiers": cm, "values": [1.0, 2.0]}, 409, None),
        (
            {
                "identifiers": [{"name": "flag", "units": None, "datatype": "string"}],
                "values": ["yes"],
            },
            409,
            None,
        ),
        # A new schema whose identifier clashes with an existing one's datatype.
        (
            {
                "identifiers": [
                    {"name": "x", "units": "m", "datatype": "integer"},
                    {"name": "z", "units": None, "datatype": "integer"},
                ],
                "values": [1, 2],
            },
            409,
            None,
        ),
    ]
    for body, status, loc in cases:
        detail = refused(admin, "/location/insert-location", body, status)
        if loc is not None:
            assert detail[0]["loc"][: len(loc)] == loc, (body, detail)
    assert "exists already with other identifiers" in refused(
        admin, "/location/insert-location", cases[-3][0], 409
    )
    detail = refused(admin, "/location/insert-location", cases[-2][0], 409)
    assert "'flag'" in detail and "boolean" in detail
    detail = refused(admin, "/location/insert-location", cases[-1][0], 409)
    assert "'x'" in detail and "float" in detail
    assert state(admin, database) == before


def test_insert_location_for_schema(admin: Api, database: support.TestDatabase) -> None:
    schema(
        admin,
        "site",
        [
            {"name": "zone", "units": None, "datatype": "string"},
            {"name": "level", "units": None, "datatype": "integer"},
            {"name": "height", "units": "m", "datatype": "float"},
            {"name": "outdoor", "units": None, "datatype": "boolean"},
        ],
    )
    add(admin, "site", zone="A", level=1, height=2, outdoor=False)
    add(admin, "site", zone="A", level=2, height=2.5, outdoor=True)
    rows = listing(admin, "site")
    assert rows == [
        {"id": 1, "zone": "A", "level": 1, "height": 2.0, "outdoor": False},
        {"id": 2, "zone": "A", "level": 2, "height": 2.5, "outdoor": True},
    ]
    assert type(rows[0]["height"]) is float and type(rows[0]["level"]) is int
    assert rows[1]["outdoor"] is True

    before = state(admin, database)
    good = {"zone": "B", "level": 3, "height": 1.0, "outdoor": True}
    assert refused(
        admin,
        "/location/insert-location-for-schema",
        {"schema_name": "nope", "coordinates": good},
        400,
    ) == ("Location schema does not exist")
    duplicate = {"zone": "A", "level": 2, "height": 2.5, "outdoor": True}
    assert refused(
        admin,
        "/location/insert-location-for-schema",
        {"schema_name": "site", "coordinates": duplicate},
        409,
    ) == ("Location exists already")
    # An int for the float 2.0 gives the same coordinates as the first location.
    first = {"zone": "A", "level": 1, "height": 2, "outdoor": False}
    assert refused(
        admin,
        "/location/insert-location-for-schema",
        {"schema_name": "site", "coordinates": first},
        409,
    ) == ("Location exists already")
    bad: list[tuple[dict[str, Any], list[Any], str]] = [
        (
            {k: v for k, v in good.items() if k != "level"},
            ["body", "coordinates", "level"],
            "'level'",
        ),
        ({**good, "colour": "red"}, ["body", "coordinates", "colour"], "'colour'"),
        ({**good, "level": True}, ["body", "coordinates", "level"], "integer"),
        ({**good, "level": 1.0}, ["body", "coordinates", "level"], "integer"),
        ({**good, "height": "tall"}, ["body", "coordinates", "height"], "float"),
        ({**good, "outdoor": 1}, ["body", "coordinates", "outdoor"], "boolean"),
        ({**good, "zone": 7}, ["body", "coordinates", "zone"], "string"),
        ({}, ["body", "coordinates", "zone"], "'zone'"),
    ]
    for coordinates, loc, named in bad:
        detail = refused(
            admin,
            "/location/insert-location-for-schema",
            {"schema_name": "site", "coordinates": coordinates},
            422,
        )
        assert detail[0]["loc"] == loc, (coordinates, detail)
        assert named in detail[0]["msg"], (coordinates, detail)
    for body in (
        {"schema_name": "site"},
        {"coordinates": good},
        {"schema_name": "site", "coordinates": [1, 2]},
        {"schema_name": "site", "coordinates": {**good, "zone": None}},
    ):
        refused(admin, "/location/insert-location-for-schema", body, 422)
    assert state(admin, database) == before


def test_schema_without_identifiers_has_one_location(admin: Api) -> None:
    schema(admin, "bare", [])
    add(admin, "bare")
    assert (
        refused(
            admin,
            "/location/insert-location-for-schema",
            {"schema_name": "bare", "coordinates": {}},
            409,
        )
        == "Location exists already"
    )
    assert listing(admin, "bare") == [{"id": 1}]


def test_list_locations_filters(admin: Api) -> None:
    schema(
        admin,
        "grid",
        [
            {"name": "row", "units": None, "datatype": "integer"},
            {"name": "col", "units": None, "datatype": "integer"},
            {"name": "name", "units": None, "datatype": "string"},
        ],
    )
    for row in (1, 2):
        for col in (1, 2, 3):
            add(admin, "grid", row=row, col=col, name=f"r{row}c{col}")
    assert [r["id"] for r in listing(admin, "grid")] == [1, 2, 3, 4, 5, 6]
    assert [r["name"] for r in listing(admin, "grid", {"row": 2})] == ["r2c1", "r2c2", "r2c3"]
    assert listing(admin, "grid", {"row": 1, "col": 3}) == [
        {"id": 3, "row": 1, "col": 3, "name": "r1c3"}
    ]
    assert listing(admin, "grid", {"row": 3}) == []
    assert listing(admin, "grid", {}) == listing(admin, "grid")
    # Unknown schemas have no locations (docs/api.md, Locations respect
    # their schema), with or without a filter.
    assert listing(admin, "xy") == []
    assert listing(admin, "xy", {"x": 1.0, "anything": "goes"}) == []
    # A filter key that is not an identifier of the schema, or a mistyped value: 422.
    detail = refused(
        admin,
        "/location/list-locations",
        {"schema_name": "grid", "coordinates": {"row": 1, "depth": 2}},
        422,
    )
    assert detail[0]["loc"] == ["body", "coordinates", "depth"]
    assert "'depth'" in detail[0]["msg"] and "'grid'" in detail[0]["msg"]
    detail = refused(
        admin, "/location/list-locations", {"schema_name": "grid", "coordinates": {"row": "1"}}, 422
    )
    assert detail[0]["loc"] == ["body", "coordinates", "row"]
    refused(admin, "/location/list-locations", {}, 422)
    refused(admin, "/location/list-locations", {"schema_name": "g" * 101}, 422)


def test_delete_location_schema(admin: Api, database: support.TestDatabase) -> None:
    schema(admin, "xy", XY)
    schema(admin, "other", XY)
    add(admin, "xy", x=1.0, y=2.0)
    add(admin, "xy", x=3.0, y=4.0)
    add(admin, "other", x=1.0, y=2.0)
    before = state(admin, database)
    detail = refused(admin, "/location/delete-location-schema", {"schema_name": "xy"}, 409)
    assert "'xy'" in detail and "2 locations" in detail
    assert state(admin, database) == before
    assert refused(admin, "/location/delete-location-schema", {"schema_name": "nope"}, 400) == (
        "Location schema 'nope' not found."
    )

    for coordinates in ({"x": 1.0, "y": 2.0}, {"x": 3, "y": 4}):
        body = {"schema_name": "xy", "coordinates": coordinates}
        assert admin.ok("/location/delete-location", body) == {"detail": "Location deleted"}
        # Clients list with the same body after a delete and expect an empty list.
        assert listing(admin, "xy", coordinates) == []
    # The location of the other schema with the same coordinates was not touched.
    assert listing(admin, "other") == [{"id": 3, "x": 1.0, "y": 2.0}]
    assert admin.ok("/location/delete-location-schema", {"schema_name": "xy"}) == {
        "detail": "Location schema 'xy' has been deleted."
    }
    assert [s["name"] for s in admin.get("/location/list-location-schemas").json()] == ["other"]
    assert listing(admin, "xy", {"x": 1.0, "y": 2.0}) == []
    # Identifiers stay (the other schema uses them); the links of xy went with it.
    assert admin.get("/location/list-location-identifiers").json() == XY
    assert row_counts(database)["location_schema_identifier_relation"] == 2
    # The name can be used again.
    schema(admin, "xy", XY)


def test_delete_location_refusals(admin: Api, database: support.TestDatabase) -> None:
    schema(admin, "xy", XY)
    add(admin, "xy", x=1.0, y=2.0)
    before = state(admin, database)
    cases: list[tuple[dict[str, Any], int, Any]] = [
        ({"schema_name": "xy", "coordinates": {"x": 9.0, "y": 2.0}}, 400, "Location not found"),
        (
            {"schema_name": "nope", "coordinates": {"x": 1.0, "y": 2.0}},
            400,
            "Location schema does not exist",
        ),
        ({"schema_name": "xy", "coordinates": {"x": 1.0}}, 422, None),
        ({"schema_name": "xy", "coordinates": {"x": 1.0, "y": 2.0, "z": 3.0}}, 422, None),
        ({"schema_name": "xy", "coordinates": {"x": 1.0, "y": "2"}}, 422, None),
        ({"schema_name": "xy"}, 422, None),
    ]
    for body, status, message in cases:
        detail = refused(admin, "/location/delete-location", body, status)
        if message is not None:
            assert detail == message
    assert state(admin, database) == before


def test_delete_location_used_by_a_sensor_is_409(
    admin: Api, database: support.TestDatabase
) -> None:
    schema(admin, "xy", XY)
    add(admin, "xy", x=1.0, y=2.0)
    with database.engine.begin() as conn:
        type_id = conn.scalar(sa.text("insert into sensor_type (name) values ('T') returning id"))
        for uid in ("s-1", "s-2"):
            sensor_id = conn.scalar(
                sa.text(
                    "insert into sensor (type_id, unique_identifier) values (:t, :u) returning id"
                ),
                {"t": type_id, "u": uid},
            )
            conn.execute(
                sa.text(
                    "insert into sensor_location (sensor_id, location_id, "
                    "installation_datetime) values (:s, 1, now())"
                ),
                {"s": sensor_id},
            )
    body = {"schema_name": "xy", "coordinates": {"x": 1.0, "y": 2.0}}
    detail = refused(admin, "/location/delete-location", body, 409)
    assert "2 sensor location records" in detail and "'s-1'" in detail and "'s-2'" in detail
    assert listing(admin, "xy") == [{"id": 1, "x": 1.0, "y": 2.0}]


def test_concurrent_inserts_of_one_location(live_host: LocalHost, admin: Api) -> None:
    schema(admin, "xy", XY)
    clients = [Api(live_host.api, live_host.admin_email, ADMIN_PASSWORD) for _ in range(8)]
    try:
        body = {"schema_name": "xy", "coordinates": {"x": 1.0, "y": 1.0}}
        with ThreadPoolExecutor(len(clients)) as pool:
            replies = list(
                pool.map(lambda c: c.post("/location/insert-location-for-schema", body), clients)
            )
        assert sorted(r.status_code for r in replies) == [201] + [409] * 7
        assert {r.json()["detail"] for r in replies if r.status_code == 409} == {
            "Location exists already"
        }
        assert len(listing(admin, "xy")) == 1

        # A brand-new schema made by insert-location from many requests at once.
        ids = [
            {"name": "p", "units": None, "datatype": "integer"},
            {"name": "q", "units": None, "datatype": "integer"},
        ]
        with ThreadPoolExecutor(len(clients)) as pool:
            replies = list(
                pool.map(
                    lambda c: c.post(
                        "/location/insert-location", {"identifiers": ids, "values": [1, 2]}
                    ),
                    clients,
                )
            )
        assert sorted(r.status_code for r in replies) == [201] + [409] * 7
        assert {r.json()["detail"] for r in replies if r.status_code == 409} == {
            "Location or schema exists already"
        }

        with ThreadPoolExecutor(len(clients)) as pool:
            replies = list(
                pool.map(
                    lambda pair: pair[1].post(
                        "/location/insert-location", {"identifiers": ids, "values": [pair[0], 0]}
                    ),
                    enumerate(clients),
                )
            )
        assert [r.status_code for r in replies] == [201] * 8
        assert len(listing(admin, "p-q")) == 9
        assert (
            admin.ok("/location/get-schema-details", {"schema_name": "p-q"})["identifiers"] == ids
        )
    finally:
        for client in clients:
            client.close()


def test_openapi_lists_the_location_routes(anon: Api) -> None:
    paths = anon.get("/openapi.json").json()["paths"]
    for route in ROUTES_POST:
        assert "post" in paths[f"/location/{route}"], route
    for route in ROUTES_GET:
        assert "get" in paths[f"/location/{route}"], route
