"""Alert rules: saving, listing, changing, deleting and silencing them (docs/api.md, Alerts).

A rule watches one (sensor, measure) by `unique_identifier`, or a measure of every sensor
of a type by `type_name`, including sensors added later (the evaluator finds them at each
tick). Changing, disabling or deleting a rule ends its open alerts (each a stored, notified
transition) and forgets what it had read, so it starts afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core.alerts import lifecycle
from dtbase_core.alerts.lifecycle import rule_out
from dtbase_core.alerts.params import RuleSpec, parse_params
from dtbase_core.errors import AlreadyExists, Invalid, NotFound
from dtbase_core.notifications import outbox
from dtbase_core.orm import (
    Alert,
    AlertRule,
    AlertSeries,
    Datatype,
    DerivedMeasure,
    Sensor,
    SensorMeasure,
    SensorType,
)
from dtbase_core.orm.alerts import OPEN_STATES


def check_rule(session: Session, body: Mapping[str, Any]) -> RuleSpec:
    """The rule `body` describes (the fields of AlertRuleIn), checked against what exists:
    one scope, the kind's params, a known measure, sensor or type, and known channels."""
    uid, type_name = body.get("unique_identifier"), body.get("type_name")
    if (uid is None) == (type_name is None):
        raise Invalid(
            "give either unique_identifier (one sensor) or type_name (every sensor of a type)",
            ("body", "unique_identifier"),
        )
    params = parse_params(body["kind"], body.get("params") or {})
    # A stored measure, or a derived one (of some type; always floats), by name and units.
    stored = sa.select(
        SensorMeasure.units, sa.cast(SensorMeasure.datatype, sa.String).label("datatype")
    ).where(SensorMeasure.name == body["measure_name"])
    computed = sa.select(
        DerivedMeasure.units, sa.literal(Datatype.FLOAT.value, sa.String).label("datatype")
    ).where(DerivedMeasure.name == body["measure_name"])
    if body.get("units") is not None:
        stored = stored.where(SensorMeasure.units == body["units"])
        computed = computed.where(DerivedMeasure.units == body["units"])
    found = [
        (units, Datatype(datatype))
        for units, datatype in session.execute(sa.union(stored, computed)).all()
    ]
    if not found:
        raise NotFound(f"Sensor measure '{body['measure_name']}' does not exist")
    if len(found) > 1:
        units = ", ".join(sorted(repr(u) for u, _ in found))
        raise Invalid(
            f"several measures are called '{body['measure_name']}' ({units}): give units",
            ("body", "units"),
        )
    datatypes = {datatype for _, datatype in found}
    if body["kind"] != "no_data" and datatypes == {Datatype.STRING}:
        raise Invalid(
            f"'{body['measure_name']}' holds strings: only a no_data rule can watch it",
            ("body", "measure_name"),
        )
    if (
        uid is not None
        and session.scalar(sa.select(Sensor.id).where(Sensor.unique_identifier == uid)) is None
    ):
        raise NotFound(f"Sensor '{uid}' does not exist")
    if (
        type_name is not None
        and session.scalar(sa.select(SensorType.id).where(SensorType.name == type_name)) is None
    ):
        raise NotFound(f"Sensor type '{type_name}' does not exist")
    channels = list(dict.fromkeys(body.get("channels") or []))
    missing = outbox.channel_names_missing(session, channels)
    if missing:
        where = channels.index(missing[0])
        raise Invalid(
            f"no notification channel called '{missing[0]}'",
            ("body", "channels", where),
            more=[
                (("body", "channels", channels.index(m)), f"no notification channel called '{m}'")
                for m in missing[1:]
            ],
        )
    return RuleSpec(
        name=body["name"],
        kind=body["kind"],
        measure_name=body["measure_name"],
        units=body.get("units"),
        unique_identifier=uid,
        type_name=type_name,
        params=params,
        severity=body.get("severity", "warning"),
        channels=tuple(channels),
        enabled=bool(body.get("enabled", True)),
    )


def _columns(spec: RuleSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "kind": spec.kind,
        "measure_name": spec.measure_name,
        "units": spec.units,
        "unique_identifier": spec.unique_identifier,
        "type_name": spec.type_name,
        "params": spec.params.model_dump(exclude_none=True),
        "severity": spec.severity,
        "channels": list(spec.channels),
        "enabled": spec.enabled,
    }


def _rule(session: Session, name: str, *, lock: bool = False, key_share: bool = False) -> AlertRule:
    """The rule called `name`, locked FOR UPDATE with `lock` (FOR NO KEY UPDATE with
    `key_share` too: alerts may still be written for it meanwhile)."""
    query = sa.select(AlertRule).where(AlertRule.name == name)
    rule = session.scalar(query.with_for_update(key_share=key_share) if lock else query)
    if rule is None:
        raise NotFound(f"Alert rule '{name}' does not exist")
    return rule


def insert_rule(
    session: Session, *, body: Mapping[str, Any], actor: str | None, now: datetime
) -> dict[str, Any]:
    spec = check_rule(session, body)
    if session.scalar(sa.select(AlertRule.id).where(AlertRule.name == spec.name)) is not None:
        raise AlreadyExists(f"Alert rule '{spec.name}' already exists")
    rule = AlertRule(**_columns(spec), created_by=actor, time_created=now)
    session.add(rule)
    session.flush()
    return rule_out(rule)


def list_rules(session: Session) -> list[dict[str, Any]]:
    return [rule_out(r) for r in session.scalars(sa.select(AlertRule).order_by(AlertRule.name))]


def update_rule(session: Session, *, body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Replace the rule called `body["name"]` (silencing is kept)."""
    # The evaluation lock before the rule's row: an evaluation, holding that lock, takes
    # the row's KEY SHARE lock when it writes an alert of the rule.
    lifecycle.lock(session)
    rule = _rule(session, body["name"], lock=True)
    spec = check_rule(session, body)
    _restart(session, rule, now, "rule changed")
    for key, value in _columns(spec).items():
        setattr(rule, key, value)
    rule.time_updated = now
    session.flush()
    return rule_out(rule)


def delete_rule(session: Session, *, name: str, now: datetime) -> None:
    lifecycle.lock(session)  # before the row, as in update_rule
    rule = _rule(session, name, lock=True)
    _restart(session, rule, now, "rule deleted")
    session.delete(rule)
    session.flush()


def silence_rule(session: Session, *, name: str, until: datetime, now: datetime) -> dict[str, Any]:
    """Evaluated as usual, but no transition notifies anyone before `until` (a time in
    the past ends a silence)."""
    rule = _rule(session, name, lock=True, key_share=True)
    rule.silenced_until = until if until > now else None
    session.flush()
    return rule_out(rule)


def _restart(session: Session, rule: AlertRule, now: datetime, why: str) -> None:
    """End the rule's open alerts and forget its per-series state (under the evaluation
    lock, taken by the caller)."""
    open_alerts = session.scalars(
        sa.select(Alert)
        .where(Alert.rule_id == rule.id, Alert.state.in_(OPEN_STATES))
        .order_by(Alert.id)
        .with_for_update()
    ).all()
    for alert in open_alerts:
        lifecycle.transition(
            session, rule=rule, alert=alert, to="resolved", at=now, now=now, message=why
        )
    session.execute(sa.delete(AlertSeries).where(AlertSeries.rule_id == rule.id))
