"""`backtest-alert-rule`: the intervals in which a rule would have fired over a past range,
from the stored readings (and model runs), through the same state machine the evaluator
uses. It writes nothing."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from dtbase_core.alerts import data, machine, rules
from dtbase_core.alerts.params import ForecastParams, RuleSpec, ThresholdParams
from dtbase_core.errors import Invalid
from dtbase_core.orm import Datatype

# A backtest reads at most this many readings in all (a week of one-minute readings of
# a hundred sensors); more is a 422 asking for a shorter range or a narrower scope.
MAX_READINGS = 1_000_000
NUMERIC = (Datatype.FLOAT, Datatype.INTEGER)  # the datatypes with hourly rollups


def backtest_rule(
    session: Session, *, body: Mapping[str, Any], dt_from: datetime, dt_to: datetime
) -> dict[str, Any]:
    """The backtest of the rule `body` describes (checked as a rule to save would be)."""
    return backtest(session, spec=rules.check_rule(session, body), dt_from=dt_from, dt_to=dt_to)


def backtest(
    session: Session, *, spec: RuleSpec, dt_from: datetime, dt_to: datetime
) -> dict[str, Any]:
    """The intervals in which `spec` would have fired over (dt_from, dt_to]."""
    if dt_to <= dt_from:
        raise Invalid("dt_to must be after dt_from", ("body", "dt_to"))
    watched = data.watched_series(
        session,
        scope=(spec.unique_identifier, spec.type_name, spec.measure_name, spec.units),
    )
    keys = [((w.sensor_id, w.measure_id), w.datatype, dt_from) for w in watched]
    before = data.reading_at_or_before(session, keys)
    readings, stored = _readings(session, spec, watched, dt_from, dt_to)
    if sum(len(found) for found in readings.values()) > MAX_READINGS:
        raise Invalid(
            f"more than {MAX_READINGS} readings in the range: shorten it", ("body", "dt_from")
        )
    intervals: list[dict[str, Any]] = []
    examined = 0
    for w in watched:
        state = machine.State(watched_since=dt_from)
        previous = before.get((w.sensor_id, w.measure_id))
        if previous is not None:
            state.last_timestamp, state.last_value = previous
        bounds = None
        if isinstance(spec.params, ForecastParams):
            bands = data.forecast_bands(
                session,
                sensor_id=w.sensor_id,
                measure_id=w.measure_id,
                model_name=spec.params.model_name,
                created_to=dt_to,
            )
            bounds = data.bounds_of(bands, as_of_creation=True)
        series = readings.get((w.sensor_id, w.measure_id), [])
        examined += stored.get((w.sensor_id, w.measure_id), len(series))
        for at, value in series:
            if value is None and spec.kind != "no_data":
                continue
            machine.step(spec.params, state, at, value, bounds)
        machine.tick(spec.params, state, dt_to)
        intervals += _intervals(w.unique_identifier, state.events)
    intervals.sort(key=lambda i: (i["start"], i["unique_identifier"]))
    return {
        "fired": len(intervals),
        "intervals": intervals,
        "series": len(watched),
        "readings": examined,
    }


def _readings(
    session: Session,
    spec: RuleSpec,
    watched: list[data.Watched],
    dt_from: datetime,
    dt_to: datetime,
) -> tuple[dict[data.SeriesKey, list[data.Reading]], dict[data.SeriesKey, int]]:
    """The readings to feed the machine, and how many readings each series stores in the
    range. A threshold reads the hourly rollups first: in an hour whose every reading lies
    within the clear levels, a rule that is not firing stays so, and one that is clears at
    the hour's first reading; without `for_seconds`, in an hour whose every reading is past
    a trigger level, a rule fires at the first reading or is firing already. Either way
    that reading stands for the hour (exactly the same result, without reading the rest).
    The other hours, other kinds, and derived measures are read in full."""
    keys = [((w.sensor_id, w.measure_id), w.datatype, dt_from) for w in watched]
    # Derived measures (a negative measure id) have no rollups: they are read in full.
    numeric = {
        (w.sensor_id, w.measure_id): w.datatype
        for w in watched
        if w.datatype in NUMERIC and w.measure_id > 0
    }
    if not isinstance(spec.params, ThresholdParams) or len(numeric) < len(watched):
        limit = MAX_READINGS + 1
        return data.readings_after(session, keys, until=dt_to, limit=limit), {}
    params = spec.params
    quiet, busy = data.quiet_hours(
        session,
        numeric,
        after=dt_from,
        until=dt_to,
        quiet=lambda low, high: _quiet(params, low, high),
    )
    readings = data.readings_in_hours(session, busy, numeric, after=dt_from, until=dt_to)
    stored = {key: len(found) for key, found in readings.items()}
    for key, hours in quiet.items():
        readings[key] = sorted(readings.get(key, []) + [first for _, first, _ in hours])
        stored[key] = stored.get(key, 0) + sum(count for _, _, count in hours)
    return readings, stored


def _quiet(params: ThresholdParams, low: float, high: float) -> bool:
    """Whether an hour of readings between `low` and `high` needs only its first one."""
    if params.cleared(low) and params.cleared(high):
        return True  # every reading clears (the clear range is an interval)
    if params.for_seconds:
        return False  # a pending rule's firing takes the last value before it is due
    return (params.above is not None and low > params.above) or (
        params.below is not None and high < params.below
    )


def _intervals(uid: str, events: list[machine.Event]) -> list[dict[str, Any]]:
    """Firing ... resolved pairs; one still firing at the end has no `end`."""
    found: list[dict[str, Any]] = []
    for event in events:
        if event.to == "firing":
            found.append(
                {
                    "unique_identifier": uid,
                    "start": event.at,
                    "end": None,
                    "value": event.value,
                    "message": event.message,
                }
            )
        elif event.to == "resolved" and found and found[-1]["end"] is None:
            found[-1]["end"] = event.at
    return found
