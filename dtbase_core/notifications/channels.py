"""Channels and the delivery listing: the queries behind /notification (docs/api.md,
Notifications). A channel's secret is write-only: nothing here returns it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import redact
from dtbase_core.errors import AlreadyExists, Invalid, NotFound
from dtbase_core.notifications.drain import Claimed, channel_target
from dtbase_core.notifications.templates import check_template, sample_context
from dtbase_core.orm.notifications import (
    ChannelKind,
    DeliveryStatus,
    NotificationAttempt,
    NotificationChannel,
    NotificationDelivery,
)

CHANNEL_MISSING = "Notification channel doesn't exist."
TEST_TRANSITION = "test"


def _check_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise Invalid(f"url: not a URL ({exc})", loc=("body", "url")) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Invalid("url: must be an http or https URL with a host", loc=("body", "url"))
    return url


def insert_channel(
    session: Session,
    *,
    name: str,
    kind: str,
    url: str | None,
    recipients: list[str] | None,
    secret: str | None,
    template: str | None,
) -> None:
    """A webhook channel needs a url (http or https; each send checks its address), an
    email channel recipients; a template must render on a sample event (422 otherwise)."""
    if kind == ChannelKind.WEBHOOK:
        if not url:
            raise Invalid("url: a webhook channel needs a url", loc=("body", "url"))
        _check_url(url)
        if recipients:
            raise Invalid("recipients: only email channels have them", loc=("body", "recipients"))
    else:
        if not recipients:
            raise Invalid(
                "recipients: an email channel needs at least one", loc=("body", "recipients")
            )
        if url:
            raise Invalid("url: only webhook channels have one", loc=("body", "url"))
        if secret:
            raise Invalid("secret: only webhook channels are signed", loc=("body", "secret"))
    if template is not None:
        check_template(kind, template)
    if session.scalar(sa.select(NotificationChannel.id).where(NotificationChannel.name == name)):
        raise AlreadyExists("Notification channel already exists.")
    session.add(
        NotificationChannel(
            name=name,
            kind=kind,
            url=url,
            recipients=list(dict.fromkeys(recipients)) if recipients else None,
            secret=secret,
            template=template,
        )
    )
    session.flush()


def list_channels(session: Session, *, full_urls: bool) -> list[dict[str, Any]]:
    """Every channel by name, with `has_secret` in place of its secret; secret query
    values in a URL (`token`, `sig`, `key`...) show as `***`. Without `full_urls` (anyone
    but an admin), a URL shows only its origin: a webhook's path may be its credential."""
    rows = session.scalars(sa.select(NotificationChannel).order_by(NotificationChannel.name))
    return [
        {
            "name": c.name,
            "kind": c.kind,
            "url": (redact.mask_text(c.url) if full_urls else redact.origin_only(c.url))
            if c.url
            else None,
            "recipients": c.recipients,
            "has_secret": bool(c.secret),
            "template": c.template,
            "time_created": c.time_created,
        }
        for c in rows
    ]


def delete_channel(session: Session, *, name: str) -> None:
    """Delete a channel; its deliveries stay listed under its name, and any still pending
    go dead at their next attempt ("the channel was deleted")."""
    deleted = session.execute(
        sa.delete(NotificationChannel)
        .where(NotificationChannel.name == name)
        .returning(NotificationChannel.id)
    ).first()
    if deleted is None:
        raise NotFound(CHANNEL_MISSING)


def start_test(session: Session, *, name: str, now: datetime, lease_seconds: float) -> Claimed:
    """A sample delivery to channel `name`, written as claimed by the caller (attempt 1,
    leased), which sends it at once and records it with no retry."""
    channel = session.scalars(
        sa.select(NotificationChannel).where(NotificationChannel.name == name)
    ).one_or_none()
    if channel is None:
        raise NotFound(CHANNEL_MISSING)
    sample = sample_context()
    event = {
        "alert": {**sample["alert"], "message": f"A test of channel {name!r} from DTBase"},
        "rule": {**sample["rule"], "name": "test"},
        "transition": TEST_TRANSITION,
        "at": now.isoformat(),
    }
    lease = now + timedelta(seconds=lease_seconds)
    delivery = NotificationDelivery(
        channel_id=channel.id,
        channel_name=name,
        event=event,
        status=DeliveryStatus.PENDING.value,
        attempts=1,
        next_attempt_at=now,
        leased_until=lease,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    return Claimed(delivery.id, channel_target(channel), event, 1, lease)


def list_deliveries(
    session: Session, *, channel: str | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    """Deliveries, newest first, with every attempt (oldest first)."""
    query = sa.select(NotificationDelivery).order_by(NotificationDelivery.id.desc()).limit(limit)
    if channel is not None:
        query = query.where(NotificationDelivery.channel_name == channel)
    if status is not None:
        query = query.where(NotificationDelivery.status == status)
    deliveries = list(session.scalars(query))
    history: dict[int, list[dict[str, Any]]] = {d.id: [] for d in deliveries}
    if deliveries:
        for attempt in session.scalars(
            sa.select(NotificationAttempt)
            .where(NotificationAttempt.delivery_id.in_(history))
            .order_by(NotificationAttempt.id)
        ):
            history[attempt.delivery_id].append(
                {
                    "at": attempt.at,
                    "status_code": attempt.status_code,
                    "error": attempt.error,
                    "duration_ms": attempt.duration_ms,
                }
            )
    return [
        {
            "id": d.id,
            "channel": d.channel_name,
            "status": d.status,
            "transition": (d.event or {}).get("transition"),
            "attempts": d.attempts,
            "next_attempt_at": d.next_attempt_at if d.status == DeliveryStatus.PENDING else None,
            "last_status_code": d.last_status_code,
            "last_error": d.last_error,
            "created_at": d.created_at,
            "delivered_at": d.delivered_at,
            "event": d.event,
            "history": history[d.id],
        }
        for d in deliveries
    ]
