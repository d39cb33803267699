"""One evaluation of every enabled rule (docs/architecture.md, Alerts).

Its cost follows what is new, not the history: each (rule, sensor) keeps a watermark (the
last reading it evaluated) in `alert_series`, and a tick reads only the readings past it,
one index range scan per series and one statement per datatype. A series seen for the
first time starts from `INITIAL_LOOKBACK` ago, with the reading before that (one
backwards index step) as its previous one. Readings stored later with a timestamp at or
before a series' watermark are not evaluated (the watermark is on reading time).

Hosts sharing a database evaluate one at a time: every evaluation, and every change to
rules and alerts, takes one transaction-scoped advisory lock first, so a second evaluator
waits, then sees the first one's watermarks and states and repeats nothing; a transition
is stored, and notified, once. The timer also claims its occurrence (`alert_tick`), so each
tick is evaluated by one host only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pydantic
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Session

from dtbase_core.alerts import data, lifecycle, machine
from dtbase_core.alerts.params import PARAMS, ForecastParams, ThresholdParams
from dtbase_core.orm import Alert, AlertRule, AlertSeries, AlertTick
from dtbase_core.orm.alerts import OPEN_STATES

# How far back a series seen for the first time starts (plus a threshold's for_seconds).
INITIAL_LOOKBACK = timedelta(hours=1)
# The most readings one series gives one evaluation; the rest wait for the next one.
MAX_READINGS_PER_SERIES = 10_000
TICKS_KEPT = timedelta(days=1)


def lock(session: Session) -> None:
    """Serialise evaluations and changes to rules and alerts, across hosts, until commit."""
    lifecycle.lock(session)


def evaluate_tick(
    session: Session, *, now: datetime, occurrence: datetime | None = None
) -> dict[str, Any] | None:
    """The timer's evaluation of one occurrence of its schedule: None when another host
    has claimed it already. `occurrence` identifies it the same on every host (the timer
    passes its schedule's next fire time); without one, the second it fired in does."""
    tick = occurrence or now.replace(microsecond=0)
    claimed = session.execute(
        pg.insert(AlertTick)
        .values(tick=tick, evaluated_at=now, transitions=0)
        .on_conflict_do_nothing()
        .returning(AlertTick.tick)
    ).first()
    if claimed is None:
        return None
    # A claimed tick only has to outlive its occurrence; a day of them is kept to look at.
    session.execute(sa.delete(AlertTick).where(AlertTick.tick < tick - TICKS_KEPT))
    result = evaluate(session, now=now)
    session.execute(
        sa.update(AlertTick)
        .where(AlertTick.tick == tick)
        .values(transitions=len(result["transitions"]))
    )
    return result


@dataclass
class _Rule:
    row: AlertRule
    params: Any


def _rules(session: Session) -> dict[int, _Rule]:
    found = {}
    for rule in session.scalars(sa.select(AlertRule).where(AlertRule.enabled)):
        try:
            params = PARAMS[rule.kind].model_validate(rule.params)
        except pydantic.ValidationError:  # saved by a newer version: not this one's to judge
            continue
        found[rule.id] = _Rule(rule, params)
    return found


def _lookback(params: Any) -> timedelta:
    if isinstance(params, ThresholdParams):
        return INITIAL_LOOKBACK + timedelta(seconds=params.for_seconds)
    return INITIAL_LOOKBACK


# The columns of alert_series the machine reads and writes, besides the key.
_STATE = ("watermark", "last_timestamp", "last_value", "phase", "since", "streak", "alert_id")


@dataclass
class _Series:
    """One alert_series row, as plain values (1,000 ORM objects cost more than the rest
    of a tick); `stored` is what the row held, to write back only what changed."""

    rule_id: int
    sensor_id: int
    measure_id: int
    watermark: datetime
    last_timestamp: datetime | None
    last_value: float | None
    phase: str
    since: datetime | None
    streak: int
    watched_since: datetime
    alert_id: int | None
    stored: tuple[Any, ...] | None = None

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _STATE)


