"""The audit log (docs/api.md, Audit log): who wrote what through the API, and how it went.

No foreign keys: a row outlives the user or key it names, and says who they were then."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import Base, UtcDateTime


class AuditEvent(Base):
    __tablename__ = "audit_event"
    __table_args__ = (
        sa.CheckConstraint("actor_kind in ('user', 'api_key', 'service')", name="actor_kind"),
        # Filtered listings page newest first by id (dtbase_core/audit.py, list_events).
        sa.Index("ix_audit_event_actor_id", "actor", "id"),
        sa.Index("ix_audit_event_route_id", "route", "id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor_kind: Mapped[str] = mapped_column(sa.String(16))  # user, api_key or service
    actor: Mapped[str] = mapped_column(sa.Text)  # the user's email or the key's name
    method: Mapped[str] = mapped_column(sa.String(8))
    route: Mapped[str] = mapped_column(sa.Text)  # e.g. "sensor/insert-sensor"
    # A short description of what was written (identifiers only, never a body).
    target: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[int] = mapped_column(sa.SmallInteger)  # the reply's HTTP status
