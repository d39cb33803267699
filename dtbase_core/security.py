"""Password hashing (argon2) and token issue and check (HS256 JWTs, API.md §1.6, Part A 8)."""

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

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class TokenClaims:
    email: str
    token_type: str
    version: int


def _token(email: str, token_type: str, version: int, lifetime: int, secret: str) -> str:
    now = utcnow()
    claims = {
        "sub": email,
        "token_type": token_type,
        "exp": int((now + timedelta(seconds=lifetime)).timestamp()),
        "iat": int(now.timestamp()),
        "jti": uuid.uuid4().hex,
        # The user's token version: a password change bumps it, ending older tokens.
        "ver": version,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def issue_token_pair(email: str, version: int, settings: Settings) -> dict[str, str]:
    secret = settings.require_secret()
    return {
        "access_token": _token(email, ACCESS, version, settings.access_token_seconds, secret),
        "refresh_token": _token(email, REFRESH, version, settings.refresh_token_seconds, secret),
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
    if (
        not isinstance(sub, str)
        or token_type not in (ACCESS, REFRESH)
        or not isinstance(version, int)
        or isinstance(version, bool)
    ):
        raise Unauthorized("Could not validate credentials")
    return TokenClaims(email=sub, token_type=token_type, version=version)


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