def evaluate(session: Session, *, now: datetime) -> dict[str, Any]:
    """Evaluate every enabled rule over the readings up to `now`; the transitions made."""
    lock(session)
    rules = _rules(session)
    # One series per (rule, sensor): a type holding two measures of the rule's name (in
    # other units, added after the rule was saved) gives the first one.
    found = {(w.rule_id, w.sensor_id): w for w in reversed(data.watched_series(session))}
    watched = [w for key, w in reversed(found.items()) if w.rule_id in rules]
    columns = list(AlertSeries.__table__.columns)
    states: dict[tuple[int, int], _Series] = {}
    for row in session.execute(sa.select(*columns)):
        series = _Series(**row._mapping)
        series.stored = series.values()
        states[(series.rule_id, series.sensor_id)] = series
    _start_new(session, rules, watched, states, now)
    keys = [
        ((w.sensor_id, w.measure_id), w.datatype, states[(w.rule_id, w.sensor_id)].watermark)
        for w in watched
    ]
    readings = data.readings_after(session, keys, until=now, limit=MAX_READINGS_PER_SERIES)
    bands = data.latest_bands(
        session,
        [
            (w.sensor_id, w.measure_id, rules[w.rule_id].params.model_name)
            for w in watched
            if isinstance(rules[w.rule_id].params, ForecastParams)
        ],
        created_to=now,
    )
    transitions: list[dict[str, Any]] = []
    for w in watched:
        rule = rules[w.rule_id]
        series = states[(w.rule_id, w.sensor_id)]
        new = [r for r in readings.get((w.sensor_id, w.measure_id), ()) if r[0] > series.watermark]
        state = _machine_state(series)
        bounds = None
        if isinstance(rule.params, ForecastParams):
            band = bands.get((w.sensor_id, w.measure_id, rule.params.model_name))
            bounds = data.bounds_of([band] if band else [], as_of_creation=False)
        for at, value in new:
            if value is None and rule.row.kind != "no_data":
                continue  # a string reading: only its time counts
            machine.step(rule.params, state, at, value, bounds)
        # A series with more new readings than one tick takes is evaluated up to the last
        # one read, not to now: the readings after it are not a silence.
        caught_up = len(readings.get((w.sensor_id, w.measure_id), ())) < MAX_READINGS_PER_SERIES
        machine.tick(rule.params, state, now if caught_up or not new else new[-1][0])
        if new:
            series.watermark = new[-1][0]
        for name in ("phase", "since", "streak", "last_timestamp", "last_value"):
            setattr(series, name, getattr(state, name))
        if state.events:
            transitions += _apply(session, rule.row, w, series, state.events, now)
    _store(session, [states[(w.rule_id, w.sensor_id)] for w in watched])
    transitions += _end_orphans(session, now)
    return {"evaluated": len(watched), "transitions": transitions}


