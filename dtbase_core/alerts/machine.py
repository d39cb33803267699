"""The rule state machine, on plain values: the evaluator feeds it the readings past each
series' watermark, the backtest every reading of a past range, so both decide alike.

Per series a rule is `ok`, `pending` (the condition holds, for less than `for_seconds`) or
`firing`. `step` takes one reading in time order; `tick` is the passing of time with no
reading (a `for_seconds` running out, no data for too long). Each appends the events it
causes to `state.events`: `Event(to="pending" | "firing" | "resolved", at, value, message)`.
A reading first lets time pass up to itself, so a gap in a backtest's readings counts as
a silence exactly as the timer would have seen it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dtbase_core.alerts.params import (
    ForecastParams,
    NoDataParams,
    RateParams,
    ThresholdParams,
)

HOUR_SECONDS = 3600.0


@dataclass
class Event:
    to: str  # pending, firing or resolved
    at: datetime
    value: float | None
    message: str


@dataclass
class State:
    """What the machine remembers of one series between evaluations (alert_series)."""

    phase: str = "ok"
    since: datetime | None = None
    streak: int = 0
    last_timestamp: datetime | None = None
    last_value: float | None = None
    watched_since: datetime | None = None
    events: list[Event] = field(default_factory=list)


# The forecast's lower and upper bound at an instant, or None outside the forecast.
Bounds = Callable[[datetime], tuple[float, float] | None]


def _fire(state: State, at: datetime, value: float | None, message: str) -> None:
    state.phase, state.since = "firing", state.since or at
    state.events.append(Event("firing", at, value, message))


def _resolve(state: State, at: datetime, value: float | None, message: str) -> None:
    state.phase, state.since, state.streak = "ok", None, 0
    state.events.append(Event("resolved", at, value, message))


def step(
    params: object, state: State, at: datetime, value: float | None, bounds: Bounds | None = None
) -> None:
    """One reading (`at`, `value`), newer than every reading the state has seen; `value`
    is None for a string reading, which only `no_data` looks at."""
    tick(params, state, at)
    if isinstance(params, NoDataParams):
        if state.phase == "firing":
            _resolve(state, at, value, "readings again")
    elif value is None:
        pass
    elif isinstance(params, ThresholdParams):
        _threshold(params, state, at, value)
    elif isinstance(params, RateParams):
        _rate(params, state, at, value)
    elif isinstance(params, ForecastParams):
        _forecast(params, state, at, value, bounds)
    state.last_timestamp, state.last_value = at, value


def tick(params: object, state: State, now: datetime) -> None:
    """Time has reached `now` with no reading since the last one."""
    # Durations are compared before an instant is added to (which could pass year 9999).
    if isinstance(params, ThresholdParams) and state.phase == "pending":
        assert state.since is not None
        wait = timedelta(seconds=params.for_seconds)
        if now - state.since >= wait:
            _fire(state, state.since + wait, state.last_value, f"held for {params.for_seconds} s")
    elif isinstance(params, NoDataParams) and state.phase == "ok":
        last = state.last_timestamp or state.watched_since
        wait = timedelta(seconds=params.no_data_seconds)
        if last is not None and now - last > wait:
            _fire(state, last + wait, None, f"no reading for {params.no_data_seconds} s")


def _threshold(params: ThresholdParams, state: State, at: datetime, value: float) -> None:
    if state.phase == "ok":
        if not params.breached(value):
            return
        message = _describe(params, value)
        if params.for_seconds == 0:
            _fire(state, at, value, message)
        else:
            state.phase, state.since = "pending", at
            state.events.append(Event("pending", at, value, message))
    elif params.cleared(value):
        _resolve(state, at, value, f"back to {value:g}")


def _describe(params: ThresholdParams, value: float) -> str:
    if params.above is not None and value > params.above:
        return f"{value:g} above {params.above:g}"
    return f"{value:g} below {params.below:g}"


def _rate(params: RateParams, state: State, at: datetime, value: float) -> None:
    if state.last_timestamp is None or state.last_value is None:
        return
    hours = (at - state.last_timestamp).total_seconds() / HOUR_SECONDS
    if hours <= 0:
        return
    rate = abs(value - state.last_value) / hours
    if state.phase == "ok" and rate > params.max_change_per_hour:
        _fire(state, at, value, f"changing {rate:g} per hour")
    elif state.phase == "firing" and rate <= params.max_change_per_hour:
        _resolve(state, at, value, f"changing {rate:g} per hour")


def _forecast(
    params: ForecastParams, state: State, at: datetime, value: float, bounds: Bounds | None
) -> None:
    band = bounds(at) if bounds is not None else None
    if band is None:
        return  # no forecast covers this reading: no judgement
    lower, upper = band
    if lower <= value <= upper:
        state.streak = 0
        if state.phase == "firing":
            _resolve(state, at, value, f"{value:g} within {lower:g}..{upper:g}")
        return
    state.streak += 1
    if state.phase == "ok" and state.streak >= params.consecutive_points:
        _fire(
            state,
            at,
            value,
            f"{state.streak} readings outside the forecast ({value:g} not in {lower:g}..{upper:g})",
        )
