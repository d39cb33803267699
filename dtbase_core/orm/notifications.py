"""Notification channels and the delivery outbox (docs/architecture.md, Notifications).

A delivery row is written in the same transaction as whatever it announces (an alert's
transition), so a notification exists exactly when its cause was committed; a timer then
drains the pending rows, sends them and records each attempt."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import Base, Timestamped, UtcDateTime


class ChannelKind(enum.StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"


class DeliveryStatus(enum.StrEnum):
    """`pending` until sent (or while retrying), `delivered` once a send succeeded, `dead`
    after the last attempt failed: kept, listed, never dropped."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class NotificationChannel(Timestamped, Base):
    __tablename__ = "notification_channel"
    __table_args__ = (sa.CheckConstraint("kind in ('webhook', 'email')", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text, unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    url: Mapped[str | None] = mapped_column(sa.Text)
    # Email addresses, for `email` channels.
    recipients: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
    # Kept in clear: the webhook signature is an HMAC keyed by it. Write-only in the API;
    # never listed or logged.
    secret: Mapped[str | None] = mapped_column(sa.Text)
    # A Jinja2 template (sandboxed) for the webhook body or the email, replacing the default.
    template: Mapped[str | None] = mapped_column(sa.Text)


class NotificationDelivery(Base):
    __tablename__ = "notification_delivery"
    __table_args__ = (
        sa.CheckConstraint("status in ('pending', 'delivered', 'dead')", name="status"),
        # The drainer's look-up: due pending rows only, so delivered history costs nothing.
        sa.Index(
            "ix_notification_delivery_due",
            "next_attempt_at",
            postgresql_where=sa.text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    # SET NULL: deleting a channel keeps its deliveries' history (under channel_name).
    channel_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("notification_channel.id", ondelete="SET NULL"), index=True
    )
    channel_name: Mapped[str] = mapped_column(sa.Text, index=True)
    # {"alert": {...}, "rule": {...}, "transition": "<state>", "at": "<iso>"}
    event: Mapped[Any] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(16), server_default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # A drainer that claimed the row holds it until then; past it another may take it
    # (the first one died mid-send).
    leased_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class NotificationAttempt(Base):
    """One send of a delivery: its outcome, for list-deliveries' history."""

    __tablename__ = "notification_attempt"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        sa.ForeignKey("notification_delivery.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.Text)
    duration_ms: Mapped[int] = mapped_column(sa.Integer)
