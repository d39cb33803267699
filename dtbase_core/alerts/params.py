"""Each rule kind's `params`, checked with pydantic; a bad one is a 422 naming
`params.<field>` (Invalid), never a 500."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dtbase_core.errors import Invalid

Kind = Literal["threshold", "no_data", "rate_of_change", "forecast_deviation"]
Severity = Literal["info", "warning", "critical"]
# A week: longer waits are more likely a unit mistake (minutes for seconds) than meant.
MAX_SECONDS = 7 * 24 * 3600


class _Params(BaseModel):
    # Strict: a level is a number (not "30" or true), a count an integer.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class ThresholdParams(_Params):
    """Fires above `above`, below `below`, or outside the band between them; clears once
    back past `clear_above` / `clear_below` (hysteresis; default: the trigger levels)."""

    above: float | None = None
    below: float | None = None
    clear_above: float | None = None
    clear_below: float | None = None
    for_seconds: int = Field(0, ge=0, le=MAX_SECONDS)

    _finite_levels = field_validator("above", "below", "clear_above", "clear_below")(_finite)

    @model_validator(mode="after")
    def _levels(self) -> ThresholdParams:
        if self.above is None and self.below is None:
            raise ValueError("give above, below or both")
        if self.clear_above is not None:
            if self.above is None:
                raise ValueError("clear_above needs above")
            if self.clear_above > self.above:
                raise ValueError("clear_above must not be higher than above")
        if self.clear_below is not None:
            if self.below is None:
                raise ValueError("clear_below needs below")
            if self.clear_below < self.below:
                raise ValueError("clear_below must not be lower than below")
        if self.above is not None and self.below is not None and self.below >= self.above:
            raise ValueError("below must be lower than above (a band between them)")
        return self

    def breached(self, value: float) -> bool:
        return (self.above is not None and value > self.above) or (
            self.below is not None and value < self.below
        )

    def cleared(self, value: float) -> bool:
        top = self.clear_above if self.clear_above is not None else self.above
        bottom = self.clear_below if self.clear_below is not None else self.below
        return (top is None or value <= top) and (bottom is None or value >= bottom)


class NoDataParams(_Params):
    no_data_seconds: int = Field(gt=0, le=MAX_SECONDS)


class RateParams(_Params):
    """Fires when the change between consecutive readings, per hour, exceeds the limit."""

    max_change_per_hour: float = Field(gt=0)

    _finite_limit = field_validator("max_change_per_hour")(_finite)


class ForecastParams(_Params):
    """Fires after `consecutive_points` readings outside the latest run's bounds of the
    model `model_name` (any model forecasting the sensor's measure when omitted)."""

    consecutive_points: int = Field(3, ge=1, le=10_000)
    model_name: str | None = Field(None, min_length=1, max_length=100)


PARAMS: dict[str, type[_Params]] = {
    "threshold": ThresholdParams,
    "no_data": NoDataParams,
    "rate_of_change": RateParams,
    "forecast_deviation": ForecastParams,
}

AnyParams = ThresholdParams | NoDataParams | RateParams | ForecastParams


def parse_params(kind: str, raw: Any, loc: tuple[str | int, ...] = ("body", "params")) -> Any:
    """`raw` as the kind's params, or Invalid naming each bad field under `loc`."""
    try:
        return PARAMS[kind].model_validate(raw)
    except pydantic.ValidationError as exc:
        errors = [((*loc, *err["loc"]), err["msg"]) for err in exc.errors(include_url=False)]
        (first_loc, first_msg), *more = errors
        raise Invalid(first_msg, first_loc, more=more) from None


@dataclass(frozen=True)
class RuleSpec:
    """A checked rule, as the state machine and the backtest use it."""

    name: str
    kind: str
    measure_name: str
    units: str | None
    unique_identifier: str | None
    type_name: str | None
    params: Any
    severity: str
    channels: tuple[str, ...]
    enabled: bool
