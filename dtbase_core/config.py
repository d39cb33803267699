"""Every setting, read from the environment in this one module.

Names keep DTBase's `DT_` variables where they exist (API.md Part A 13). Settings are
read when `get_settings()` is first called and cached; `reset_settings()` re-reads them
(the local host and the tests set variables before the app starts).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

DEFAULT_USER_EMAIL = "default_user@localhost"

# Timer schedules (NCRONTAB, seconds first). The timer functions name them as
# "%DT_INGRESS_SCHEDULE%" / "%DT_FORECAST_SCHEDULE%"; the Functions host resolves those from
# app settings and fails indexing when one is unset, so deployments set both. Locally,
# `apply_schedule_defaults()` puts these defaults into the environment first.
SCHEDULE_DEFAULTS = {
    "DT_INGRESS_SCHEDULE": "0 0 * * * *",  # hourly, on the hour
    "DT_FORECAST_SCHEDULE": "0 0 3 * * *",  # daily at 03:00 UTC
}
# London, as DTBase's example ingress.
DEFAULT_WEATHER_LATITUDE = 51.53
DEFAULT_WEATHER_LONGITUDE = -0.127


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


ENTRA_AUTHORITY_HOST = "https://login.microsoftonline.com"
# Tenants that name many directories: the API needs one tenant, so one issuer.
_MULTI_TENANT_NAMES = {"common", "organizations", "consumers"}


@dataclass(frozen=True)
class EntraSettings:
    """Sign-in with Microsoft Entra ID (off unless DT_ENTRA_TENANT_ID and DT_ENTRA_AUDIENCE are
    set). The API side checks access tokens; the client side (dtbase_core.entra_client) gets
    them with MSAL; the web app reads `spa_client_id` and `scopes` from /auth/config."""

    tenant_id: str | None = None
    # Accepted `aud` values: the API's client id, and its `api://...` form only if listed.
    audiences: tuple[str, ...] = ()
    authority_host: str = ENTRA_AUTHORITY_HOST
    # A CA bundle to trust for the provider's HTTPS (a private or test CA); None: the system's.
    ca_bundle: str | None = None
    admin_role: str = "DTBase.Admin"
    auto_provision: bool = False
    spa_client_id: str | None = None
    # Delegated scopes a person's client asks for; default `<app id uri>/user_impersonation`.
    scopes: tuple[str, ...] = ()
    client_id: str | None = None
    client_secret: str | None = None
    # A PEM file with the private key and its certificate, or a .pfx/.p12 file.
    client_certificate: str | None = None
    client_certificate_password: str | None = None
    token_cache_path: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.tenant_id and self.audiences)

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def app_id_uri(self) -> str:
        """The API's identifier URI: the listed `api://...` audience, else api://<client id>."""
        for audience in self.audiences:
            if "://" in audience:
                return audience.rstrip("/")
        return f"api://{self.audiences[0]}" if self.audiences else ""

    @property
    def user_scopes(self) -> tuple[str, ...]:
        return self.scopes or (f"{self.app_id_uri}/user_impersonation",)

    @property
    def app_scope(self) -> str:
        """What a service asks for with client credentials: `<app id uri>/.default`."""
        return f"{self.app_id_uri}/.default"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def _words(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name) or ""
    return tuple(word for word in raw.replace(",", " ").split() if word)


def _platform_backend_url() -> str | None:
    """On Azure: the app's own API, from the default host name the platform sets (which may
    carry a unique suffix, so a deployment cannot name it in advance)."""
    host = _str("WEBSITE_HOSTNAME")
    return f"https://{host}/api" if host else None


def _origins(name: str) -> tuple[str, ...]:
    """Browser origins (`scheme://host[:port]`, comma-separated), as CORS compares them."""
    origins = []
    for word in _words(name):
        parts = urlsplit(word)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        if parts.scheme not in ("http", "https") or word.rstrip("/").lower() != origin:
            raise ConfigError(
                f"{name} holds {word!r}: each entry must be an origin such as "
                "https://site.example or http://127.0.0.1:8080 (no path, no wildcard)"
            )
        origins.append(origin)
    return tuple(origins)


