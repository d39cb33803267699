"""User accounts (as DTBase's `User`, with a role, token invalidation and Entra ID
binding: docs/api.md, Roles and tokens) and the sign-in throttle."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from dtbase_core.orm.base import Base, Timestamped, UtcDateTime
from dtbase_core.roles import DEFAULT_ROLE


class User(Timestamped, Base):
    __tablename__ = "user_account"
    __table_args__ = (sa.CheckConstraint("role in ('viewer', 'editor', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.Text)
    # A dtbase_core.roles.Role value.
    role: Mapped[str] = mapped_column(sa.String(16), server_default=DEFAULT_ROLE.value)
    # Random per account and never reused: tokens carry it, so a user deleted and created
    # again with the same email does not get the old account's tokens back.
    token_key: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, server_default=sa.text("gen_random_uuid()")
    )
    # Bumped on every password change: tokens carry it, so older ones stop working.
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # A service user's Entra ID application (client) id; null for everyone else.
    entra_client_id: Mapped[str | None] = mapped_column(sa.String(36), unique=True)
    # The Entra ID person (tenant and object id) bound on their first sign-in; later
    # sign-ins match on the object id only, never on a name the tenant can change.
    entra_tenant_id: Mapped[str | None] = mapped_column(sa.String(36))
    entra_object_id: Mapped[str | None] = mapped_column(sa.String(36), unique=True)


class LoginThrottle(Base):
    """Recent sign-in attempts of one email or one client address, shared by every
    instance: `subject` is `email:<sha256 of the lower-cased email>` or `address:<ip>`."""

    __tablename__ = "login_throttle"

    subject: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    attempts: Mapped[int] = mapped_column(server_default="0")
    last_attempt: Mapped[datetime] = mapped_column(UtcDateTime)
    blocked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
