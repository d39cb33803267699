"""`backtest-alert-rule`: the intervals in which a rule would have fired over a past range,
from the stored readings (and model runs), through the same state machine the evaluator
uses. It writes nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from dtbase_core.alerts import data, machine
from dtbase_core.alerts.params import ForecastParams, RuleSpec
from dtbase_core.errors import Invalid

# A backtest reads at most this many readings in all (a week of one-minute readings of
# a hundred sensors); more is a 422 asking for a shorter range or a narrower scope.
MAX_READINGS = 1_000_000


def backtest(
    session: Session, *, spec: RuleSpec, dt_from: datetime, dt_to: datetime
) -> dict[str, Any]:
    if dt_to <= dt_from:
        raise Invalid("dt_to must be after dt_from", ("body", "dt_to"))
    watched = data.watched_series(
        session,
        scope=(spec.unique_identifier, spec.type_name, spec.measure_name, spec.units),
    )
    keys = [((w.sensor_id, w.measure_id), w.datatype, dt_from) for w in watched]
    before = data.reading_at_or_before(session, keys)
    readings = data.readings_after(session, keys, until=dt_to, limit=MAX_READINGS + 1)
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
        examined += len(series)
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
