"""The daily retention timer (docs/api.md, Retention): expired raw readings of sensor types
with a retention, then old audit, notification and dead-letter rows, in batches
(dtbase_core/retention.py)."""

from __future__ import annotations

import logging

import azure.functions as func

from dtbase_core import retention
from dtbase_core.config import get_settings
from dtbase_core.db import session_scope
from dtbase_core.timeutil import utcnow

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.function_name("retention_timer")
@bp.timer_trigger(schedule="%DT_RETENTION_SCHEDULE%", arg_name="timer")
def retention_timer(timer: func.TimerRequest) -> None:
    """Every DT_RETENTION_SCHEDULE (default daily at 02:30 UTC). Safe to run twice at once,
    or again after a crash: each batch commits on its own and removes only what is due."""
    settings = get_settings().retention
    now = utcnow()
    readings = retention.remove_expired_readings(
        session_scope, now=now, batch_rows=settings.batch_rows
    )
    for type_name, count in readings.items():
        log.info("retention: %d raw readings of sensor type '%s' removed", count, type_name)
    pruned = retention.prune_operational(
        session_scope,
        now=now,
        audit_days=settings.audit_days,
        delivery_days=settings.deliveries_days,
        dead_letter_days=settings.dead_letters_days,
        batch_rows=settings.batch_rows,
    )
    log.info("retention: old rows removed: %s", pruned)
