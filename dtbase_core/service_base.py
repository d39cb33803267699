"""Base classes for services (ingress and models), in the spirit of DTBase's
`dtbase/services/base.py` (README, "Running a service outside the function app"), with
one fix (docs/api.md, Weather ingress and forecasts): a failed call raises with the
server's `detail`, and only `AlreadyExists` during idempotent set-up is not a failure.

A service talks to DTBase through a `Backend`, one of:

- `DTBaseClient` (dtbase_core/client.py): the API over HTTP, signed in as the service
  user. This is how a service runs outside the function app (a script, another host).
- `CoreBackend`: the core functions on a session, inside the caller's transaction. The
  function app's own timers, HTTP functions and activities use this: no HTTP round trip
  to itself, and the whole run commits or rolls back as one.

Both raise `DomainError`s (the client's `ApiError` is one) carrying `status_code` and
`detail`, so a service handles either alike.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import locations, models, readings, sensors
from dtbase_core.client import DTBaseClient, Reading
from dtbase_core.errors import AlreadyExists, NotFound
from dtbase_core.orm import Sensor, SensorMeasure, SensorTypeMeasure
from dtbase_core.schemas.locations import InsertLocationIn
from dtbase_core.schemas.models import ModelMeasureIn, ModelNameIn, ModelRunIn, ModelScenarioIn
from dtbase_core.schemas.sensors import (
    BulkReadingsIn,
    OnConflict,
    SensorIn,
    SensorLocationIn,
    SensorTypeIn,
)

log = logging.getLogger(__name__)


class Backend(Protocol):
    """What services need from DTBase. The `ensure_*` set-up steps return False when the
    thing existed already."""

    def ensure_sensor_type(
        self, name: str, description: str | None, measures: Sequence[Mapping[str, Any]]
    ) -> bool: ...

    def ensure_sensor(
        self,
        type_name: str,
        unique_identifier: str,
        name: str | None = None,
        notes: str | None = None,
    ) -> bool: ...

    def ensure_location(
        self, identifiers: Sequence[Mapping[str, Any]], values: list[Any]
    ) -> bool: ...

    def sensor_locations(self, unique_identifier: str) -> list[dict[str, Any]]: ...

    def insert_sensor_location(
        self,
        unique_identifier: str,
        schema_name: str,
        coordinates: Mapping[str, Any],
        installation_datetime: datetime | None = None,
    ) -> None: ...

    def insert_readings_bulk(
        self, series: Sequence[Mapping[str, Any]], on_conflict: OnConflict = "ignore"
    ) -> dict[str, int]: ...

    def sensor_readings(
        self, unique_identifier: str, measure_name: str, dt_from: datetime, dt_to: datetime
    ) -> list[Reading]: ...

    def measure_units(self, unique_identifier: str, measure_name: str) -> list[str | None]: ...

    def ensure_model(self, name: str) -> bool: ...

    def ensure_model_scenario(self, model_name: str, description: str | None) -> bool: ...

    def ensure_model_measure(self, name: str, units: str, datatype: str) -> bool: ...

    def insert_model_run(
        self,
        *,
        model_name: str,
        scenario_description: str,
        measures_and_values: Sequence[Mapping[str, Any]],
        time_created: datetime | None = None,
        create_scenario: bool = False,
        sensor_unique_id: str | None = None,
        sensor_measure: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> int: ...

    def find_model_run(
        self, model_name: str, scenario_description: str, created: datetime
    ) -> int: ...


class CoreBackend:
    """The Backend on a session: the same schemas and core functions as the endpoints,
    in the caller's transaction. Each set-up step runs in a savepoint, so a refused one
    leaves the transaction usable."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _ensure(self, step: Any, **kwargs: Any) -> bool:
        try:
            with self.session.begin_nested():
                step(self.session, **kwargs)
        except AlreadyExists:
            return False
        return True

    # --- sensors ---------------------------------------------------------------------------

    def ensure_sensor_type(
        self, name: str, description: str | None, measures: Sequence[Mapping[str, Any]]
    ) -> bool:
        body = SensorTypeIn.model_validate(
            {"name": name, "description": description, "measures": list(measures)}
        )
        return self._ensure(sensors.insert_sensor_type, **body.model_dump())

    def ensure_sensor(
        self,
        type_name: str,
        unique_identifier: str,
        name: str | None = None,
        notes: str | None = None,
    ) -> bool:
        body = SensorIn.model_validate(
            {
                "type_name": type_name,
                "unique_identifier": unique_identifier,
                "name": name,
                "notes": notes,
            }
        )
        return self._ensure(sensors.insert_sensor, **body.model_dump())

    def ensure_location(self, identifiers: Sequence[Mapping[str, Any]], values: list[Any]) -> bool:
        body = InsertLocationIn.model_validate({"identifiers": list(identifiers), "values": values})
        return self._ensure(
            locations.insert_location,
            identifiers=[i.model_dump() for i in body.identifiers],
            values=body.values,
        )

    def sensor_locations(self, unique_identifier: str) -> list[dict[str, Any]]:
        return sensors.list_sensor_locations(self.session, unique_identifier=unique_identifier)

    def insert_sensor_location(
        self,
        unique_identifier: str,
        schema_name: str,
        coordinates: Mapping[str, Any],
        installation_datetime: datetime | None = None,
    ) -> None:
        body = SensorLocationIn.model_validate(
            {
                "unique_identifier": unique_identifier,
                "schema_name": schema_name,
                "coordinates": dict(coordinates),
                "installation_datetime": installation_datetime,
            }
        )
        sensors.insert_sensor_location(self.session, **body.model_dump())

    def insert_readings_bulk(
        self, series: Sequence[Mapping[str, Any]], on_conflict: OnConflict = "ignore"
    ) -> dict[str, int]:
        body = BulkReadingsIn.model_validate(
            {"series": [dict(s) for s in series], "on_conflict": on_conflict}
        )
        return readings.insert_readings_bulk(
            self.session, series=[dict(s) for s in body.series], on_conflict=body.on_conflict
        )

    def sensor_readings(
        self, unique_identifier: str, measure_name: str, dt_from: datetime, dt_to: datetime
    ) -> list[Reading]:
        rows = readings.sensor_readings(
            self.session,
            measure_name=measure_name,
            unique_identifier=unique_identifier,
            dt_from=dt_from,
            dt_to=dt_to,
        )
        return [Reading(row["value"], row["timestamp"]) for row in rows]

    def measure_units(self, unique_identifier: str, measure_name: str) -> list[str | None]:
        return list(
            self.session.scalars(
                sa.select(SensorMeasure.units)
                .join(SensorTypeMeasure, SensorTypeMeasure.measure_id == SensorMeasure.id)
                .join(Sensor, Sensor.type_id == SensorTypeMeasure.type_id)
                .where(
                    Sensor.unique_identifier == unique_identifier,
                    SensorMeasure.name == measure_name,
                )
                .order_by(SensorMeasure.id)
            )
        )

    # --- models ----------------------------------------------------------------------------

    def ensure_model(self, name: str) -> bool:
        return self._ensure(models.insert_model, name=ModelNameIn(name=name).name)

    def ensure_model_scenario(self, model_name: str, description: str | None) -> bool:
        body = ModelScenarioIn(model_name=model_name, description=description)
        return self._ensure(models.insert_model_scenario, **body.model_dump())

    def ensure_model_measure(self, name: str, units: str, datatype: str) -> bool:
        body = ModelMeasureIn.model_validate({"name": name, "units": units, "datatype": datatype})
        return self._ensure(models.insert_model_measure, **body.model_dump())

    def insert_model_run(
        self,
        *,
        model_name: str,
        scenario_description: str,
        measures_and_values: Sequence[Mapping[str, Any]],
        time_created: datetime | None = None,
        create_scenario: bool = False,
        sensor_unique_id: str | None = None,
        sensor_measure: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> int:
        body = ModelRunIn.model_validate(
            {
                "model_name": model_name,
                "scenario_description": scenario_description,
                "measures_and_values": [dict(p) for p in measures_and_values],
                "time_created": time_created,
                "create_scenario": create_scenario,
                "sensor_unique_id": sensor_unique_id,
                "sensor_measure": dict(sensor_measure) if sensor_measure is not None else None,
                "metrics": dict(metrics) if metrics is not None else None,
            }
        )
        return models.insert_model_run(self.session, **dict(body))

    def find_model_run(self, model_name: str, scenario_description: str, created: datetime) -> int:
        runs = models.list_model_runs(
            self.session,
            model_name=model_name,
            dt_from=created,
            dt_to=created,
            scenario=scenario_description,
        )
        if not runs:
            raise NotFound(f"No run of model '{model_name}' created at {created.isoformat()}")
        return int(runs[0]["id"])


class BaseService(ABC):
    """A service: set-up that may have been done before, then work that must not fail
    silently. Subclasses implement `run(**kwargs)` and return a JSON-able summary;
    calling the object runs it (as DTBase's `__call__`)."""

    service_type: ClassVar[str] = "service"

    def __init__(self, backend: Backend | None = None) -> None:
        self.backend: Backend = backend if backend is not None else DTBaseClient.from_settings()

    @abstractmethod
    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Do the work; raise (a DomainError with the server's detail) on any failure."""

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        return self.run(**kwargs)


class BaseIngress(BaseService):
    """A service that brings data from outside into DTBase (sensor readings)."""

    service_type = "ingress"


class BaseModel(BaseService):
    """A service that computes model runs from data in DTBase."""

    service_type = "model"
