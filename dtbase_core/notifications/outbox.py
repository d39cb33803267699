"""The outbox: notifications written in the caller's transaction, sent later by the drainer.

`enqueue` adds rows only; it neither commits nor sends. So a delivery exists exactly when
the change it announces (an alert's transition) was committed, and a rolled-back change
notifies no one. The timer in dtbase_core/notifications/drain.py sends the pending rows."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core.orm.notifications import DeliveryStatus, NotificationChannel, NotificationDelivery

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """What json.dumps cannot write itself: instants as ISO 8601, anything else as text."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def channel_names_missing(session: Session, names: Sequence[str]) -> list[str]:
    """The names among `names` that no channel has, in their order, each once (for a 4xx
    naming them when a rule is saved)."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    found = set(
        session.scalars(
            sa.select(NotificationChannel.name).where(NotificationChannel.name.in_(wanted))
        )
    )
    return [name for name in wanted if name not in found]


def enqueue(
    session: Session, *, channel_names: Sequence[str], event: Mapping[str, Any], now: datetime
) -> list[int]:
    """One pending delivery of `event` per named channel (each name once), due at `now`,
    in the caller's transaction; their ids.

    `event` is JSON: {"alert": {...}, "rule": {...}, "transition": "<state>", "at": "<iso>"}
    (datetimes in it are written as ISO 8601, other non-JSON values as text).
    A name with no channel (deleted since the rule was saved) is skipped with a warning."""
    wanted = list(dict.fromkeys(channel_names))
    if not wanted:
        return []
    stored = json.loads(json.dumps(dict(event), default=_plain))
    # FOR KEY SHARE: a concurrent delete-channel waits for this transaction rather than
    # failing its foreign key at commit.
    rows = session.execute(
        sa.select(NotificationChannel.id, NotificationChannel.name)
        .where(NotificationChannel.name.in_(wanted))
        .with_for_update(read=True, key_share=True)
    ).all()
    ids_by_name = {name: channel_id for channel_id, name in rows}
    deliveries: list[NotificationDelivery] = []
    for name in wanted:
        channel_id = ids_by_name.get(name)
        if channel_id is None:
            log.warning("Notification channel %r no longer exists: its delivery is skipped", name)
            continue
        deliveries.append(
            NotificationDelivery(
                channel_id=channel_id,
                channel_name=name,
                event=stored,
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    session.add_all(deliveries)
    session.flush()
    return [delivery.id for delivery in deliveries]
