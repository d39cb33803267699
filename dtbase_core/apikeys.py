"""API keys (docs/api.md, API keys): scoped credentials for services and devices.

A key is `dtb_` and 43 URL-safe characters (256 random bits). It is shown once, when it is
made; the database keeps its first characters (`prefix`, to find its row and to tell keys
apart in listings) and an HMAC-SHA256 of the whole key. A key is random, so a fast keyed
hash is as safe as a slow one and costs microseconds per request (argon2 is for
passwords people choose). The hash key is derived from DT_JWT_SECRET_KEY: a leaked
database alone tells nothing, and rotating that secret ends every token and every key.

The deployment's service key (DT_SERVICE_API_KEY) is a key like any other, under the
reserved name `built-in services`, re-asserted at start-up (`ensure_service_key`).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core.config import Settings
from dtbase_core.errors import AlreadyExists, Conflict, Forbidden, NotFound, Unauthorized
from dtbase_core.orm import ApiKey, Sensor, SensorType

KEY_PREFIX = "dtb_"
# Characters of a key kept as its prefix: `dtb_` and 8 of the random part (48 bits, so
# two keys practically never share one; a unique index makes sure).
PREFIX_LENGTH = len(KEY_PREFIX) + 8
SERVICE_KEY_NAME = "built-in services"
# Last use is written at most this often per key (per process).
TOUCH_EVERY = timedelta(minutes=1)
UNKNOWN = "Unknown API key"
REVOKED = "API key revoked"
EXPIRED = "API key expired"


class Scope(enum.StrEnum):
    READ = "read"  # every route a viewer may use, except the user's own account
    READINGS_WRITE = "readings:write"  # insert readings (limited to sensors if the key is)
    SERVICES_RUN = "services:run"  # run-service, the weather ingress, forecasts


# What the built-in services' key may do: run, read, and write what they ingest.
SERVICE_KEY_SCOPES = (Scope.READ, Scope.READINGS_WRITE, Scope.SERVICES_RUN)


@dataclass(frozen=True)
class KeyPrincipal:
    """The caller, when a request carries an API key."""

    id: int
    name: str
    scopes: frozenset[Scope]
    sensors: frozenset[str] | None
    sensor_types: frozenset[str] | None

    def require(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"API key lacks scope '{scope}'")

    def check_sensors(self, session: Session, unique_identifiers: Iterable[str]) -> None:
        """Refuse the first sensor outside the key's limits (an unknown one included)."""
        wanted = list(dict.fromkeys(unique_identifiers))
        if (self.sensors is None and self.sensor_types is None) or not wanted:
            return
        types = dict(
            session.execute(
                sa.select(Sensor.unique_identifier, SensorType.name)
                .join(SensorType, Sensor.type_id == SensorType.id)
                .where(Sensor.unique_identifier.in_(wanted))
            ).all()
        )
        for uid in wanted:
            if uid in (self.sensors or ()) or types.get(uid) in (self.sensor_types or ()):
                continue
            raise Forbidden(f"API key may not write sensor '{uid}'")


def _hash_key(settings: Settings) -> bytes:
    return hmac.new(settings.require_secret().encode(), b"dtbase api key", "sha256").digest()


def key_hash(key: str, settings: Settings) -> bytes:
    return hmac.new(_hash_key(settings), key.encode(), hashlib.sha256).digest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _listing(row: ApiKey) -> dict[str, Any]:
    return {
        "name": row.name,
        "prefix": row.prefix,
        "scopes": row.scopes,
        "sensors": row.sensors,
        "sensor_types": row.sensor_types,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "last_used_at": row.last_used_at,
        "last_used_address": row.last_used_address,
    }


