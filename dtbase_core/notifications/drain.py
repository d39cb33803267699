"""Draining the outbox: claim due deliveries, send them, record what happened.

- A claim is a short transaction: due pending rows are locked with `FOR UPDATE SKIP LOCKED`
  (another drainer skips them rather than waiting), their attempt counted and a lease set
  (`leased_until`), then committed. Sends happen outside any transaction.
- While the lease runs no drainer claims the row again; past it (its drainer died while
  sending) another may. The lease's end is also the claim's token: an outcome is recorded
  only by the drainer that holds it.
- A failed send is retried after `retry_seconds`, doubling each time up to
  `retry_max_seconds`; after `max_attempts` (or a failure no retry can cure) it is `dead`:
  kept and listed, never dropped.

Every function takes the time (`now`) from its caller, so tests move the clock freely."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core.config import NotifySettings
from dtbase_core.notifications.delivery import ChannelTarget, Outcome
from dtbase_core.notifications.senders import Sender
from dtbase_core.orm.notifications import (
    DeliveryStatus,
    NotificationAttempt,
    NotificationChannel,
    NotificationDelivery,
)

log = logging.getLogger(__name__)

# A literal, not a bound parameter: the planner matches it to the partial index
# ix_notification_delivery_due even in a generic (prepared) plan.
_PENDING = sa.text("notification_delivery.status = 'pending'")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    first_seconds: float = 30.0
    max_seconds: float = 3600.0

    @classmethod
    def from_settings(cls, notify: NotifySettings) -> RetryPolicy:
        return cls(notify.max_attempts, notify.retry_seconds, notify.retry_max_seconds)

    def delay(self, attempts: int, retry_after: float | None = None) -> timedelta:
        """The wait after the `attempts`-th failed send: first, 2 x first, 4 x first...
        or the receiver's Retry-After if longer; capped."""
        exponent = min(max(attempts - 1, 0), 32)
        seconds = max(self.first_seconds * 2**exponent, retry_after or 0.0)
        return timedelta(seconds=min(seconds, self.max_seconds))


@dataclass(frozen=True)
class Claimed:
    """A delivery this drainer holds until `lease`: what to send, and where."""

    id: int
    channel: ChannelTarget | None  # None: the channel was deleted since
    event: dict[str, Any]
    attempts: int  # including this one
    lease: datetime


def channel_target(channel: NotificationChannel) -> ChannelTarget:
    return ChannelTarget(
        name=channel.name,
        kind=channel.kind,
        url=channel.url,
        recipients=list(channel.recipients) if channel.recipients else None,
        secret=channel.secret,
        template=channel.template,
    )


def claim_due(
    session: Session, *, now: datetime, limit: int, lease_seconds: float
) -> list[Claimed]:
    """Lock up to `limit` deliveries due at `now` (oldest first) that no one holds, count
    their attempt and lease them until now + lease_seconds. The caller commits."""
    deliveries = list(
        session.scalars(
            sa.select(NotificationDelivery)
            .where(
                _PENDING,
                NotificationDelivery.next_attempt_at <= now,
                sa.or_(
                    NotificationDelivery.leased_until.is_(None),
                    NotificationDelivery.leased_until <= now,
                ),
            )
            .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not deliveries:
        return []
    lease = now + timedelta(seconds=lease_seconds)
    channel_ids = {d.channel_id for d in deliveries if d.channel_id is not None}
    channels = {
        c.id: channel_target(c)
        for c in session.scalars(
            sa.select(NotificationChannel).where(NotificationChannel.id.in_(channel_ids))
        )
    }
    claimed = []
    for delivery in deliveries:
        delivery.attempts += 1
        delivery.leased_until = lease
        target = channels.get(delivery.channel_id) if delivery.channel_id is not None else None
        claimed.append(Claimed(delivery.id, target, delivery.event, delivery.attempts, lease))
    session.flush()
    return claimed


def record_outcome(
    session: Session, claimed: Claimed, outcome: Outcome, *, now: datetime, retry: RetryPolicy
) -> str | None:
    """Store the attempt and move the delivery on: delivered, retried later, or dead.
    The delivery's new status; None if this drainer's lease was lost (another drainer took
    the delivery over): the attempt is kept in the history, the row left to the other."""
    session.add(
        NotificationAttempt(
            delivery_id=claimed.id,
            at=now,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
    )
    delivery = session.scalars(
        sa.select(NotificationDelivery)
        .where(
            NotificationDelivery.id == claimed.id,
            _PENDING,
            NotificationDelivery.leased_until == claimed.lease,
        )
        .with_for_update()
    ).one_or_none()
    if delivery is None:
        log.warning("notification delivery %d: lease lost, outcome not recorded", claimed.id)
        return None
    delivery.leased_until = None
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    if outcome.delivered:
        delivery.status = DeliveryStatus.DELIVERED.value
        delivery.delivered_at = now
    elif outcome.permanent or delivery.attempts >= retry.max_attempts:
        delivery.status = DeliveryStatus.DEAD.value
        log.warning(
            "notification delivery %d to %s is dead after %d attempts: %s",
            delivery.id,
            delivery.channel_name,
            delivery.attempts,
            outcome.error,
        )
    else:
        delivery.next_attempt_at = now + retry.delay(delivery.attempts, outcome.retry_after)
    session.flush()
    return delivery.status


@dataclass
class DrainSummary:
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    lost: int = 0
    outcomes: dict[int, Outcome] = field(default_factory=dict)


Sessions = Callable[[], AbstractContextManager[Session]]


def _in_transaction(sessions: Sessions, work: Callable[[Session], Any]) -> Any:
    with sessions() as session:
        return work(session)


async def drain(
    *,
    sessions: Sessions,
    sender: Sender,
    now: datetime,
    retry: RetryPolicy,
    limit: int,
    lease_seconds: float,
    clock: Callable[[], datetime] | None = None,
) -> DrainSummary:
    """One drain: claim what is due at `now`, send it all concurrently, record each outcome
    as it comes (at `clock()`, or `now`). `sessions()` gives one transaction."""
    claimed: list[Claimed] = await asyncio.to_thread(
        _in_transaction,
        sessions,
        lambda s: claim_due(s, now=now, limit=limit, lease_seconds=lease_seconds),
    )
    summary = DrainSummary(claimed=len(claimed))

    async def one(item: Claimed) -> None:
        try:
            outcome = await sender.send(item.channel, item.id, item.event)
        except Exception as exc:  # a bug, not the receiver: recorded as a failed attempt
            log.exception("notification delivery %d: the send raised", item.id)
            outcome = Outcome(False, error=f"internal error while sending: {type(exc).__name__}")
        summary.outcomes[item.id] = outcome
        status = await asyncio.to_thread(
            _in_transaction,
            sessions,
            lambda s: record_outcome(s, item, outcome, now=clock() if clock else now, retry=retry),
        )
        if status is None:
            summary.lost += 1
        elif status == DeliveryStatus.DELIVERED:
            summary.delivered += 1
        elif status == DeliveryStatus.DEAD:
            summary.dead += 1
        else:
            summary.retrying += 1

    await asyncio.gather(*(one(item) for item in claimed))
    return summary


def drain_settings(notify: NotifySettings) -> dict[str, Any]:
    """drain()'s keyword arguments that come from the settings."""
    return {
        "retry": RetryPolicy.from_settings(notify),
        "limit": notify.batch_size,
        "lease_seconds": notify.lease_seconds,
    }
