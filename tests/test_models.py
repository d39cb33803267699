"""/model over HTTP: DTBase's contract (docs/api.md, Models), with the changes of
"Where this API differs from DTBase" and the new delete-model-run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support import Api, TestDatabase

T0 = datetime(2023, 3, 29, tzinfo=UTC)
ENDPOINTS = [
    ("POST", "/model/insert-model"),
    ("GET", "/model/list-models"),
    ("POST", "/model/delete-model"),
    ("POST", "/model/insert-model-scenario"),
    ("GET", "/model/list-model-scenarios"),
    ("POST", "/model/delete-model-scenario"),
    ("POST", "/model/insert-model-measure"),
    ("GET", "/model/list-model-measures"),
    ("POST", "/model/delete-model-measure"),
    ("POST", "/model/insert-model-run"),
    ("POST", "/model/list-model-runs"),
    ("POST", "/model/get-model-run"),
    ("POST", "/model/get-model-run-sensor-measure"),
    ("POST", "/model/delete-model-run"),
]
RUN_KEYS = {
    "id",
    "model_id",
    "model_name",
    "scenario_id",
    "scenario_description",
    "time_created",
    "sensor_unique_id",
    "sensor_measure",
}
WIDE = {"dt_from": "2000-01-01T00:00:00Z", "dt_to": "2100-01-01T00:00:00Z"}


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def stamps(n: int, start: datetime = T0) -> list[str]:
    return [iso(start + timedelta(hours=i)) for i in range(n)]


def product(measure: str, values: list[Any], timestamps: list[str] | None = None) -> dict[str, Any]:
    return {
        "measure_name": measure,
        "values": values,
        "timestamps": stamps(len(values)) if timestamps is None else timestamps,
    }


def run_body(products: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model_name": "Arima",
        "scenario_description": "Business as usual",
        "measures_and_values": products if products is not None else [],
    }
    body.update(extra)
    return body


def refused(api: Api, path: str, body: Any, status: int) -> Any:
    reply = api.post(path, body)
    assert reply.status_code == status, (path, body, reply.status_code, reply.text)
    return reply.json()["detail"]


def setup_arima(api: Api, measures: tuple[tuple[str, str, str], ...] = ()) -> None:
    api.ok("/model/insert-model", {"name": "Arima"}, 201)
    api.ok(
        "/model/insert-model-scenario",
        {"model_name": "Arima", "description": "Business as usual"},
        201,
    )
    for name, units, datatype in measures:
        api.ok(
            "/model/insert-model-measure", {"name": name, "units": units, "datatype": datatype}, 201
        )


def runs(api: Api, **filters: Any) -> list[dict[str, Any]]:
    return api.ok("/model/list-model-runs", {"model_name": "Arima", **WIDE, **filters}, 200)


def count_rows(database: TestDatabase, *tables: str) -> int:
    with database.engine.connect() as conn:
        return sum(conn.scalar(sa.text(f"select count(*) from {t}")) for t in tables)


VALUE_TABLES = (
    "model_float_value",
    "model_integer_value",
    "model_boolean_value",
    "model_string_value",
)


# --- models -------------------------------------------------------------------------------


def test_models_insert_list_delete(admin: Api) -> None:
    names = ["Arima", "HODMD", "模型 ✓ ünïcode", "'; drop table model; --"]
    for name in names:
        assert admin.ok("/model/insert-model", {"name": name}, 201) == {"detail": "Model inserted"}
    assert refused(admin, "/model/insert-model", {"name": "Arima"}, 409) == "Model exists already"
    assert admin.get("/model/list-models").json() == [{"name": n} for n in names]

    assert admin.ok("/model/delete-model", {"name": "HODMD"}) == {"detail": "Model deleted"}
    detail = refused(admin, "/model/delete-model", {"name": "HODMD"}, 400)
    assert "HODMD" in detail
    assert admin.get("/model/list-models").json() == [{"name": n} for n in names if n != "HODMD"]
    # Deleted names can be inserted again, and come last (insertion order).
    admin.ok("/model/insert-model", {"name": "HODMD"}, 201)
    assert admin.get("/model/list-models").json()[-1] == {"name": "HODMD"}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": None},
        {"name": ""},
        {"name": 5},
        {"name": "x" * 101},
        {"name": ["a"]},
    ],
)
def test_insert_model_validation(admin: Api, body: dict[str, Any]) -> None:
    detail = refused(admin, "/model/insert-model", body, 422)
    assert detail[0]["loc"][:2] == ["body", "name"]
    assert admin.get("/model/list-models").json() == []


def test_insert_model_name_limits(admin: Api) -> None:
    admin.ok("/model/insert-model", {"name": "x" * 100}, 201)
    # A NUL character cannot be stored: a 4xx, not a 500.
    reply = admin.post("/model/insert-model", {"name": "a\x00b"})
    assert 400 <= reply.status_code < 500, reply.text
    assert admin.get("/model/list-models").json() == [{"name": "x" * 100}]
    assert admin.post("/model/insert-model").status_code == 422


def test_delete_model_cascades_scenarios(admin: Api) -> None:
    setup_arima(admin)
    admin.ok("/model/insert-model", {"name": "Other"}, 201)
    admin.ok("/model/insert-model-scenario", {"model_name": "Other", "description": "s"}, 201)
    admin.ok("/model/delete-model", {"name": "Arima"})
    assert admin.get("/model/list-model-scenarios").json() == [
        {"model_name": "Other", "description": "s"}
    ]


# --- scenarios ----------------------------------------------------------------------------


def test_scenarios(admin: Api) -> None:
    admin.ok("/model/insert-model", {"name": "Arima"}, 201)
    admin.ok("/model/insert-model", {"name": "HODMD"}, 201)
    inserted = [
        ("Arima", "Business as usual"),
        ("Arima", None),
        ("HODMD", "Business as usual"),
        ("HODMD", None),
        ("Arima", ""),
        ("Arima", "Ünïcode ✓ 'quoted'"),
    ]
    for model, description in inserted:
        assert admin.ok(
            "/model/insert-model-scenario", {"model_name": model, "description": description}, 201
        ) == {"detail": "Model scenario inserted"}
    # A null description is a value: it is unique per model, like any other (docs/api.md,
    # Names and units together).
    for model, description in (("Arima", None), ("Arima", "Business as usual"), ("HODMD", None)):
        detail = refused(
            admin,
            "/model/insert-model-scenario",
            {"model_name": model, "description": description},
            409,
        )
        assert detail == "Scenario exists already"
    listed = [{"model_name": m, "description": d} for m, d in inserted]
    assert admin.get("/model/list-model-scenarios").json() == listed

    # Deleting the null-description scenario deletes exactly that one.
    assert admin.ok(
        "/model/delete-model-scenario", {"model_name": "Arima", "description": None}
    ) == {"detail": "Model scenario deleted"}
    listed.remove({"model_name": "Arima", "description": None})
    assert admin.get("/model/list-model-scenarios").json() == listed
    detail = refused(
        admin, "/model/delete-model-scenario", {"model_name": "Arima", "description": None}, 400
    )
    assert "null" in detail and "Arima" in detail

    admin.ok("/model/delete-model-scenario", {"model_name": "Arima", "description": ""})
    listed.remove({"model_name": "Arima", "description": ""})
    assert admin.get("/model/list-model-scenarios").json() == listed


def test_scenario_errors(admin: Api) -> None:
    admin.ok("/model/insert-model", {"name": "Arima"}, 201)
    detail = refused(
        admin, "/model/insert-model-scenario", {"model_name": "Ghost", "description": "x"}, 400
    )
    assert "Ghost" in detail
    detail = refused(
        admin, "/model/insert-model-scenario", {"model_name": "Ghost", "description": None}, 400
    )
    assert "Ghost" in detail
    # `description` is required but nullable, as in DTBase (docs/api.md, Names, units and nulls).
    detail = refused(admin, "/model/insert-model-scenario", {"model_name": "Arima"}, 422)
    assert detail[0]["loc"] == ["body", "description"] and detail[0]["type"] == "missing"
    refused(admin, "/model/insert-model-scenario", {"model_name": "Arima", "description": 3}, 422)
    refused(admin, "/model/insert-model-scenario", {"description": "x"}, 422)
    assert admin.get("/model/list-model-scenarios").json() == []

    detail = refused(
        admin, "/model/delete-model-scenario", {"model_name": "Ghost", "description": "x"}, 400
    )
    assert "Ghost" in detail
    detail = refused(
        admin,
        "/model/delete-model-scenario",
        {"model_name": "Arima", "description": "Missing one"},
        400,
    )
    assert "Missing one" in detail and "Arima" in detail
    refused(admin, "/model/delete-model-scenario", {"model_name": "Arima"}, 422)


# --- measures -----------------------------------------------------------------------------


def test_measures(admin: Api) -> None:
    measures = [
        {"name": "Mean temperature", "units": "degC", "datatype": "float"},
        {"name": "Mean temperature", "units": "K", "datatype": "float"},
        {"name": "Count", "units": "", "datatype": "integer"},
        {"name": "Raining", "units": "bool", "datatype": "boolean"},
        {"name": "Label ✓", "units": "text", "datatype": "string"},
    ]
    for measure in measures:
        assert admin.ok("/model/insert-model-measure", measure, 201) == {
            "detail": "Model measure inserted"
        }
    # A duplicate (name, units) is a 409, as DTBase's docs promise (docs/api.md, Model
    # runs).
    detail = refused(
        admin,
        "/model/insert-model-measure",
        {"name": "Mean temperature", "units": "K", "datatype": "integer"},
        409,
    )
    assert detail == "Model measure exists already"
    listed = admin.get("/model/list-model-measures").json()
    assert listed == measures
    assert all(set(m) == {"name", "units", "datatype"} for m in listed)

    # Deleting by name deletes every measure with that name.
    assert admin.ok("/model/delete-model-measure", {"name": "Mean temperature"}) == {
        "detail": "Model measure deleted"
    }
    assert admin.get("/model/list-model-measures").json() == measures[2:]
    detail = refused(admin, "/model/delete-model-measure", {"name": "Mean temperature"}, 400)
    assert "Mean temperature" in detail


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "m", "units": "u", "datatype": "decimal"}, "datatype"),
        ({"name": "m", "units": "u", "datatype": None}, "datatype"),
        ({"name": "m", "units": "u"}, "datatype"),
        ({"name": "m", "units": None, "datatype": "float"}, "units"),
        ({"name": "m", "datatype": "float"}, "units"),
        ({"units": "u", "datatype": "float"}, "name"),
        ({"name": "m" * 101, "units": "u", "datatype": "float"}, "name"),
        ({"name": "m", "units": "u" * 101, "datatype": "float"}, "units"),
    ],
)
def test_insert_model_measure_validation(admin: Api, body: dict[str, Any], field: str) -> None:
    detail = refused(admin, "/model/insert-model-measure", body, 422)
    assert detail[0]["loc"] == ["body", field]
    assert admin.get("/model/list-model-measures").json() == []


# --- runs ---------------------------------------------------------------------------------


MEASURES = (
    ("Mean temperature", "degC", "float"),
    ("Count", "people", "integer"),
    ("Raining", "bool", "boolean"),
    ("Label", "text", "string"),
)


def test_insert_and_get_model_run(admin: Api) -> None:
    setup_arima(admin, MEASURES)
    shuffled = [iso(T0 + timedelta(hours=h)) for h in (2, 0, 1)]
    body = run_body(
        [
            # JSON integers are accepted for a float measure and stored as floats (docs/api.md,
            # Types are kept).
            product("Mean temperature", [2, 1.5, -0.25], shuffled),
            product("Count", [3, 0, -7], shuffled),
            product("Raining", [True, False, True], shuffled),
            product("Label", ["ß ✓", "'; drop table model_run; --", ""], shuffled),
            # An empty values list is a product with no values (docs/api.md, Model runs).
            product("Empty", [], []),
        ],
        time_created="2023-03-30T12:00:00.123456Z",
        sensor_unique_id=None,
        sensor_measure=None,
    )
    admin.ok(
        "/model/insert-model-measure", {"name": "Empty", "units": "x", "datatype": "float"}, 201
    )
    assert admin.ok("/model/insert-model-run", body, 201) == {"detail": "Model run inserted"}

    listed = runs(admin)
    assert listed == [
        {
            "id": 1,
            "model_id": 1,
            "model_name": "Arima",
            "scenario_id": 1,
            "scenario_description": "Business as usual",
            "time_created": "2023-03-30T12:00:00.123456Z",
            "sensor_unique_id": None,
            "sensor_measure": None,
        }
    ]
    assert set(listed[0]) == RUN_KEYS

    got = admin.ok("/model/get-model-run", {"run_id": 1}, 200)
    ordered = stamps(3)
    # Ascending by timestamp, whatever the order sent; types kept.
    assert got == {
        "Mean temperature": [
            {"value": 1.5, "timestamp": ordered[0]},
            {"value": -0.25, "timestamp": ordered[1]},
            {"value": 2.0, "timestamp": ordered[2]},
        ],
        "Count": [
            {"value": 0, "timestamp": ordered[0]},
            {"value": -7, "timestamp": ordered[1]},
            {"value": 3, "timestamp": ordered[2]},
        ],
        "Raining": [
            {"value": False, "timestamp": ordered[0]},
            {"value": True, "timestamp": ordered[1]},
            {"value": True, "timestamp": ordered[2]},
        ],
        "Label": [
            {"value": "'; drop table model_run; --", "timestamp": ordered[0]},
            {"value": "", "timestamp": ordered[1]},
            {"value": "ß ✓", "timestamp": ordered[2]},
        ],
        "Empty": [],
    }
    assert list(got) == ["Mean temperature", "Count", "Raining", "Label", "Empty"]
    # JSON types as sent: a float is a float even when whole, an int an int, a bool a bool.
    raw = admin.post("/model/get-model-run", {"run_id": 1}).text
    assert '"value":2.0' in raw and '"value":3,' in raw and '"value":true' in raw

    # DTBase's reply for an unknown run is kept (docs/api.md, Kept as DTBase has
    # them): 200 {}.
    assert admin.ok("/model/get-model-run", {"run_id": 99}, 200) == {}
    assert admin.ok("/model/get-model-run", {"run_id": "1"}, 200) == got  # coerced, as DTBase
    refused(admin, "/model/get-model-run", {"run_id": "one"}, 422)
    refused(admin, "/model/get-model-run", {}, 422)
    assert admin.ok("/model/get-model-run", {"run_id": -1}, 200) == {}
    assert admin.ok("/model/get-model-run", {"run_id": 2**31 - 1}, 200) == {}
    # Ids outside PostgreSQL's integer range are refused, naming the field.
    for path in (
        "/model/get-model-run",
        "/model/get-model-run-sensor-measure",
        "/model/delete-model-run",
    ):
        for run_id in (2**31, -(2**31) - 1, 10**30, 1.5, None, "x"):
            detail = refused(admin, path, {"run_id": run_id}, 422)
            assert detail[0]["loc"] == ["body", "run_id"], (path, run_id, detail)


def test_run_values_edge_cases(admin: Api, database: TestDatabase) -> None:
    setup_arima(admin, MEASURES)
    # The same instant twice in one product: the first value is kept (ON CONFLICT DO NOTHING),
    # including the same instant written with another offset.
    body = run_body(
        [
            product(
                "Count",
                [1, 2, 3],
                ["2023-01-01T01:00:00+01:00", "2023-01-01T00:00:00Z", "2023-01-01T00:30:00"],
            )
        ],
        time_created="2023-01-02T00:00:00",
    )
    admin.ok("/model/insert-model-run", body, 201)
    assert admin.ok("/model/get-model-run", {"run_id": 1}, 200) == {
        "Count": [
            {"value": 1, "timestamp": "2023-01-01T00:00:00Z"},
            {"value": 3, "timestamp": "2023-01-01T00:30:00Z"},
        ]
    }
    # A naive time_created is UTC.
    assert runs(admin)[0]["time_created"] == "2023-01-02T00:00:00Z"
    # Extreme but valid values survive.
    body = run_body(
        [product("Count", [2**63 - 1, -(2**63)]), product("Mean temperature", [1e308, 5e-324])],
        time_created="2023-01-03T00:00:00Z",
    )
    admin.ok("/model/insert-model-run", body, 201)
    got = admin.ok("/model/get-model-run", {"run_id": 2}, 200)
    assert [v["value"] for v in got["Count"]] == [2**63 - 1, -(2**63)]
    assert [v["value"] for v in got["Mean temperature"]] == [1e308, 5e-324]
    # A run with no products at all is accepted.
    admin.ok("/model/insert-model-run", run_body(time_created="2023-01-04T00:00:00Z"), 201)
    assert admin.ok("/model/get-model-run", {"run_id": 3}, 200) == {}
    assert len(runs(admin)) == 3
    assert count_rows(database, "model_product") == 3


def test_insert_model_run_scenario_rules(admin: Api) -> None:
    setup_arima(admin, MEASURES)
    body = run_body(
        [product("Count", [1])], scenario_description="New scenario", time_created=iso(T0)
    )
    detail = refused(admin, "/model/insert-model-run", body, 400)
    assert "New scenario" in detail and "Arima" in detail
    assert len(admin.get("/model/list-model-scenarios").json()) == 1

    admin.ok("/model/insert-model-run", {**body, "create_scenario": True}, 201)
    assert admin.get("/model/list-model-scenarios").json()[-1] == {
        "model_name": "Arima",
        "description": "New scenario",
    }
    assert runs(admin)[0]["scenario_id"] == 2
    # Once it exists, create_scenario is harmless.
    admin.ok(
        "/model/insert-model-run",
        {**body, "create_scenario": True, "time_created": iso(T0 + timedelta(1))},
        201,
    )
    assert len(admin.get("/model/list-model-scenarios").json()) == 2

    # (model, scenario, time_created) is unique: 409, and nothing else is written.
    detail = refused(admin, "/model/insert-model-run", body, 409)
    assert "exists already" in detail
    # The same instant in another scenario is fine.
    admin.ok("/model/insert-model-run", {**body, "scenario_description": "Business as usual"}, 201)
    assert [r["scenario_description"] for r in runs(admin)] == [
        "New scenario",
        "New scenario",
        "Business as usual",
    ]

    # An unknown model is a 400 naming it, even with create_scenario.
    detail = refused(
        admin,
        "/model/insert-model-run",
        {**body, "model_name": "Ghost", "create_scenario": True},
        400,
    )
    assert "Ghost" in detail
    assert admin.get("/model/list-models").json() == [{"name": "Arima"}]


def _bad_runs() -> list[tuple[dict[str, Any], int, str]]:
    """(body, status, a word the detail must contain (or the 422's loc, joined by dots))."""
    ok = product("Count", [1, 2])
    return [
        (run_body([ok, product("Nowhere", [1.0])]), 400, "Nowhere"),
        (run_body([ok], sensor_unique_id="ghost-sensor"), 400, "ghost-sensor"),
        (
            run_body([ok], sensor_measure={"name": "Ghost measure", "units": None}),
            400,
            "Ghost measure",
        ),
        (
            run_body([ok], sensor_measure={"name": "Ghost measure"}),
            422,
            "body.sensor_measure.units",
        ),
        (
            run_body([ok, product("Temperature", [1.0])]),
            422,
            "body.measures_and_values.1.measure_name",
        ),
        (run_body([ok, product("Count", [3])]), 422, "body.measures_and_values.1.measure_name"),
        (
            run_body([product("Count", [1, 2], stamps(3))]),
            422,
            "body.measures_and_values.0.timestamps",
        ),
        (run_body([product("Count", [], stamps(1))]), 422, "body.measures_and_values.0.timestamps"),
        (
            run_body([ok, product("Count2", [1, 2, True])]),
            422,
            "body.measures_and_values.1.values.2",
        ),
        (run_body([product("Count", [1, 2.0])]), 422, "body.measures_and_values.0.values.1"),
        (run_body([product("Count", [2**63])]), 422, "body.measures_and_values.0.values.0"),
        (
            run_body([product("Mean temperature", [1.0, "2.0"])]),
            422,
            "body.measures_and_values.0.values.1",
        ),
        (
            run_body([product("Mean temperature", [1.0, True])]),
            422,
            "body.measures_and_values.0.values.1",
        ),
        (run_body([product("Raining", [True, 1])]), 422, "body.measures_and_values.0.values.1"),
        (run_body([product("Label", ["a", 1])]), 422, "body.measures_and_values.0.values.1"),
        (run_body([product("Label", ["a\x00b"])]), 422, "body.measures_and_values.0.values.0"),
        (run_body([product("Count", [1, None])]), 422, "body.measures_and_values.0.values.1"),
        (
            run_body([product("Count", [1], ["yesterday"])]),
            422,
            "body.measures_and_values.0.timestamps.0",
        ),
        (run_body([ok], scenario_description=None), 422, "body.scenario_description"),
        (run_body([ok], model_name="m" * 101), 422, "body.model_name"),
        (
            run_body([{"measure_name": "Count", "values": [1]}]),
            422,
            "body.measures_and_values.0.timestamps",
        ),
        (run_body([ok], time_created="not a time"), 422, "body.time_created"),
        (run_body([ok], create_scenario="perhaps"), 422, "body.create_scenario"),
        ({"model_name": "Arima", "scenario_description": "x"}, 422, "body.measures_and_values"),
    ]


def test_insert_model_run_failures_write_nothing(admin: Api, database: TestDatabase) -> None:
    more = (
        ("Temperature", "degC", "float"),
        ("Temperature", "K", "float"),
        ("Count2", "n", "integer"),
    )
    setup_arima(admin, (*MEASURES, *more))
    for body, status, expected in _bad_runs():
        # A new scenario with create_scenario: a refusal later on must not leave it behind.
        body = {"create_scenario": True, "time_created": iso(T0), **body}
        if body.get("scenario_description") == "Business as usual":
            body["scenario_description"] = "Created then rolled back"
        detail = refused(admin, "/model/insert-model-run", body, status)
        if status == 422:
            # Pydantic's union errors add the member's name after the field's loc.
            locs = [".".join(str(p) for p in item["loc"]) for item in detail]
            assert any(loc == expected or loc.startswith(expected + ".") for loc in locs), (
                body,
                detail,
            )
        else:
            assert expected in detail, (body, detail)
    # The ambiguous name is named in the message, with the units it exists with.
    detail = refused(
        admin, "/model/insert-model-run", run_body([product("Temperature", [1.0])]), 422
    )
    assert "'Temperature' is ambiguous" in detail[0]["msg"] and "'K'" in detail[0]["msg"]
    assert runs(admin) == []
    assert admin.get("/model/list-model-scenarios").json() == [
        {"model_name": "Arima", "description": "Business as usual"}
    ]
    assert count_rows(database, "model_run", "model_product", *VALUE_TABLES) == 0


def test_list_model_runs_filters(admin: Api) -> None:
    setup_arima(admin, MEASURES)
    admin.ok("/model/insert-model-scenario", {"model_name": "Arima", "description": "Hot"}, 201)
    now = datetime.now(UTC)
    times = {
        "old": now - timedelta(days=8),
        "recent": now - timedelta(days=1),
        "future": now + timedelta(days=1),
    }
    for when in times.values():
        admin.ok("/model/insert-model-run", run_body(time_created=iso(when)), 201)
    admin.ok("/model/insert-model-run", run_body(), 201)  # time_created: now
    admin.ok(
        "/model/insert-model-run",
        run_body(scenario_description="Hot", time_created="2023-06-01T12:00:00+02:00"),
        201,
    )
    admin.ok(
        "/model/insert-model-run",
        run_body(scenario_description="Hot", time_created="2023-06-02T10:00:00"),
        201,
    )

    # Default window: the last 7 days up to now, in insertion order.
    default = admin.ok("/model/list-model-runs", {"model_name": "Arima"}, 200)
    assert [r["id"] for r in default] == [2, 4]
    assert default[0]["time_created"] == iso(times["recent"])
    created = datetime.fromisoformat(default[1]["time_created"])
    assert created.tzinfo is not None and abs(created - now) < timedelta(minutes=5)

    assert [r["id"] for r in runs(admin)] == [1, 2, 3, 4, 5, 6]
    hot = runs(admin, scenario="Hot")
    assert [(r["id"], r["time_created"], r["scenario_description"]) for r in hot] == [
        (5, "2023-06-01T10:00:00Z", "Hot"),
        (6, "2023-06-02T10:00:00Z", "Hot"),
    ]
    assert runs(admin, scenario="hot") == []
    # Both bounds inclusive; naive bounds are UTC.
    inclusive = {"dt_from": "2023-06-01T10:00:00", "dt_to": "2023-06-02T12:00:00+02:00"}
    assert [
        r["id"]
        for r in admin.ok("/model/list-model-runs", {"model_name": "Arima", **inclusive}, 200)
    ] == [5, 6]
    just_after = {"dt_from": "2023-06-01T10:00:00.000001Z", "dt_to": "2023-06-02T09:59:59Z"}
    assert admin.ok("/model/list-model-runs", {"model_name": "Arima", **just_after}, 200) == []
    assert admin.ok("/model/list-model-runs", {"model_name": "Ghost", **WIDE}, 200) == []
    assert (
        admin.ok(
            "/model/list-model-runs",
            {
                "model_name": "Arima",
                "dt_from": "2024-01-01T00:00:00Z",
                "dt_to": "2023-01-01T00:00:00Z",
            },
            200,
        )
        == []
    )
    refused(admin, "/model/list-model-runs", {"model_name": "Arima", "dt_from": "soon"}, 422)
    refused(admin, "/model/list-model-runs", {}, 422)
    assert admin.post("/model/list-model-runs").status_code == 422


def test_deletes_blocked_by_runs_and_delete_model_run(admin: Api, database: TestDatabase) -> None:
    setup_arima(admin, MEASURES)
    for day in range(2):
        admin.ok(
            "/model/insert-model-run",
            run_body(
                [product("Count", [1, 2]), product("Mean temperature", [0.5])],
                time_created=iso(T0 + timedelta(days=day)),
            ),
            201,
        )

    detail = refused(admin, "/model/delete-model", {"name": "Arima"}, 409)
    assert "Arima" in detail and "2 model runs" in detail
    detail = refused(
        admin,
        "/model/delete-model-scenario",
        {"model_name": "Arima", "description": "Business as usual"},
        409,
    )
    assert "Business as usual" in detail and "2 model runs" in detail
    detail = refused(admin, "/model/delete-model-measure", {"name": "Count"}, 409)
    assert "Count" in detail and "2 model products" in detail
    # Nothing went.
    assert len(runs(admin)) == 2
    assert len(admin.get("/model/list-model-scenarios").json()) == 1
    assert len(admin.get("/model/list-model-measures").json()) == 4
    # A measure no product uses can go.
    admin.ok("/model/delete-model-measure", {"name": "Label"})

    assert admin.ok("/model/delete-model-run", {"run_id": 1}) == {"detail": "Model run deleted"}
    assert admin.ok("/model/get-model-run", {"run_id": 1}, 200) == {}
    assert [r["id"] for r in runs(admin)] == [2]
    detail = refused(admin, "/model/delete-model-run", {"run_id": 1}, 400)
    assert detail == "No such model run"
    refused(admin, "/model/delete-model-run", {"run_id": "x"}, 422)
    detail = refused(admin, "/model/delete-model", {"name": "Arima"}, 409)
    assert "1 model run;" in detail
    # The deleted run's products and values went with it (every value table cascades).
    assert count_rows(database, "model_product") == 2
    assert count_rows(database, "model_integer_value", "model_float_value") == 3

    admin.ok("/model/delete-model-run", {"run_id": 2})
    assert count_rows(database, "model_product", *VALUE_TABLES) == 0
    admin.ok("/model/delete-model-measure", {"name": "Count"})
    admin.ok(
        "/model/delete-model-scenario", {"model_name": "Arima", "description": "Business as usual"}
    )
    admin.ok("/model/delete-model", {"name": "Arima"})
    assert admin.get("/model/list-models").json() == []


def test_large_run_round_trip(admin: Api, database: TestDatabase) -> None:
    setup_arima(admin, MEASURES)
    n = 20_000
    times = stamps(n)
    body = run_body(
        [
            product("Mean temperature", [i / 4 for i in range(n)], times),
            product("Count", list(range(n)), times),
            product("Raining", [i % 2 == 0 for i in range(n)], times),
        ],
        time_created=iso(T0),
    )
    admin.ok("/model/insert-model-run", body, 201)
    assert count_rows(database, *VALUE_TABLES) == 3 * n
    got = admin.ok("/model/get-model-run", {"run_id": 1}, 200)
    assert [v["value"] for v in got["Mean temperature"]] == [i / 4 for i in range(n)]
    assert [v["value"] for v in got["Count"]] == list(range(n))
    assert [v["timestamp"] for v in got["Raining"]] == times


# --- sensors ------------------------------------------------------------------------------


def make_sensor(api: Api) -> None:
    api.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "Weather",
            "description": "A weather station",
            "measures": [
                {"name": "Temperature", "units": "degC", "datatype": "float"},
                {"name": "Temperature", "units": None, "datatype": "float"},
                {"name": "Raining", "units": None, "datatype": "boolean"},
            ],
        },
        201,
    )
    api.ok("/sensor/insert-sensor", {"type_name": "Weather", "unique_identifier": "station-1"}, 201)


