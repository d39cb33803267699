"""API keys (docs/api.md, API keys): what a key may do, never the key itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import Base, UtcDateTime


class ApiKey(Base):
    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text, unique=True)
    # The key's first characters, shown in listings and used to find its row.
    prefix: Mapped[str] = mapped_column(sa.String(32), unique=True)
    # HMAC-SHA256 of the whole key (dtbase_core/apikeys.py): a key is random, so a fast
    # keyed hash is enough; the key itself is shown once and never stored.
    key_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    scopes: Mapped[list[str]] = mapped_column(sa.JSON)
    # Limits on the sensors it may write or read readings of: null is no limit.
    sensors: Mapped[Any] = mapped_column(sa.JSON(none_as_null=True), nullable=True)
    sensor_types: Mapped[Any] = mapped_column(sa.JSON(none_as_null=True), nullable=True)
    created_by: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Written at most once a minute per key, not on every request.
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_address: Mapped[str | None] = mapped_column(sa.String(64))
