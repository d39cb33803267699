"""Users, sign-in and the token check behind every endpoint (API.md §1.6, §2.1-2.2, Part A 7-9)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dtbase_core import entra, security
from dtbase_core.config import DEFAULT_USER_EMAIL, Settings
from dtbase_core.errors import AlreadyExists, Forbidden, Invalid, NotFound, Unauthorized
from dtbase_core.orm import User

log = logging.getLogger(__name__)

# DTBase's loose check (API.md §2.2); it also lets `default_user@localhost` through.
EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$")
# Verified against when the email is unknown, so both failures take the same time.
_DUMMY_HASH = security.hash_password("not a real password")
# The password hash of accounts that never sign in with a password (Entra ID service users,
# auto-provisioned people): not an argon2 hash, so no password ever matches it.
NO_PASSWORD = "!entra-id-only"
NO_ENTRA_USER = "No DTBase user for this Entra identity"
NO_ENTRA_SERVICE_USER = "No DTBase service user for this Entra application"


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
    than their last password change), then the token type.

    With Entra ID configured, a token that is not HS256 is an Entra ID access token: checked
    by `entra.verify_access_token` and mapped to a user by `_entra_user`. A built-in token is
    checked exactly as before."""
    if settings.entra.enabled and security.token_algorithm(token) not in (None, "HS256"):
        return _authenticate_entra(session, token, expected_type, settings)
    claims = security.decode_token(token, settings)
    user = _find(session, claims.email)
    if user is None or user.token_version != claims.version:
        raise Unauthorized("Could not validate credentials")
    if claims.token_type != expected_type:
        raise Unauthorized("Token of wrong type")
    return CurrentUser(id=user.id, email=user.email, is_admin=user.is_admin)


def _authenticate_entra(
    session: Session, token: str, expected_type: str, settings: Settings
) -> CurrentUser:
    identity = entra.verify_access_token(token, settings.entra)
    user = _entra_user(session, identity, settings)
    if expected_type != security.ACCESS:
        raise Unauthorized("Token of wrong type")  # Entra tokens are renewed by Entra ID
    # An app role granted in Entra ID makes the caller an admin for this request.
    is_admin = user.is_admin or settings.entra.admin_role in identity.roles
    return CurrentUser(id=user.id, email=user.email, is_admin=is_admin)


def _entra_user(session: Session, identity: entra.EntraIdentity, settings: Settings) -> User:
    """An application: the service user registered with its client id. A person: the user
    (not a service user) whose email is the token's email, preferred_username or upn,
    compared without case; created as a non-admin when DT_ENTRA_AUTO_PROVISION=1."""
    if identity.kind == "app":
        user = session.scalar(sa.select(User).where(User.entra_client_id == identity.client_id))
        if user is None:
            raise Unauthorized(NO_ENTRA_SERVICE_USER)
        return user
    if not identity.names:
        raise Unauthorized("Entra token names no email or preferred_username")
    found = {
        user.email.lower(): user
        for user in session.scalars(
            sa.select(User).where(
                sa.func.lower(User.email).in_(identity.names), User.entra_client_id.is_(None)
            )
        )
    }
    for name in identity.names:
        if name in found:
            return found[name]
    email = identity.names[0]
    if not settings.entra.auto_provision or not EMAIL_PATTERN.match(email) or len(email) > 320:
        raise Unauthorized(NO_ENTRA_USER)
    session.execute(
        insert(User)
        .values(email=email, password_hash=NO_PASSWORD, is_admin=False)
        .on_conflict_do_nothing(index_elements=[User.email])
    )
    log.info("auto-provisioned %s from Entra ID", email)
    user = _find(session, email)
    if user is None or user.entra_client_id is not None:
        raise Unauthorized(NO_ENTRA_USER)
    return user


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
        raise AlreadyExists("User already exists")


def create_service_user(
    session: Session, *, actor: CurrentUser, email: str, client_id: str, is_admin: bool = False
) -> None:
    """A user for an Entra ID application (client credentials): `email` names it in
    listings; it never signs in with a password."""
    _require_admin(actor, "create service users")
    if not EMAIL_PATTERN.match(email):
        raise Invalid(f"Invalid email address: {email!r}", loc=("body", "email"))
    client_id = client_id.lower()
    inserted = session.execute(
        insert(User)
        .values(
            email=email, password_hash=NO_PASSWORD, is_admin=is_admin, entra_client_id=client_id
        )
        .on_conflict_do_nothing()
        .returning(User.id)
    ).scalar()
    if inserted is None:
        if _find(session, email) is not None:
            raise AlreadyExists("User already exists")
        raise AlreadyExists(f"A service user for Entra client id {client_id} exists already")


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


def auth_config(settings: Settings) -> dict[str, object]:
    """What the web app needs to offer "Sign in with Microsoft" (null when it cannot)."""
    entra_settings = settings.entra
    if not entra_settings.enabled or not entra_settings.spa_client_id:
        return {"entra": None}
    return {
        "entra": {
            "client_id": entra_settings.spa_client_id,
            "authority": entra_settings.authority,
            "scopes": list(entra_settings.user_scopes),
        }
    }


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