def test_runs_with_sensor(admin: Api) -> None:
    setup_arima(admin, MEASURES)
    make_sensor(admin)
    with_sensor = run_body(
        [product("Mean temperature", [1.0])],
        time_created=iso(T0),
        sensor_unique_id="station-1",
        sensor_measure={"name": "Temperature", "units": "degC"},
    )
    admin.ok("/model/insert-model-run", with_sensor, 201)
    # null units are a value: (Temperature, null) is a measure of its own.
    admin.ok(
        "/model/insert-model-run",
        {
            **with_sensor,
            "time_created": iso(T0 + timedelta(1)),
            "sensor_measure": {"name": "Temperature", "units": None},
        },
        201,
    )
    admin.ok(
        "/model/insert-model-run",
        {**with_sensor, "time_created": iso(T0 + timedelta(2)), "sensor_measure": None},
        201,
    )
    admin.ok("/model/insert-model-run", run_body(time_created=iso(T0 + timedelta(3))), 201)

    listed = runs(admin)
    assert [(r["sensor_unique_id"], r["sensor_measure"]) for r in listed] == [
        ("station-1", {"name": "Temperature", "units": "degC"}),
        ("station-1", {"name": "Temperature", "units": None}),
        ("station-1", None),
        (None, None),
    ]
    assert all(set(r) == RUN_KEYS for r in listed)
    for run, expected in zip(
        listed,
        (
            {
                "sensor_unique_id": "station-1",
                "sensor_measure": {"name": "Temperature", "units": "degC"},
            },
            {
                "sensor_unique_id": "station-1",
                "sensor_measure": {"name": "Temperature", "units": None},
            },
            {"sensor_unique_id": "station-1", "sensor_measure": None},
            {"sensor_unique_id": None, "sensor_measure": None},
        ),
        strict=True,
    ):
        assert (
            admin.ok("/model/get-model-run-sensor-measure", {"run_id": run["id"]}, 200) == expected
        )
    detail = refused(admin, "/model/get-model-run-sensor-measure", {"run_id": 99}, 400)
    assert detail == "No such model run"

    # A sensor measure is found by exact (name, units).
    for measure in ({"name": "Temperature", "units": "K"}, {"name": "Raining", "units": "x"}):
        detail = refused(
            admin,
            "/model/insert-model-run",
            {**with_sensor, "time_created": iso(T0 + timedelta(9)), "sensor_measure": measure},
            400,
        )
        assert measure["name"] in detail
    detail = refused(
        admin,
        "/model/insert-model-run",
        {**with_sensor, "time_created": iso(T0 + timedelta(9)), "sensor_unique_id": "station-2"},
        400,
    )
    assert "station-2" in detail
    assert len(runs(admin)) == 4


# --- auth ---------------------------------------------------------------------------------


def test_every_endpoint_needs_a_token(anon: Api, admin: Api) -> None:
    for method, path in ENDPOINTS:
        reply = anon.get(path) if method == "GET" else anon.post(path)
        assert reply.status_code == 401, (path, reply.text)
        assert reply.json() == {"detail": "Not authenticated"}
        # The wrong verb is a 405.
        wrong = admin.post(path, {}) if method == "GET" else admin.get(path)
        assert wrong.status_code == 405, (path, wrong.status_code)


def test_openapi_lists_model_routes(anon: Api) -> None:
    paths = anon.get("/openapi.json").json()["paths"]
    for method, path in ENDPOINTS:
        assert method.lower() in paths[path], path
