"""Telemetry messages and the dead-letter listing (docs/api.md, Device telemetry)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from dtbase_core.schemas.common import Body, Name, Units, UtcDatetime, Value
from dtbase_core.schemas.sensors import Readings, Timestamps


class TelemetrySeries(Body):
    """The body of insert-sensor-readings; the device id may stand for the sensor."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    unique_identifier: Name | None = None
    measure_name: Name
    units: Units | None = None  # when sent, it must be the measure's
    readings: Readings
    timestamps: Timestamps


class TelemetrySample(Body):
    """Several measures of one sensor at one instant."""

    unique_identifier: Name | None = None
    timestamp: UtcDatetime
    values: Annotated[dict[Name, Value], Field(min_length=1)]


class DeadLettersIn(Body):
    since: UtcDatetime | None = None


class DeadLetterOut(BaseModel):
    id: int
    received_at: datetime
    source: str
    device_id: str | None
    payload: str
    payload_bytes: int
    reason: str