def _entra_settings() -> EntraSettings:
    tenant = (_str("DT_ENTRA_TENANT_ID") or "").strip() or None
    audiences = _words("DT_ENTRA_AUDIENCE")
    host = (_str("DT_ENTRA_AUTHORITY_HOST") or ENTRA_AUTHORITY_HOST).strip().rstrip("/")
    if bool(tenant) != bool(audiences):
        missing = "DT_ENTRA_AUDIENCE" if tenant else "DT_ENTRA_TENANT_ID"
        raise ConfigError(f"{missing} must be set too: Entra ID sign-in needs both")
    if tenant and tenant.lower() in _MULTI_TENANT_NAMES:
        raise ConfigError(
            f"DT_ENTRA_TENANT_ID must name one tenant (its id or domain), not {tenant!r}"
        )
    if not host.startswith("https://"):
        raise ConfigError(f"DT_ENTRA_AUTHORITY_HOST must be an https:// URL, got {host!r}")
    return EntraSettings(
        tenant_id=tenant,
        audiences=audiences,
        authority_host=host,
        ca_bundle=_str("DT_ENTRA_CA_BUNDLE"),
        admin_role=_str("DT_ENTRA_ADMIN_ROLE") or "DTBase.Admin",
        auto_provision=_flag("DT_ENTRA_AUTO_PROVISION"),
        spa_client_id=_str("DT_ENTRA_SPA_CLIENT_ID"),
        scopes=_words("DT_ENTRA_SCOPES"),
        client_id=_str("DT_ENTRA_CLIENT_ID"),
        client_secret=_str("DT_ENTRA_CLIENT_SECRET"),
        client_certificate=_str("DT_ENTRA_CLIENT_CERTIFICATE"),
        client_certificate_password=_str("DT_ENTRA_CLIENT_CERTIFICATE_PASSWORD"),
        token_cache_path=_str("DT_ENTRA_TOKEN_CACHE"),
    )


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
    service_user_email: str | None = None
    service_user_password: str | None = None
    service_api_key: str | None = None
    openweathermap_api_key: str | None = None
    openweathermap_base_url: str = "https://api.openweathermap.org"
    openweathermap_latitude: float = DEFAULT_WEATHER_LATITUDE
    openweathermap_longitude: float = DEFAULT_WEATHER_LONGITUDE
    openweathermap_timeout_seconds: float = 10.0
    forecast_config_json: str | None = None
    # Browser origins allowed to call the API from another origin (the web app when it is
    # served apart from the API). On Azure the platform answers CORS from the Function App's
    # own list (infra sets both); the local host reads this. Empty: CORS closed.
    cors_origins: tuple[str, ...] = ()
    entra: EntraSettings = field(default_factory=EntraSettings)

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
        backend_url=os.environ.get("DT_BACKEND_URL")
        or _platform_backend_url()
        or "http://127.0.0.1:7071/api",
        service_user_email=_str("DT_SERVICE_USER_EMAIL"),
        service_user_password=_str("DT_SERVICE_USER_PASSWORD"),
        service_api_key=_str("DT_SERVICE_API_KEY"),
        openweathermap_api_key=_str("DT_OPENWEATHERMAP_APIKEY"),
        openweathermap_base_url=(
            _str("DT_OPENWEATHERMAP_BASE_URL") or "https://api.openweathermap.org"
        ).rstrip("/"),
        openweathermap_latitude=_float("DT_OPENWEATHERMAP_LAT", DEFAULT_WEATHER_LATITUDE),
        openweathermap_longitude=_float("DT_OPENWEATHERMAP_LON", DEFAULT_WEATHER_LONGITUDE),
        openweathermap_timeout_seconds=_float("DT_OPENWEATHERMAP_TIMEOUT_SECONDS", 10.0),
        forecast_config_json=_str("DT_FORECAST_CONFIG"),
        cors_origins=_origins("DT_CORS_ORIGINS"),
        entra=_entra_settings(),
    )
    if settings.access_token_seconds <= 0:
        raise ConfigError("DT_JWT_ACCESS_TOKEN_EXPIRES_SECONDS must be positive")
    if not -90 <= settings.openweathermap_latitude <= 90:
        raise ConfigError("DT_OPENWEATHERMAP_LAT must be a latitude between -90 and 90")
    if not -180 <= settings.openweathermap_longitude <= 180:
        raise ConfigError("DT_OPENWEATHERMAP_LON must be a longitude between -180 and 180")
    if settings.openweathermap_timeout_seconds <= 0:
        raise ConfigError("DT_OPENWEATHERMAP_TIMEOUT_SECONDS must be positive")
    return settings


def reset_settings() -> None:
    get_settings.cache_clear()


def apply_schedule_defaults() -> None:
    """Set each timer schedule setting the environment lacks to its documented default, so
    that a local host resolves "%DT_INGRESS_SCHEDULE%" as Azure would with infra's value."""
    for name, default in SCHEDULE_DEFAULTS.items():
        if not os.environ.get(name, "").strip():
            os.environ[name] = default


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


def limit_numeric_threads() -> None:
    """One BLAS/OpenMP thread per process unless the environment says otherwise.

    Forecasts run one series per worker process, in parallel; a multi-threaded BLAS in each
    of them oversubscribes the cores (SARIMAX fits measured 2 to 3 times slower on two busy
    cores). Must run before numpy is first imported.
    """
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
