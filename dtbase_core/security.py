"""Password hashing (argon2) and token issue and check (HS256 JWTs; docs/api.md,
Authentication; Roles and tokens)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dtbase_core.config import Settings
from dtbase_core.errors import Unauthorized
from dtbase_core.timeutil import utcnow

ALGORITHM = "HS256"
ACCESS, REFRESH = "access", "refresh"
REQUIRED_CLAIMS = ["sub", "token_type", "exp", "iat", "jti", "ver"]
# The account's token key (random, never reused): checked after decoding rather than
# required by it, so that an expired token still says "Token has expired".
ACCOUNT_CLAIM = "acct"

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class TokenSubject:
    """Whom a token speaks for: the email (DTBase's `sub`), the account's token key and
    its token version."""

    email: str
    account: uuid.UUID
    version: int


@dataclass(frozen=True)
class TokenClaims:
    subject: TokenSubject
    token_type: str


def _token(subject: TokenSubject, token_type: str, lifetime: int, secret: str) -> str:
    now = utcnow()
    claims = {
        "sub": subject.email,
        "token_type": token_type,
        "exp": int((now + timedelta(seconds=lifetime)).timestamp()),
        "iat": int(now.timestamp()),
        "jti": uuid.uuid4().hex,
        # The account, not just the email: a re-created user gets a new key.
        ACCOUNT_CLAIM: subject.account.hex,
        # The user's token version: a password change bumps it, ending older tokens.
        "ver": subject.version,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def issue_token_pair(subject: TokenSubject, settings: Settings) -> dict[str, str]:
    secret = settings.require_secret()
    return {
        "access_token": _token(subject, ACCESS, settings.access_token_seconds, secret),
        "refresh_token": _token(subject, REFRESH, settings.refresh_token_seconds, secret),
    }


def decode_token(token: str, settings: Settings) -> TokenClaims:
    """Check signature, expiry and the claims' presence and types; not yet the user."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.require_secret(),
            algorithms=[ALGORITHM],
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("Token has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("Could not validate credentials") from exc
    sub, token_type, version = claims["sub"], claims["token_type"], claims["ver"]
    account = _account(claims.get(ACCOUNT_CLAIM))
    if (
        not isinstance(sub, str)
        or token_type not in (ACCESS, REFRESH)
        or not isinstance(version, int)
        or isinstance(version, bool)
        or account is None
    ):
        raise Unauthorized("Could not validate credentials")
    return TokenClaims(TokenSubject(email=sub, account=account, version=version), token_type)


def _account(value: Any) -> uuid.UUID | None:
    if not isinstance(value, str) or len(value) != 32:
        return None
    try:
        return uuid.UUID(hex=value)
    except ValueError:
        return None


def token_algorithm(token: str) -> str | None:
    """The `alg` of a JWT's header, read without checking anything; None for a non-JWT."""
    try:
        alg = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError:
        return None
    return alg if isinstance(alg, str) else None


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    raise Unauthorized("Not authenticated", challenge=True)