def _end_orphans(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Resolve the open alerts of sensors deleted since: nothing else would end them."""
    made = []
    orphans = session.scalars(
        sa.select(Alert)
        .where(Alert.state.in_(OPEN_STATES), Alert.sensor_id.is_(None), Alert.rule_id.is_not(None))
        .order_by(Alert.id)
    ).all()
    for alert in orphans:
        rule = session.get(AlertRule, alert.rule_id)
        assert rule is not None  # rule_id is set null only when the rule is gone
        made.append(
            lifecycle.transition(
                session,
                rule=rule,
                alert=alert,
                to="resolved",
                at=now,
                now=now,
                message="sensor deleted",
            )
        )
    return made


def _start_new(
    session: Session,
    rules: dict[int, _Rule],
    watched: Sequence[data.Watched],
    states: dict[tuple[int, int], _Series],
    now: datetime,
) -> None:
    """A state for each series seen for the first time, with its previous reading."""
    fresh = [w for w in watched if (w.rule_id, w.sensor_id) not in states]
    if not fresh:
        return
    starts = {w: now - _lookback(rules[w.rule_id].params) for w in fresh}
    before = data.reading_at_or_before(
        session, [((w.sensor_id, w.measure_id), w.datatype, starts[w]) for w in fresh]
    )
    for w in fresh:
        previous = before.get((w.sensor_id, w.measure_id))
        states[(w.rule_id, w.sensor_id)] = _Series(
            rule_id=w.rule_id,
            sensor_id=w.sensor_id,
            measure_id=w.measure_id,
            watermark=starts[w],
            last_timestamp=previous[0] if previous else None,
            last_value=previous[1] if previous else None,
            phase="ok",
            since=None,
            streak=0,
            watched_since=now,
            alert_id=None,
        )


def _store(session: Session, series: list[_Series]) -> None:
    """New states in one INSERT, changed ones in one UPDATE (thousands of rows each)."""
    session.flush()  # the alerts the states point at
    fresh = [s for s in series if s.stored is None]
    changed = [s for s in series if s.stored is not None and s.values() != s.stored]
    names = [c.name for c in AlertSeries.__table__.columns]
    for at in range(0, len(fresh), 2000):
        session.execute(
            sa.insert(AlertSeries),
            [{name: getattr(s, name) for name in names} for s in fresh[at : at + 2000]],
        )
    if changed:
        arrays = {
            "rule_id": ("int[]", [s.rule_id for s in changed]),
            "sensor_id": ("int[]", [s.sensor_id for s in changed]),
            "watermark": ("timestamptz[]", [s.watermark for s in changed]),
            "last_timestamp": ("timestamptz[]", [s.last_timestamp for s in changed]),
            "last_value": ("float8[]", [s.last_value for s in changed]),
            "phase": ("text[]", [s.phase for s in changed]),
            "since": ("timestamptz[]", [s.since for s in changed]),
            "streak": ("int[]", [s.streak for s in changed]),
            "alert_id": ("int[]", [s.alert_id for s in changed]),
        }
        unnest = ", ".join(f"cast(:{name} as {kind})" for name, (kind, _) in arrays.items())
        sets = ", ".join(f"{name} = v.{name}" for name in _STATE)
        session.execute(
            sa.text(
                f"update alert_series s set {sets} "
                f"from unnest({unnest}) as v({', '.join(arrays)}) "
                "where s.rule_id = v.rule_id and s.sensor_id = v.sensor_id"
            ),
            {name: values for name, (_, values) in arrays.items()},
        )


def _machine_state(series: _Series) -> machine.State:
    return machine.State(
        phase=series.phase,
        since=series.since,
        streak=series.streak,
        last_timestamp=series.last_timestamp,
        last_value=series.last_value,
        watched_since=series.watched_since,
    )


def _apply(
    session: Session,
    rule: AlertRule,
    w: data.Watched,
    series: _Series,
    events: list[machine.Event],
    now: datetime,
) -> list[dict[str, Any]]:
    """The machine's events as alert transitions (stored and notified)."""
    made = []
    alert = session.get(Alert, series.alert_id) if series.alert_id is not None else None
    if alert is not None and alert.state not in OPEN_STATES:
        alert = None
    for event in events:
        if event.to == "resolved" and alert is None:
            continue
        if event.to == "firing" and alert is not None and alert.state != "pending":
            continue
        if alert is None:
            alert = Alert(
                rule_id=rule.id,
                rule_name=rule.name,
                sensor_id=w.sensor_id,
                unique_identifier=w.unique_identifier,
                measure_name=rule.measure_name,
                severity=rule.severity,
                started_at=event.at,
                message=event.message,
            )
        made.append(
            lifecycle.transition(
                session,
                rule=rule,
                alert=alert,
                to=event.to,
                at=event.at,
                now=now,
                value=event.value,
                message=event.message,
            )
        )
        if alert.state == "resolved":
            alert = None
    series.alert_id = alert.id if alert is not None else None
    return made
