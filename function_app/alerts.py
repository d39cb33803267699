"""/alert: alert rules, alerts, their evaluation and backtest (docs/api.md, Alerts), and
the evaluation timer (DT_ALERT_SCHEDULE, every minute by default)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import azure.functions as func

from dtbase_core.alerts import backtest, evaluator, lifecycle, rules
from dtbase_core.apikeys import Scope
from dtbase_core.config import get_settings
from dtbase_core.db import session_scope
from dtbase_core.roles import Role
from dtbase_core.schemas.alerts import (
    AcknowledgeIn,
    AlertOut,
    AlertRuleIn,
    AlertRuleOut,
    BacktestIn,
    BacktestOut,
    EvaluationOut,
    ListAlertsIn,
    RuleNameIn,
    SilenceIn,
)
from dtbase_core.timeutil import as_utc, utcnow
from function_app.http import Call, endpoint

log = logging.getLogger(__name__)

bp = func.Blueprint()

RULE_ERRORS = {
    400: "Unknown sensor, sensor type or measure",
    422: "A bad field, params for the kind, or an unknown channel (named in detail)",
}


@endpoint(
    bp,
    "alert/insert-alert-rule",
    body=AlertRuleIn,
    response=AlertRuleOut,
    status=201,
    errors={**RULE_ERRORS, 409: "Alert rule already exists"},
)
def insert_alert_rule(call: Call[AlertRuleIn]) -> Any:
    """Save an alert rule; replies with it."""
    return rules.insert_rule(
        call.session, body=call.body.model_dump(), actor=call.actor.email, now=utcnow()
    )


@endpoint(
    bp,
    "alert/list-alert-rules",
    method="GET",
    response=list[AlertRuleOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_alert_rules(call: Call[None]) -> Any:
    """Every alert rule, by name."""
    return rules.list_rules(call.session)


@endpoint(
    bp,
    "alert/update-alert-rule",
    body=AlertRuleIn,
    response=AlertRuleOut,
    errors={**RULE_ERRORS, 400: "Alert rule, sensor, type or measure doesn't exist"},
)
def update_alert_rule(call: Call[AlertRuleIn]) -> Any:
    """Replace the rule called `name`: its open alerts resolve and it starts afresh."""
    return rules.update_rule(call.session, body=call.body.model_dump(), now=utcnow())


@endpoint(bp, "alert/delete-alert-rule", body=RuleNameIn, errors={400: "Alert rule doesn't exist"})
def delete_alert_rule(call: Call[RuleNameIn]) -> Any:
    """Delete a rule; its open alerts resolve, and its past alerts stay listed."""
    rules.delete_rule(call.session, name=call.body.name, now=utcnow())
    return {"detail": "Alert rule deleted"}


@endpoint(
    bp,
    "alert/silence-alert-rule",
    body=SilenceIn,
    response=AlertRuleOut,
    errors={400: "Alert rule doesn't exist"},
)
def silence_alert_rule(call: Call[SilenceIn]) -> Any:
    """Until `until`, the rule is evaluated and its transitions stored, but nobody is
    notified; a time in the past ends the silence."""
    return rules.silence_rule(
        call.session, name=call.body.name, until=call.body.until, now=utcnow()
    )


@endpoint(
    bp,
    "alert/list-alerts",
    body=ListAlertsIn,
    body_required=False,
    response=list[AlertOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_alerts(call: Call[ListAlertsIn]) -> Any:
    """Open alerts first (firing, acknowledged, pending; by severity), then past ones."""
    return lifecycle.list_alerts(call.session, **call.body.model_dump())


@endpoint(
    bp,
    "alert/acknowledge-alert",
    body=AcknowledgeIn,
    response=AlertOut,
    errors={400: "Alert doesn't exist", 409: "The alert is not firing"},
)
def acknowledge_alert(call: Call[AcknowledgeIn]) -> Any:
    """Take on a firing alert (by you, with an optional comment); it resolves when its
    rule clears."""
    return lifecycle.acknowledge(
        call.session,
        alert_id=call.body.id,
        actor=call.actor.email,
        comment=call.body.comment,
        now=utcnow(),
    )


@endpoint(bp, "alert/evaluate-alerts", response=EvaluationOut, role=Role.ADMIN, body=None)
def evaluate_alerts(call: Call[None]) -> Any:
    """Evaluate every enabled rule now (the timer does it every DT_ALERT_SCHEDULE);
    replies with the transitions made."""
    return evaluator.evaluate(call.session, now=utcnow())


@endpoint(
    bp,
    "alert/backtest-alert-rule",
    body=BacktestIn,
    response=BacktestOut,
    errors=RULE_ERRORS,
    role=Role.VIEWER,
    scope=Scope.READ,
)
def backtest_alert_rule(call: Call[BacktestIn]) -> Any:
    """The intervals in which a rule would have fired between dt_from and dt_to, from the
    stored readings; saves nothing."""
    body = call.body.model_dump(exclude={"dt_from", "dt_to"})
    return backtest.backtest_rule(
        call.session, body=body, dt_from=call.body.dt_from, dt_to=call.body.dt_to
    )


def _occurrence(timer: func.TimerRequest) -> datetime | None:
    """What identifies this firing on every host: the schedule's next fire time after it,
    which the Functions host (and dtbase-local) pass in `schedule_status["Next"]`."""
    # The SDK's abstract TimerRequest lacks the attribute its implementation has.
    upcoming = (getattr(timer, "schedule_status", None) or {}).get("Next")
    try:
        return as_utc(datetime.fromisoformat(upcoming)) if upcoming else None
    except ValueError:
        return None


@bp.function_name("alert_evaluation_timer")
@bp.timer_trigger(schedule="%DT_ALERT_SCHEDULE%", arg_name="timer")
def alert_evaluation_timer(timer: func.TimerRequest) -> None:
    """Every DT_ALERT_SCHEDULE (default every minute): evaluate the rules, once per tick
    however many hosts run."""
    get_settings()
    with session_scope() as session:
        result = evaluator.evaluate_tick(session, now=utcnow(), occurrence=_occurrence(timer))
    if result is None:
        log.debug("alert tick evaluated by another host")
    elif result["transitions"]:
        log.info("alerts: %d transitions", len(result["transitions"]))
