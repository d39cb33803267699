"""User accounts (API.md §3.5 with Part A 7 and 8: an admin flag, token invalidation)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import Base, Timestamped


class User(Timestamped, Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.Text)
    is_admin: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # Bumped on every password change: tokens carry it, so older ones stop working.
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # A service user's Entra ID application (client) id; null for everyone else.
    entra_client_id: Mapped[str | None] = mapped_column(sa.String(36), unique=True)
