"""Users, sign-in and the token check behind every endpoint (API.md §1.6, §2.1-2.2, Part A 7-9)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dtbase_core import security
from dtbase_core.config import DEFAULT_USER_EMAIL, Settings
from dtbase_core.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from dtbase_core.orm import User

log = logging.getLogger(__name__)

# DTBase's loose check (API.md §2.2); it also lets `default_user@localhost` through.
EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$")
# Verified against when the email is unknown, so both failures take the same time.
_DUMMY_HASH = security.hash_password("not a real password")


@dataclass(frozen=True)
class CurrentUser:
    id: int
    email: str
    is_admin: bool


def _find(session: Session, email: str) -> User | None:
    return session.scalar(sa.select(User).where(User.email == email))


def authenticate_token(
    session: Session, token: str, expected_type: str, settings: Settings
) -> CurrentUser:
    """The §1.6 order: decode, expiry, the user still exists (and the token is not older
    than their last password change), then the token type."""
    claims = security.decode_token(token, settings)
    user = _find(session, claims.email)
    if user is None or user.token_version != claims.version:
        raise Unauthorized("Could not validate credentials")
    if claims.token_type != expected_type:
        raise Unauthorized("Token of wrong type")
    return CurrentUser(id=user.id, email=user.email, is_admin=user.is_admin)


def login(session: Session, *, email: str, password: str, settings: Settings) -> dict[str, str]:
    user = _find(session, email)
    if user is None:
        security.verify_password(_DUMMY_HASH, password)
        raise Unauthorized("Incorrect email or password")
    if not security.verify_password(user.password_hash, password):
        raise Unauthorized("Incorrect email or password")
    return security.issue_token_pair(user.email, user.token_version, settings)


def refresh(session: Session, *, user: CurrentUser, settings: Settings) -> dict[str, str]:
    found = session.get(User, user.id)
    if found is None:
        raise Unauthorized("Could not validate credentials")
    return security.issue_token_pair(found.email, found.token_version, settings)


def list_users(session: Session) -> list[str]:
    return list(session.scalars(sa.select(User.email).order_by(User.id)))


def _require_admin(actor: CurrentUser, action: str) -> None:
    if not actor.is_admin:
        raise Forbidden(f"Only an admin can {action}")


def create_user(
    session: Session, *, actor: CurrentUser, email: str, password: str, is_admin: bool = False
) -> None:
    _require_admin(actor, "create users")
    if not EMAIL_PATTERN.match(email):
        raise Invalid(f"Invalid email address: {email!r}", loc=("body", "email"))
    inserted = session.execute(
        insert(User)
        .values(email=email, password_hash=security.hash_password(password), is_admin=is_admin)
        .on_conflict_do_nothing(index_elements=[User.email])
        .returning(User.id)
    ).scalar()
    if inserted is None:
        raise Conflict("User already exists")


def delete_user(session: Session, *, actor: CurrentUser, email: str) -> None:
    _require_admin(actor, "delete users")
    deleted = session.scalar(sa.delete(User).where(User.email == email).returning(User.id))
    if deleted is None:
        raise NotFound("User doesn't exist")


def change_password(session: Session, *, actor: CurrentUser, email: str, password: str) -> None:
    if email != actor.email:
        _require_admin(actor, "change another user's password")
    updated = session.scalar(
        sa.update(User)
        .where(User.email == email)
        .values(
            password_hash=security.hash_password(password),
            token_version=User.token_version + 1,
        )
        .returning(User.id)
    )
    if updated is None:
        raise NotFound("User doesn't exist")


def me(actor: CurrentUser) -> dict[str, object]:
    return {"email": actor.email, "is_admin": actor.is_admin}


def ensure_default_user(session: Session, password: str | None) -> None:
    """Create or update the default admin from DT_DEFAULT_USER_PASS (Part A 9).

    With no password set, nothing changes (and nothing crashes). An unchanged password
    keeps its hash, so restarts don't end everyone's sessions.
    """
    if not password:
        log.warning("DT_DEFAULT_USER_PASS is not set: the default user is left as it is")
        return
    user = session.scalar(sa.select(User).where(User.email == DEFAULT_USER_EMAIL).with_for_update())
    if user is None:
        session.execute(
            insert(User)
            .values(
                email=DEFAULT_USER_EMAIL,
                password_hash=security.hash_password(password),
                is_admin=True,
            )
            .on_conflict_do_nothing(index_elements=[User.email])
        )
        return
    user.is_admin = True
    if not security.verify_password(user.password_hash, password):
        user.password_hash = security.hash_password(password)
        user.token_version += 1
