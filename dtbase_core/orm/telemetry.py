"""Telemetry messages that could not be stored (docs/api.md, Device telemetry)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import Base, UtcDateTime


class TelemetryDeadLetter(Base):
    __tablename__ = "telemetry_dead_letter"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    source: Mapped[str] = mapped_column(sa.String(16))  # "iothub" or "mqtt"
    device_id: Mapped[str | None] = mapped_column(sa.Text)
    # The message's first bytes (telemetry.MAX_KEPT_PAYLOAD), as text where it decodes.
    payload: Mapped[str] = mapped_column(sa.Text)
    payload_bytes: Mapped[int] = mapped_column(sa.Integer)  # the whole message's size
    reason: Mapped[str] = mapped_column(sa.Text)
    # SHA-256 of (source, device, whole payload): a redelivered poison message is kept once.
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
