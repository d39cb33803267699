"""Every setting, read from the environment in this one module.

Names keep DTBase's `DT_` variables where they exist (API.md Part A 13). Settings are
read when `get_settings()` is first called and cached; `reset_settings()` re-reads them
(the local host and the tests set variables before the app starts).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_USER_EMAIL = "default_user@localhost"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the app refuses to start with this message."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _str(name: str) -> str | None:
    raw = os.environ.get(name)
    return raw if raw else None


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    local_mode: bool
    jwt_secret_key: str | None
    default_user_password: str | None
    access_token_seconds: int
    refresh_grace_seconds: int
    service_timeout_seconds: float
    db_pool_size: int
    db_max_overflow: int
    backend_url: str

    @property
    def refresh_token_seconds(self) -> int:
        return self.access_token_seconds + self.refresh_grace_seconds

    def require_secret(self) -> str:
        """The JWT signing secret; outside local mode it must be set (Part A 8)."""
        if not self.jwt_secret_key:
            raise ConfigError(
                "DT_JWT_SECRET_KEY is not set: refusing to issue or check tokens. "
                "Set it to a long random string (the local host generates one for you)."
            )
        return self.jwt_secret_key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    settings = Settings(
        database_url=_str("DT_DATABASE_URL"),
        local_mode=os.environ.get("DT_LOCAL_MODE", "").lower() in {"1", "true", "yes"},
        jwt_secret_key=_str("DT_JWT_SECRET_KEY"),
        default_user_password=_str("DT_DEFAULT_USER_PASS"),
        access_token_seconds=_int("DT_JWT_ACCESS_TOKEN_EXPIRES_SECONDS", 3600),
        refresh_grace_seconds=_int("DT_JWT_REFRESH_TOKEN_GRACE_SECONDS", 3600),
        service_timeout_seconds=_float("DT_SERVICE_TIMEOUT_SECONDS", 30.0),
        db_pool_size=_int("DT_DB_POOL_SIZE", 5),
        db_max_overflow=_int("DT_DB_MAX_OVERFLOW", 5),
        backend_url=os.environ.get("DT_BACKEND_URL") or "http://127.0.0.1:7071/api",
    )
    if settings.access_token_seconds <= 0:
        raise ConfigError("DT_JWT_ACCESS_TOKEN_EXPIRES_SECONDS must be positive")
    return settings


def reset_settings() -> None:
    get_settings.cache_clear()


def check_deployable(settings: Settings) -> None:
    """Refuse to start a deployed app without its real secrets (Part A 8)."""
    if settings.local_mode:
        return
    missing = [
        name
        for name, value in (
            ("DT_JWT_SECRET_KEY", settings.jwt_secret_key),
            ("DT_DATABASE_URL", settings.database_url),
        )
        if not value
    ]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} must be set outside local mode (DT_LOCAL_MODE=1 is set "
            "only by the local host)."
        )
