"""Parameter schemas (dtbase_core/parameter_schemas.py) and the app's own services
registered at start-up (dtbase_core/own_services.py), in the core."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import own_services, parameter_schemas, services
from dtbase_core.config import get_settings
from dtbase_core.errors import Invalid
from dtbase_core.orm import Service
from tests.support import TestDatabase, replace_settings

DAYS = {
    "type": "object",
    "properties": {
        "days": {"type": "integer", "minimum": 1},
        "site": {"type": "object", "properties": {"name": {"type": "string"}}},
    },
    "required": ["days"],
}


def test_valid_parameters_pass_and_no_schema_takes_anything() -> None:
    parameter_schemas.validate(DAYS, {"days": 3}, service_name="s")
    parameter_schemas.validate(None, [1, "anything"], service_name="s")


def test_an_invalid_value_names_its_path_and_the_service() -> None:
    with pytest.raises(Invalid) as bad:
        parameter_schemas.validate(DAYS, {"days": -3, "site": {"name": 7}}, service_name="weather")
    assert bad.value.items == [
        (
            ("body", "parameters", "days"),
            "parameters.days: -3 is less than the minimum of 1 "
            "(the parameters schema of service 'weather')",
        ),
        (
            ("body", "parameters", "site", "name"),
            "parameters.site.name: 7 is not of type 'string' "
            "(the parameters schema of service 'weather')",
        ),
    ]
    with pytest.raises(Invalid, match=r"parameters: 'days' is a required property"):
        parameter_schemas.validate(DAYS, {}, service_name="weather")
    # Parameters from a set: the field that chose them, and the set, are named.
    with pytest.raises(Invalid) as bad:
        parameter_schemas.validate(
            DAYS,
            {"days": 0},
            service_name="weather",
            loc=("body", "parameter_set_name"),
            source="parameter set 'p'",
        )
    assert bad.value.loc == ("body", "parameter_set_name")
    assert "parameters.days: 0 is less than the minimum of 1 (parameter set 'p'" in (
        bad.value.detail
    )


def test_a_schema_must_itself_be_valid() -> None:
    parameter_schemas.check_schema(DAYS)
    with pytest.raises(Invalid) as bad:
        parameter_schemas.check_schema({"type": "object", "properties": {"days": {"type": 5}}})
    assert bad.value.loc == ("body", "parameters_schema", "properties", "days", "type")
    assert bad.value.detail.startswith(
        "parameters_schema.properties.days.type: not a valid JSON Schema: 5 is not valid"
    )
    with pytest.raises(Invalid, match="minimum"):
        parameter_schemas.check_schema({"minimum": "one"})
    # Its own dialect's metaschema, when it names one.
    with pytest.raises(Invalid, match="not a valid JSON Schema"):
        parameter_schemas.check_schema(
            {"$schema": "http://json-schema.org/draft-04/schema#", "exclusiveMinimum": 1}
        )


# --- the app's own services ---------------------------------------------------------


@pytest.fixture
def session(database: TestDatabase) -> Iterator[Session]:
    from dtbase_core.migrations import upgrade

    upgrade(database.url)
    with Session(database.engine) as session:
        session.execute(sa.delete(Service))  # rolled back at the end
        yield session
        session.rollback()


def _rows(session: Session) -> list[tuple[str, str, bool, dict]]:
    return [
        (r.name, r.url, r.use_service_key, r.parameters_schema)
        for r in session.execute(sa.select(Service).order_by(Service.id)).scalars()
    ]


def test_own_services_register_once_and_follow_changes(session: Session) -> None:
    settings = replace_settings(
        get_settings(), services={"backend_url": "https://twin.example/api"}
    )
    assert own_services.register(session, settings) == ["weather-ingress", "arima-forecast"]
    assert own_services.register(session, settings) == []  # up to date: nothing written
    rows = _rows(session)
    assert [(name, url, key) for name, url, key, _ in rows] == [
        ("weather-ingress", "https://twin.example/api/ingress/weather", True),
        ("arima-forecast", "https://twin.example/api/forecast/arima", True),
    ]
    weather_schema = rows[0][3]
    assert weather_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(weather_schema["properties"]) >= {"dt_from", "dt_to", "latitude", "longitude"}
    parameter_schemas.check_schema(rows[1][3])

    # An older deployment's schema, and a new address: both updated, nothing duplicated.
    session.execute(
        sa.update(Service)
        .where(Service.name == "weather-ingress")
        .values(parameters_schema={"type": "object"})
    )
    moved = replace_settings(settings, services={"backend_url": "https://new.example/api/"})
    assert own_services.register(session, moved) == ["weather-ingress", "arima-forecast"]
    rows = _rows(session)
    assert len(rows) == 2
    assert rows[0][1] == "https://new.example/api/ingress/weather"
    assert rows[0][3] == weather_schema
    # Their schemas are what the routes validate: a latitude out of range is refused.
    with pytest.raises(Invalid, match=r"parameters.latitude: 91 is greater than the maximum"):
        services.insert_parameter_set(
            session, service_name="weather-ingress", name="bad", parameters={"latitude": 91}
        )
    services.insert_parameter_set(
        session, service_name="weather-ingress", name="ok", parameters={"dt_from": "present"}
    )


def test_own_services_can_be_left_out(session: Session) -> None:
    settings = replace_settings(get_settings(), services={"register_own_services": False})
    assert own_services.register(session, settings) == []
    assert _rows(session) == []
