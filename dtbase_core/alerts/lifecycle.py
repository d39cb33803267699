"""An alert's lifecycle: `pending` → `firing` → `resolved`, `acknowledged` (by whom, with
a comment) while firing. Every transition is stored (alert_transition) and notifies the
rule's channels once, through the outbox in the same transaction, unless the rule is
silenced. Transitions into `pending`, and a pending alert that clears, notify no one: such
an alert never fired."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core.errors import Conflict, NotFound
from dtbase_core.notifications import outbox
from dtbase_core.orm import Alert, AlertRule, AlertTransition
from dtbase_core.timeutil import iso_z

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def is_silenced(rule: AlertRule, now: datetime) -> bool:
    return rule.silenced_until is not None and rule.silenced_until > now


def notifies(from_state: str | None, to: str) -> bool:
    return to != "pending" and not (from_state == "pending" and to == "resolved")


def alert_out(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "rule_name": alert.rule_name,
        "unique_identifier": alert.unique_identifier,
        "measure_name": alert.measure_name,
        "state": alert.state,
        "severity": alert.severity,
        "started_at": alert.started_at,
        "fired_at": alert.fired_at,
        "resolved_at": alert.resolved_at,
        "acknowledged_by": alert.acknowledged_by,
        "acknowledged_at": alert.acknowledged_at,
        "comment": alert.comment,
        "last_value": alert.last_value,
        "message": alert.message,
    }


def rule_out(rule: AlertRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "kind": rule.kind,
        "measure_name": rule.measure_name,
        "units": rule.units,
        "unique_identifier": rule.unique_identifier,
        "type_name": rule.type_name,
        "params": rule.params,
        "severity": rule.severity,
        "channels": rule.channels,
        "enabled": rule.enabled,
        "silenced_until": rule.silenced_until,
        "created_by": rule.created_by,
    }


def _json(data: dict[str, Any]) -> dict[str, Any]:
    return {k: iso_z(v) if isinstance(v, datetime) else v for k, v in data.items()}


def transition(
    session: Session,
    *,
    rule: AlertRule,
    alert: Alert,
    to: str,
    at: datetime,
    now: datetime,
    value: float | None = None,
    message: str | None = None,
    actor: str | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """Move `alert` (a new, unsaved one: from nothing) to `to`, store the transition and
    enqueue its notification; the transition as JSON."""
    from_state = alert.state if alert.id is not None else None
    alert.state = to
    if value is not None:
        alert.last_value = value
    if message is not None:
        alert.message = message
    if to == "firing" and alert.fired_at is None:
        alert.fired_at = at
    elif to == "resolved":
        alert.resolved_at = at
    elif to == "acknowledged":
        alert.acknowledged_by, alert.acknowledged_at, alert.comment = actor, now, comment
    if alert.id is None:
        session.add(alert)
    session.flush()
    notified = notifies(from_state, to) and not is_silenced(rule, now) and bool(rule.channels)
    session.add(
        AlertTransition(
            alert_id=alert.id,
            from_state=from_state,
            to_state=to,
            at=at,
            recorded_at=now,
            value=value,
            actor=actor,
            comment=comment,
            notified=notified,
        )
    )
    if notified:
        outbox.enqueue(
            session,
            channel_names=rule.channels,
            event={
                "alert": _json(alert_out(alert)),
                "rule": _json(rule_out(rule)),
                "transition": to,
                "at": iso_z(at),
            },
            now=now,
        )
    return {
        "alert_id": alert.id,
        "rule_name": alert.rule_name,
        "unique_identifier": alert.unique_identifier,
        "measure_name": alert.measure_name,
        "from_state": from_state,
        "to_state": to,
        "at": at,
        "value": value,
        "notified": notified,
    }


def list_alerts(
    session: Session, *, state: str | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Open alerts first (firing, then acknowledged, then pending; by severity, newest
    first), then resolved ones, newest first. `since`: alerts still open or started or
    resolved at or after it."""
    query = sa.select(Alert)
    if state is not None:
        query = query.where(Alert.state == state)
    if since is not None:
        query = query.where(
            sa.or_(Alert.state != "resolved", Alert.started_at >= since, Alert.resolved_at >= since)
        )
    state_rank = sa.case({"firing": 0, "acknowledged": 1, "pending": 2}, value=Alert.state, else_=3)
    severity_rank = sa.case(SEVERITY_ORDER, value=Alert.severity, else_=3)
    query = query.order_by(
        state_rank, severity_rank, sa.func.coalesce(Alert.resolved_at, Alert.started_at).desc()
    ).limit(1000)
    return [alert_out(a) for a in session.scalars(query)]


def acknowledge(
    session: Session, *, alert_id: int, actor: str, comment: str | None, now: datetime
) -> dict[str, Any]:
    """A firing alert taken on by `actor`: it stays open until its rule clears."""
    lock(session)
    alert = session.scalar(sa.select(Alert).where(Alert.id == alert_id).with_for_update())
    if alert is None:
        raise NotFound(f"Alert {alert_id} does not exist")
    if alert.state != "firing":
        raise Conflict(f"Alert {alert_id} is {alert.state}: only a firing alert is acknowledged")
    rule = session.get(AlertRule, alert.rule_id) if alert.rule_id is not None else None
    if rule is None:
        raise Conflict(f"Alert {alert_id}'s rule no longer exists")
    transition(
        session,
        rule=rule,
        alert=alert,
        to="acknowledged",
        at=now,
        now=now,
        actor=actor,
        comment=comment,
    )
    return alert_out(alert)


# pg_advisory_xact_lock key: alert evaluations and changes to rules and alerts, one at a time.
ALERTS_LOCK = 7283412


def lock(session: Session) -> None:
    session.execute(sa.select(sa.func.pg_advisory_xact_lock(ALERTS_LOCK)))