def create_api_key(
    session: Session,
    *,
    name: str,
    scopes: Sequence[Scope | str],
    sensors: Sequence[str] | None = None,
    sensor_types: Sequence[str] | None = None,
    expires_at: datetime | None = None,
    created_by: str,
    now: datetime,
    settings: Settings,
) -> dict[str, Any]:
    """A new key: its listing with `key`, the only time the key is seen."""
    if name == SERVICE_KEY_NAME:
        raise Conflict(f"'{SERVICE_KEY_NAME}' is reserved for DT_SERVICE_API_KEY")
    if session.scalar(sa.select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise AlreadyExists(f"API key '{name}' exists already")
    key = new_key()
    row = ApiKey(
        name=name,
        prefix=key[:PREFIX_LENGTH],
        key_hash=key_hash(key, settings),
        scopes=sorted({Scope(s).value for s in scopes}),
        sensors=None if sensors is None else sorted(set(sensors)),
        sensor_types=None if sensor_types is None else sorted(set(sensor_types)),
        created_by=created_by,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return {**_listing(row), "key": key}


def list_api_keys(session: Session) -> list[dict[str, Any]]:
    return [_listing(row) for row in session.scalars(sa.select(ApiKey).order_by(ApiKey.id))]


def _find(session: Session, name: str) -> ApiKey:
    row = session.scalar(sa.select(ApiKey).where(ApiKey.name == name).with_for_update())
    if row is None:
        raise NotFound(f"No API key named '{name}'")
    return row


def revoke_api_key(session: Session, *, name: str, now: datetime) -> None:
    if name == SERVICE_KEY_NAME:
        raise Conflict("The built-in services' key is DT_SERVICE_API_KEY: change or unset it")
    row = _find(session, name)
    if row.revoked_at is None:
        row.revoked_at = now


def rotate_api_key(
    session: Session,
    *,
    name: str,
    overlap: timedelta,
    created_by: str,
    now: datetime,
    settings: Settings,
) -> dict[str, Any]:
    """A new key under `name` with the old one's scopes, limits and expiry; the old one is
    renamed `<name> (rotated <time>)` and ends after `overlap`, so that both work while
    the new one is rolled out."""
    if name == SERVICE_KEY_NAME:
        raise Conflict("The built-in services' key is DT_SERVICE_API_KEY: change the setting")
    old = _find(session, name)
    if old.revoked_at is not None:
        raise Conflict(f"API key '{name}' is revoked: create a new one instead")
    expires_at = old.expires_at
    old.name = f"{name} (rotated {now.strftime('%Y-%m-%dT%H:%M:%SZ')})"
    old.expires_at = now + overlap if expires_at is None else min(expires_at, now + overlap)
    session.flush()
    return create_api_key(
        session,
        name=name,
        scopes=old.scopes,
        sensors=old.sensors,
        sensor_types=old.sensor_types,
        expires_at=expires_at,
        created_by=created_by,
        now=now,
        settings=settings,
    )


class _Touches:
    """When this process last wrote each key's last use: a key used on every request
    costs one write a minute, not one per request."""

    def __init__(self) -> None:
        self._written: dict[int, datetime] = {}
        self._lock = threading.Lock()

    def due(self, key_id: int, now: datetime) -> bool:
        with self._lock:
            last = self._written.get(key_id)
            if last is not None and now - last < TOUCH_EVERY:
                return False
            self._written[key_id] = now
            return True


touches = _Touches()


def authenticate_key(
    session: Session, key: str, *, now: datetime, address: str | None, settings: Settings
) -> KeyPrincipal:
    """The key's principal, or 401 naming why not (unknown, revoked or expired)."""
    row = session.scalar(sa.select(ApiKey).where(ApiKey.prefix == key[:PREFIX_LENGTH]))
    if row is None or not hmac.compare_digest(row.key_hash, key_hash(key, settings)):
        raise Unauthorized(UNKNOWN)
    if row.revoked_at is not None:
        raise Unauthorized(REVOKED)
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthorized(EXPIRED)
    if touches.due(row.id, now):
        session.execute(
            sa.update(ApiKey)
            .where(ApiKey.id == row.id)
            .values(last_used_at=now, last_used_address=(address or None) and address[:64])
        )
    return KeyPrincipal(
        id=row.id,
        name=row.name,
        scopes=frozenset(Scope(s) for s in row.scopes),
        sensors=None if row.sensors is None else frozenset(row.sensors),
        sensor_types=None if row.sensor_types is None else frozenset(row.sensor_types),
    )


def ensure_service_key(session: Session, settings: Settings, now: datetime) -> None:
    """Make DT_SERVICE_API_KEY the key `built-in services` (or remove that key when the
    setting is unset), so that the service key is checked, scoped and listed like any key."""
    key = settings.services.service_api_key
    row = session.scalar(sa.select(ApiKey).where(ApiKey.name == SERVICE_KEY_NAME).with_for_update())
    if not key:
        if row is not None:
            session.delete(row)
        return
    values = {
        "prefix": key[:PREFIX_LENGTH],
        "key_hash": key_hash(key, settings),
        "scopes": [s.value for s in SERVICE_KEY_SCOPES],
    }
    if row is None:
        session.add(
            ApiKey(name=SERVICE_KEY_NAME, created_by="DT_SERVICE_API_KEY", created_at=now, **values)
        )
    elif any(getattr(row, field) != value for field, value in values.items()):
        for field, value in values.items():
            setattr(row, field, value)
        row.sensors = row.sensor_types = row.expires_at = row.revoked_at = None
