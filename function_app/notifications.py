"""/notification: channels, test sends and the delivery listing, and the outbox's timer
(docs/api.md, Notifications; docs/architecture.md, Notifications).

Deliveries are written by their causes (alert transitions) through
dtbase_core.notifications.outbox; the timer on DT_NOTIFY_SCHEDULE (every 15 s by default)
sends what is due. `test-channel` sends a sample at once, holding no transaction while it
waits for the receiver, and replies the outcome.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from dtbase_core.apikeys import Scope
from dtbase_core.config import get_settings
from dtbase_core.db import session_scope
from dtbase_core.notifications import channels
from dtbase_core.notifications.drain import RetryPolicy, drain, drain_settings, record_outcome
from dtbase_core.notifications.senders import Sender
from dtbase_core.roles import Role
from dtbase_core.schemas.notifications import (
    ChannelIn,
    ChannelNameIn,
    ChannelOut,
    DeliveryFilterIn,
    DeliveryOut,
    TestChannelOut,
)
from function_app.http import Call, endpoint, in_transaction

log = logging.getLogger(__name__)

bp = func.Blueprint()

# test-channel's sample is sent once: its outcome is the reply, not a retry later.
NO_RETRY = RetryPolicy(max_attempts=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


@endpoint(
    bp,
    "notification/insert-channel",
    body=ChannelIn,
    status=201,
    role=Role.ADMIN,
    errors={
        409: "Notification channel already exists.",
        422: "A field does not fit the kind, or the template fails (named in detail)",
    },
)
def insert_channel(call: Call[ChannelIn]) -> Any:
    """Create a webhook or email channel (admins only); the secret is write-only."""
    channels.insert_channel(call.session, **call.body.model_dump())
    return {"detail": "Notification channel created"}


@endpoint(
    bp,
    "notification/list-channels",
    method="GET",
    response=list[ChannelOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_channels(call: Call[None]) -> Any:
    """Every channel, with `has_secret` instead of its secret; only admins see a URL's
    path (a webhook's may be its credential)."""
    admin = call.user is not None and call.user.is_admin
    return channels.list_channels(call.session, full_urls=admin)


@endpoint(
    bp,
    "notification/delete-channel",
    body=ChannelNameIn,
    role=Role.ADMIN,
    errors={400: channels.CHANNEL_MISSING},
)
def delete_channel(call: Call[ChannelNameIn]) -> Any:
    """Delete a channel (admins only); its deliveries stay listed."""
    channels.delete_channel(call.session, name=call.body.name)
    return {"detail": "Notification channel deleted"}


@endpoint(
    bp,
    "notification/test-channel",
    body=ChannelNameIn,
    response=TestChannelOut,
    role=Role.ADMIN,
    errors={400: channels.CHANNEL_MISSING},
)
async def test_channel(call: Call[ChannelNameIn]) -> Any:
    """Send a sample notification now and reply the outcome (admins only); it is listed
    as a delivery too, not retried."""
    settings = call.settings
    lease = settings.notify.lease_seconds
    claimed = await in_transaction(
        lambda s: channels.start_test(s, name=call.body.name, now=utcnow(), lease_seconds=lease)
    )
    outcome = await Sender(settings).send(claimed.channel, claimed.id, claimed.event)
    await in_transaction(
        lambda s: record_outcome(s, claimed, outcome, now=utcnow(), retry=NO_RETRY)
    )
    return {
        "delivery_id": claimed.id,
        "delivered": outcome.delivered,
        "status_code": outcome.status_code,
        "error": outcome.error,
        "duration_ms": outcome.duration_ms,
    }


@endpoint(
    bp,
    "notification/list-deliveries",
    body=DeliveryFilterIn,
    body_required=False,
    response=list[DeliveryOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_deliveries(call: Call[DeliveryFilterIn]) -> Any:
    """Deliveries, newest first, with their attempts, last status code and error."""
    body = call.body
    return channels.list_deliveries(
        call.session, channel=body.channel, status=body.status, limit=body.limit
    )


@bp.function_name("notification_drain_timer")
@bp.timer_trigger(schedule="%DT_NOTIFY_SCHEDULE%", arg_name="timer")
async def notification_drain_timer(timer: func.TimerRequest) -> None:
    """Every DT_NOTIFY_SCHEDULE (default 15 s): send the deliveries that are due."""
    settings = get_settings()
    summary = await drain(
        sessions=session_scope,
        sender=Sender(settings),
        now=utcnow(),
        clock=utcnow,
        **drain_settings(settings.notify),
    )
    if summary.claimed:
        log.info(
            "notifications: %d sent, %d to retry, %d dead, %d lost",
            summary.delivered,
            summary.retrying,
            summary.dead,
            summary.lost,
        )
