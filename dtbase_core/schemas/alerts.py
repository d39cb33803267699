"""Bodies and replies of /alert (docs/api.md, Alerts). A rule's `params` depend on its
`kind` and are checked by the core (dtbase_core/alerts/params.py), with the same 422."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictBool, StrictInt

from dtbase_core.schemas.common import Body, Name, Units, UtcDatetime

Kind = Literal["threshold", "no_data", "rate_of_change", "forecast_deviation"]
Severity = Literal["info", "warning", "critical"]
State = Literal["pending", "firing", "acknowledged", "resolved"]
Comment = Annotated[str, Field(max_length=2000)]


class AlertRuleIn(Body):
    """A rule. Scope: `unique_identifier` (one sensor) or `type_name` (every sensor of the
    type, including those added later), with the measure `measure_name` (and `units`)."""

    name: Name
    kind: Kind
    measure_name: Name
    units: Units | None = None
    unique_identifier: Name | None = None
    type_name: Name | None = None
    # threshold: above, below, clear_above, clear_below, for_seconds; no_data:
    # no_data_seconds; rate_of_change: max_change_per_hour; forecast_deviation:
    # consecutive_points, model_name.
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Severity = "warning"
    channels: list[Name] = Field(default_factory=list, max_length=20)
    enabled: StrictBool = True


class AlertRuleOut(BaseModel):
    name: str
    kind: Kind
    measure_name: str
    units: str | None
    unique_identifier: str | None
    type_name: str | None
    params: dict[str, Any]
    severity: Severity
    channels: list[str]
    enabled: bool
    silenced_until: datetime | None
    created_by: str | None


class RuleNameIn(Body):
    name: Name


class SilenceIn(Body):
    name: Name
    # A time in the past ends a silence.
    until: UtcDatetime


class ListAlertsIn(Body):
    state: State | None = None
    since: UtcDatetime | None = None


class AcknowledgeIn(Body):
    id: StrictInt
    comment: Comment | None = None


class AlertOut(BaseModel):
    id: int
    rule_name: str
    unique_identifier: str
    measure_name: str
    state: State
    severity: Severity
    started_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    comment: str | None
    last_value: float | None
    message: str


class TransitionOut(BaseModel):
    alert_id: int
    rule_name: str
    unique_identifier: str
    measure_name: str
    from_state: State | None
    to_state: State
    at: datetime
    value: float | None
    notified: bool


class EvaluationOut(BaseModel):
    evaluated: int  # (rule, sensor) series
    transitions: list[TransitionOut]


class BacktestIn(AlertRuleIn):
    """A rule body (its name optional) and the past range to try it on."""

    name: Name = "backtest"
    dt_from: UtcDatetime
    dt_to: UtcDatetime


class Interval(BaseModel):
    unique_identifier: str
    start: datetime
    end: datetime | None  # still firing at dt_to
    value: float | None
    message: str


class BacktestOut(BaseModel):
    fired: int
    intervals: list[Interval]
    series: int
    readings: int
