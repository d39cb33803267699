"""Bodies and replies of /model (docs/api.md, Models; Names and units together; Model runs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from dtbase_core.orm.base import Datatype
from dtbase_core.schemas.common import (
    Body,
    Name,
    ReadingsBody,
    Units,
    UtcDatetime,
    Value,
    each,
    longest_list,
)


class ModelNameIn(Body):
    name: Name


class ModelOut(BaseModel):
    name: str


class ModelScenarioIn(Body):
    model_name: Name
    # Required but nullable, as in DTBase; a null description is a value (docs/api.md,
    # Names, units and nulls).
    description: str | None


class ModelScenarioOut(BaseModel):
    model_name: str
    description: str | None


class ModelMeasureIn(Body):
    name: Name
    units: Units
    datatype: Datatype


class ModelMeasureOut(BaseModel):
    name: str
    units: str
    datatype: Datatype


class MeasureNameIn(Body):
    name: Name


class SensorMeasureRef(BaseModel):
    """A sensor measure by (name, units); null units are a value (docs/api.md, Names and
    units together)."""

    name: Name
    units: Units | None


class ProductIn(BaseModel):
    """One product of a run: the values of one model measure, found by name."""

    measure_name: Name
    values: list[Value]
    timestamps: list[UtcDatetime]


class ModelRunIn(ReadingsBody):
    model_name: Name
    scenario_description: str
    measures_and_values: list[ProductIn]
    time_created: UtcDatetime | None = None
    create_scenario: bool = False
    sensor_unique_id: Name | None = None
    sensor_measure: SensorMeasureRef | None = None
    # The model's own figures about the run, e.g. {"RMSE": 0.8, "MAPE": 0.03} (an
    # extension: DTBase has no such field).
    metrics: dict[str, Any] | None = None

    @classmethod
    def count_readings(cls, raw: Any) -> int:
        products = each(raw, "measures_and_values")
        return sum(longest_list(one, "values", "timestamps") for one in products)


class ListModelRunsIn(Body):
    model_name: Name
    dt_from: UtcDatetime | None = None
    dt_to: UtcDatetime | None = None
    scenario: str | None = None


class ModelRunOut(BaseModel):
    """A `list-model-runs` item, with exactly DTBase's keys (docs/api.md, Models)."""

    id: int
    model_id: int
    model_name: str
    scenario_id: int | None
    scenario_description: str | None
    time_created: datetime
    sensor_unique_id: str | None
    sensor_measure: SensorMeasureRef | None
    # Present only for runs stored with metrics, so that other runs list exactly DTBase's
    # keys.
    metrics: dict[str, Any] | None = None


# Run ids are PostgreSQL integers: anything outside their range is refused, naming the field.
RunId = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]


class RunIdIn(Body):
    run_id: RunId


class RunValue(BaseModel):
    value: Value
    timestamp: datetime


class RunSensorMeasure(BaseModel):
    sensor_unique_id: str | None
    sensor_measure: SensorMeasureRef | None
