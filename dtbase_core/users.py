"""Users, sign-in and the token check behind every endpoint (docs/api.md,
Authentication; Auth; Users; Roles and tokens; The default user)."""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dtbase_core import entra, security, throttle
from dtbase_core.config import DEFAULT_USER_EMAIL, Settings
from dtbase_core.errors import AlreadyExists, Conflict, Forbidden, Invalid, NotFound, Unauthorized
from dtbase_core.orm import User
from dtbase_core.roles import DEFAULT_ROLE, Role

log = logging.getLogger(__name__)

# DTBase's loose email pattern; it also lets `default_user@localhost` through.
EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$")


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so both failures take the same time.
    Hashed on first use, not at import: argon2 takes most of a second there, on every
    cold start, for a request that may never come."""
    return security.hash_password("not a real password")


# The password hash of accounts that never sign in with a password (Entra ID service users,
# auto-provisioned people): not an argon2 hash, so no password ever matches it.
NO_PASSWORD = "!entra-id-only"
NO_ENTRA_USER = "No DTBase user for this Entra identity"
NO_ENTRA_SERVICE_USER = "No DTBase service user for this Entra application"


@dataclass(frozen=True)
class CurrentUser:
    id: int
    email: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


def _find(session: Session, email: str) -> User | None:
    return session.scalar(sa.select(User).where(User.email == email))


def _subject(user: User) -> security.TokenSubject:
    return security.TokenSubject(
        email=user.email, account=user.token_key, version=user.token_version
    )


def authenticate_token(
    session: Session, token: str, expected_type: str, settings: Settings
) -> CurrentUser:
    """In this order (docs/api.md, Authentication): decode, expiry, the user still exists
    (and the token is not older than their last password change), then the token type.

    With Entra ID configured, a token that is not HS256 is an Entra ID access token: checked
    by `entra.verify_access_token` and mapped to a user by `_entra_user`. A built-in token is
    checked exactly as before."""
    if settings.entra.enabled and security.token_algorithm(token) not in (None, "HS256"):
        return _authenticate_entra(session, token, expected_type, settings)
    claims = security.decode_token(token, settings)
    user = _find(session, claims.subject.email)
    # The same account (not a re-created one with the same email) at the same version.
    if user is None or _subject(user) != claims.subject:
        raise Unauthorized("Could not validate credentials")
    if claims.token_type != expected_type:
        raise Unauthorized("Token of wrong type")
    return CurrentUser(id=user.id, email=user.email, role=Role(user.role))


def _authenticate_entra(
    session: Session, token: str, expected_type: str, settings: Settings
) -> CurrentUser:
    identity = entra.verify_access_token(token, settings.entra)
    user = _entra_user(session, identity, settings)
    if expected_type != security.ACCESS:
        raise Unauthorized("Token of wrong type")  # Entra tokens are renewed by Entra ID
    # An app role granted in Entra ID makes the caller an admin for this request.
    role = Role.ADMIN if settings.entra.admin_role in identity.roles else Role(user.role)
    return CurrentUser(id=user.id, email=user.email, role=role)


def _entra_user(session: Session, identity: entra.EntraIdentity, settings: Settings) -> User:
    """An application: the service user registered with its client id. A person: the user
    bound to the token's object id (`oid`); on first sign-in, the unbound user (not a service
    user) whose email is the token's email, preferred_username or upn, compared without case,
    is bound to the token's `tid` and `oid` (created as a non-admin when
    DT_ENTRA_AUTO_PROVISION=1). Names are never matched once a user is bound: a tenant
    user can change them."""
    if identity.kind == "app":
        user = session.scalar(sa.select(User).where(User.entra_client_id == identity.client_id))
        if user is None:
            raise Unauthorized(NO_ENTRA_SERVICE_USER)
        return user
    if not identity.object_id or not identity.tenant_id:
        raise Unauthorized("Entra token names no tid and oid")
    bound = session.scalar(sa.select(User).where(User.entra_object_id == identity.object_id))
    if bound is not None:
        return bound
    if not identity.names:
        raise Unauthorized("Entra token names no email or preferred_username")
    found = {
        user.email.lower(): user
        for user in session.scalars(
            sa.select(User).where(
                sa.func.lower(User.email).in_(identity.names),
                User.entra_client_id.is_(None),
                User.entra_object_id.is_(None),
            )
        )
    }
    for name in identity.names:
        if name in found:
            return _bind(session, found[name].id, identity)
    email = identity.names[0]
    if not settings.entra.auto_provision or not EMAIL_PATTERN.match(email) or len(email) > 320:
        raise Unauthorized(NO_ENTRA_USER)
    created = session.scalar(
        insert(User)
        .values(
            email=email,
            password_hash=NO_PASSWORD,
            role=DEFAULT_ROLE.value,
            entra_tenant_id=identity.tenant_id,
            entra_object_id=identity.object_id,
        )
        .on_conflict_do_nothing()
        .returning(User.id)
    )
    if created is None:  # the email (or the oid, concurrently) is taken
        raise Unauthorized(NO_ENTRA_USER)
    log.info("auto-provisioned %s from Entra ID", email)
    user = session.get(User, created)
    assert user is not None
    return user


def _bind(session: Session, user_id: int, identity: entra.EntraIdentity) -> User:
    """Bind an unbound user to the person. Of two people signing in first with the same
    email at once, one wins; the same person twice at once gets the same user."""
    bound = session.scalar(
        sa.update(User)
        .where(User.id == user_id, User.entra_object_id.is_(None))
        .values(entra_tenant_id=identity.tenant_id, entra_object_id=identity.object_id)
        .returning(User)
    )
    if bound is None:
        bound = session.scalar(sa.select(User).where(User.entra_object_id == identity.object_id))
        if bound is None:
            raise Unauthorized(NO_ENTRA_USER)
        return bound
    log.info("bound %s to Entra object id %s", bound.email, identity.object_id)
    return bound


INCORRECT_LOGIN = "Incorrect email or password"


@dataclass(frozen=True)
class SignIn:
    """A sign-in the throttle let through: the hash to check the password against (a
    dummy one for an unknown email, so both failures cost the same) and whom it is for."""

    password_hash: str
    user_id: int | None
    subjects: list[throttle.Subject]


def begin_login(
    session: Session, *, email: str, address: str | None, now: datetime, settings: Settings
) -> SignIn:
    """Count the attempt (or raise TooManyAttempts) and look the email up. The password
    is checked afterwards, outside any transaction (argon2 is slow on purpose)."""
    subjects = throttle.subjects(email, address, settings)
    throttle.admit(session, subjects, now, settings)
    user = _find(session, email)
    if user is None:
        return SignIn(_dummy_hash(), None, subjects)
    return SignIn(user.password_hash, user.id, subjects)


def finish_login(session: Session, sign_in: SignIn, settings: Settings) -> dict[str, str]:
    """The password matched `sign_in.password_hash`: reset the email's count and issue
    tokens, unless the account was deleted or its password changed meanwhile."""
    user = session.get(User, sign_in.user_id) if sign_in.user_id is not None else None
    if user is None or user.password_hash != sign_in.password_hash:
        raise Unauthorized(INCORRECT_LOGIN)
    throttle.succeeded(session, sign_in.subjects)
    return security.issue_token_pair(_subject(user), settings)


def refresh(session: Session, *, user: CurrentUser, settings: Settings) -> dict[str, str]:
    found = session.get(User, user.id)
    if found is None:
        raise Unauthorized("Could not validate credentials")
    return security.issue_token_pair(_subject(found), settings)


def list_users(session: Session, actor: CurrentUser) -> list[str]:
    """Every user's email for an admin; only the caller's own for anyone else."""
    query = sa.select(User.email).order_by(User.id)
    if not actor.is_admin:
        query = query.where(User.id == actor.id)
    return list(session.scalars(query))


def create_user(session: Session, *, email: str, password: str, role: Role = DEFAULT_ROLE) -> None:
    """A user who signs in with a password (the route is for admins: function_app/users.py)."""
    if not EMAIL_PATTERN.match(email):
        raise Invalid(f"Invalid email address: {email!r}", loc=("body", "email"))
    inserted = session.execute(
        insert(User)
        .values(email=email, password_hash=security.hash_password(password), role=role.value)
        .on_conflict_do_nothing(index_elements=[User.email])
        .returning(User.id)
    ).scalar()
    if inserted is None:
        raise AlreadyExists("User already exists")


def create_service_user(
    session: Session, *, email: str, client_id: str, role: Role = DEFAULT_ROLE
) -> None:
    """A user for an Entra ID application (client credentials): `email` names it in
    listings; it never signs in with a password."""
    if not EMAIL_PATTERN.match(email):
        raise Invalid(f"Invalid email address: {email!r}", loc=("body", "email"))
    client_id = client_id.lower()
    inserted = session.execute(
        insert(User)
        .values(email=email, password_hash=NO_PASSWORD, role=role.value, entra_client_id=client_id)
        .on_conflict_do_nothing()
        .returning(User.id)
    ).scalar()
    if inserted is None:
        if _find(session, email) is not None:
            raise AlreadyExists("User already exists")
        raise AlreadyExists(f"A service user for Entra client id {client_id} exists already")


def delete_user(session: Session, *, email: str) -> None:
    deleted = session.scalar(sa.delete(User).where(User.email == email).returning(User.id))
    if deleted is None:
        raise NotFound("User doesn't exist")


def change_password(session: Session, *, actor: CurrentUser, email: str, password: str) -> None:
    if email != actor.email and not actor.is_admin:
        raise Forbidden("Only an admin can change another user's password")
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


def update_user_role(session: Session, *, email: str, role: Role) -> None:
    """Give a user another role; the last admin keeps theirs, so someone can still manage
    users. Their tokens stay valid: the role is read from the database on every request."""
    user = session.scalar(sa.select(User).where(User.email == email).with_for_update())
    if user is None:
        raise NotFound("User doesn't exist")
    if user.role == Role.ADMIN and role is not Role.ADMIN:
        # Locks every admin row: two admins demoting each other at once cannot both pass.
        admins = session.scalars(
            sa.select(User.id).where(User.role == Role.ADMIN.value).with_for_update()
        ).all()
        if len(admins) <= 1:
            raise Conflict(f"{email} is the last admin: make another admin first")
    user.role = role.value


def list_user_roles(session: Session) -> list[dict[str, str]]:
    """Every user with their role, in the order they were created."""
    rows = session.execute(sa.select(User.email, User.role).order_by(User.id))
    return [{"email": email, "role": role} for email, role in rows]


def me(actor: CurrentUser) -> dict[str, object]:
    return {"email": actor.email, "is_admin": actor.is_admin, "role": actor.role.value}


def ensure_default_user(session: Session, password: str | None) -> None:
    """Create or update the default admin from DT_DEFAULT_USER_PASS (docs/api.md, The default user).

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
                role=Role.ADMIN.value,
            )
            .on_conflict_do_nothing(index_elements=[User.email])
        )
        return
    user.role = Role.ADMIN.value
    if not security.verify_password(user.password_hash, password):
        user.password_hash = security.hash_password(password)
        user.token_version += 1
