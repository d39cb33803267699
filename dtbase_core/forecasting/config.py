"""The ARIMA forecast's configuration (docs/api.md, Forecasts): four sections, every one optional,
every key with DTBase's default.

The HTTP starter validates a request body with `ArimaConfig`; a bad value is a 422 naming
the section and key (`["body", "arima", "alpha"]`). Unknown keys inside a section are
refused rather than ignored, so that a misspelt key does not silently fall back to its
default. The timer runs `default_config()`: the defaults, or DT_FORECAST_CONFIG (a JSON
object in the same shape) when that is set.

Fixes (docs/api.md, Weather ingress and forecasts): `predict_from_datetime` left out means
"now" when the run starts (not when a module was imported); the unit half of
`include_measures` is honoured.
`window` is accepted for compatibility with DTBase configurations and, as in DTBase, not
used.

No pandas here: the starter imports this module on the HTTP path.
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from dtbase_core.config import Settings, get_settings
from dtbase_core.schemas.common import Body, Name, Units, UtcDatetime

NonNegative = Annotated[int, Field(ge=0, le=1000)]
MODEL_NAME = "Arima"
SCENARIO = "Business as usual"
PRODUCT_PREFIXES = ("Mean ", "Upper Bound ", "Lower Bound ")
MeasureRef = tuple[Name, Units | None]


def _parse_clock(value: str, field: str) -> timedelta:
    """ "HH:MM:SS" (DTBase's "16h00m00s" is accepted too) as a duration from midnight."""
    text = value.strip().lower()
    for separator in (":", None):
        try:
            if separator:
                parts = [int(p) for p in text.split(":")]
            else:
                cleaned = text.replace("h", ":").replace("m", ":").replace("s", "")
                parts = [int(p) for p in cleaned.strip(":").split(":")]
        except ValueError:
            continue
        if len(parts) == 3 and all(p >= 0 for p in parts) and parts[1] < 60 and parts[2] < 60:
            return timedelta(hours=parts[0], minutes=parts[1], seconds=parts[2])
    raise ValueError(f"{field} must be a time of day or duration written HH:MM:SS, got {value!r}")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArimaSection(Section):
    arima_order: tuple[NonNegative, NonNegative, NonNegative] = (4, 1, 2)
    seasonal_order: tuple[NonNegative, NonNegative, NonNegative, NonNegative] = (1, 1, 0, 24)
    # statsmodels' trend: "n", "c", "t", "ct", or a polynomial's coefficients mask.
    trend: str | list[Annotated[int, Field(ge=0, le=1)]] | None = None
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.32  # a 68 % interval
    hours_forecast: Annotated[int, Field(gt=0, le=24 * 31)] = 48
    perform_cv: bool = True
    cv_refit: bool = False

    @field_validator("trend")
    @classmethod
    def _trend(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in ("n", "c", "t", "ct"):
            raise ValueError("trend must be 'n', 'c', 't', 'ct', a list of 0/1 or null")
        return value

    @field_validator("seasonal_order")
    @classmethod
    def _season(cls, value: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        if value[3] == 1 or (value[3] == 0 and any(value[:3])):
            raise ValueError("the seasonal period (4th number) must be 0 (none) or at least 2")
        return value


class DataSection(Section):
    num_days_training: Annotated[int, Field(ge=1, le=365)] = 60
    mins_from_the_hour: Annotated[int, Field(ge=0, le=30)] = 15
    time_delta: str = "01:00:00"
    window: Annotated[int, Field(ge=1)] = 3
    predict_from_datetime: UtcDatetime | None = None

    @field_validator("time_delta")
    @classmethod
    def _time_delta(cls, value: str) -> str:
        step = _parse_clock(value, "time_delta")
        if step <= timedelta(0) or timedelta(days=1) % step:
            raise ValueError("time_delta must be a positive step that divides a day")
        return value

    @property
    def step(self) -> timedelta:
        return _parse_clock(self.time_delta, "time_delta")


class SensorsSection(Section):
    include_sensors: Annotated[list[Name], Field(min_length=1, max_length=100)] = ["TRH1"]
    # (name, units) pairs; null units are a value (docs/api.md, Names and units together).
    include_measures: Annotated[list[MeasureRef], Field(min_length=1, max_length=20)] = [
        ("Temperature", "Degrees C"),
        ("Humidity", "Percent"),
    ]


class OthersSection(Section):
    farm_cycle_start: str = "16:00:00"
    days_interval: Annotated[int, Field(ge=1, le=365)] = 30
    weekly_seasonality: bool = True

    @field_validator("farm_cycle_start")
    @classmethod
    def _cycle(cls, value: str) -> str:
        if _parse_clock(value, "farm_cycle_start") >= timedelta(days=1):
            raise ValueError("farm_cycle_start must be a time of day (below 24:00:00)")
        return value

    @field_validator("weekly_seasonality")
    @classmethod
    def _weekly(cls, value: bool, info: ValidationInfo) -> bool:
        days = info.data.get("days_interval")
        if value and days is not None and days < 30:
            raise ValueError(
                f"weekly_seasonality needs days_interval >= 30 (it is {days}): a pseudo-season "
                "must hold several weeks"
            )
        return value

    @property
    def cycle_start(self) -> time:
        seconds = int(_parse_clock(self.farm_cycle_start, "farm_cycle_start").total_seconds())
        return time(seconds // 3600, seconds // 60 % 60, seconds % 60)


class ArimaConfig(Body):
    """The body of POST /api/forecast/arima; every section optional."""

    arima: ArimaSection = Field(default_factory=ArimaSection)
    data: DataSection = Field(default_factory=DataSection)
    sensors: SensorsSection = Field(default_factory=SensorsSection)
    others: OthersSection = Field(default_factory=OthersSection)

    @model_validator(mode="before")
    @classmethod
    def _null_sections(cls, value: Any) -> Any:
        """A section given as null is a section of defaults."""
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if v is not None}
        return value

    def series(self) -> list[tuple[str, str, str | None]]:
        """(sensor, measure name, units) for every sensor and measure, in config order."""
        return [
            (sensor, name, units)
            for sensor in dict.fromkeys(self.sensors.include_sensors)
            for name, units in dict.fromkeys(self.sensors.include_measures)
        ]

    def with_predict_from(self, instant: datetime) -> ArimaConfig:
        """This configuration with `predict_from_datetime` set, if it was left out."""
        if self.data.predict_from_datetime is not None:
            return self
        data = self.data.model_copy(update={"predict_from_datetime": instant})
        return self.model_copy(update={"data": data})


def product_names(measure_name: str) -> tuple[str, str, str]:
    """The model measures of a forecast of `measure_name`: Mean, Upper Bound, Lower Bound."""
    mean, upper, lower = (prefix + measure_name for prefix in PRODUCT_PREFIXES)
    return mean, upper, lower


def default_config(settings: Settings | None = None) -> ArimaConfig:
    """What the timer runs: DT_FORECAST_CONFIG if set, else the defaults."""
    settings = settings or get_settings()
    if not settings.services.forecast_config_json:
        return ArimaConfig()
    return ArimaConfig.model_validate(json.loads(settings.services.forecast_config_json))
