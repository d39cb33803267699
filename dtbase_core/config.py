"""Every setting, read from the environment in this one module (pydantic-settings).

Every variable starts with `DT_`, keeping DTBase's names where they exist
(`DT_JWT_SECRET_KEY`, `DT_DEFAULT_USER_PASS`, `DT_BACKEND_URL`, ...); README.md lists
them. `get_settings()` reads them once and caches the result; `reset_settings()` makes the
next call read them again (the local host and the tests set variables before the app
starts). A malformed value is a `ConfigError` naming the variable, raised at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_USER_EMAIL = "default_user@localhost"

# Timer schedules (NCRONTAB, seconds first). The timer functions name them as
# "%DT_INGRESS_SCHEDULE%", "%DT_FORECAST_SCHEDULE%", ...; the Functions host resolves those
# from app settings and fails indexing when one is unset, so the infra program sets each. The
# local host resolves an unset one to its default here.
SCHEDULE_DEFAULTS = {
    "DT_INGRESS_SCHEDULE": "0 0 * * * *",  # hourly, on the hour
    "DT_FORECAST_SCHEDULE": "0 0 3 * * *",  # daily at 03:00 UTC
    "DT_NOTIFY_SCHEDULE": "*/15 * * * * *",  # the notification outbox, every 15 seconds
    "DT_ALERT_SCHEDULE": "0 * * * * *",  # alert evaluation: every minute
    # The dispatcher of user schedules (dtbase_core/schedules.py): a schedule fires at
    # the first dispatch at or after its occurrence.
    "DT_SCHEDULE_DISPATCH": "0 * * * * *",  # every minute
    # Retention: expired raw readings and old operational rows (dtbase_core/retention.py).
    "DT_RETENTION_SCHEDULE": "0 30 2 * * *",  # daily at 02:30 UTC
}
# London, as DTBase's example ingress.
DEFAULT_WEATHER_LATITUDE = 51.53
DEFAULT_WEATHER_LONGITUDE = -0.127
ENTRA_AUTHORITY_HOST = "https://login.microsoftonline.com"
# Tenants that name many directories: the API needs one tenant, so one issuer.
_MULTI_TENANT_NAMES = {"common", "organizations", "consumers"}
# Hosts that run-service may call whatever they resolve to, in local mode unless
# DT_SERVICE_ALLOWED_HOSTS says otherwise: the app's own functions.
LOCAL_ALLOWED_HOSTS = ("127.0.0.1", "localhost")
# HS256 wants a key at least as long as its hash (RFC 7518 §3.2).
MIN_JWT_SECRET_BYTES = 32

Words = Annotated[tuple[str, ...], NoDecode]


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the app refuses to start with this message."""


def _split_words(value: Any) -> Any:
    """A list setting: words separated by commas or spaces."""
    if isinstance(value, str):
        return tuple(word for word in value.replace(",", " ").split() if word)
    return value


def _alias(name: str) -> Any:
    """A variable whose name is not the prefix plus the field's name (DTBase's names)."""
    return Field(None, validation_alias=name)


_COMMON = SettingsConfigDict(
    env_prefix="DT_",
    env_ignore_empty=True,  # an empty variable is an unset one
    extra="ignore",
    frozen=True,
    populate_by_name=True,
)


def _platform_backend_url() -> str:
    """On Azure: the app's own API, from the default host name the platform sets (which may
    carry a unique suffix, so a deployment cannot name it in advance); else the local host."""
    host = os.environ.get("WEBSITE_HOSTNAME")
    return f"https://{host}/api" if host else "http://127.0.0.1:7071/api"


def _origin(word: str) -> str:
    """A browser origin (`scheme://host[:port]`), as CORS compares them."""
    parts = urlsplit(word)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    if parts.scheme not in ("http", "https") or word.rstrip("/").lower() != origin:
        raise ValueError(
            f"holds {word!r}: each entry must be an origin such as https://site.example or "
            "http://127.0.0.1:8080 (no path, no wildcard)"
        )
    return origin


class EntraSettings(BaseSettings):
    """Sign-in with Microsoft Entra ID (off unless DT_ENTRA_TENANT_ID and DT_ENTRA_AUDIENCE are
    set). The API side checks access tokens; the client side (dtbase_core.entra_client) gets
    them with MSAL; the web app reads `spa_client_id` and `scopes` from /auth/config."""

    model_config = SettingsConfigDict(**{**_COMMON, "env_prefix": "DT_ENTRA_"})

    tenant_id: str | None = None
    # Accepted `aud` values: the API's client id, and its `api://...` form only if listed.
    audiences: Words = Field((), validation_alias="DT_ENTRA_AUDIENCE")
    authority_host: str = ENTRA_AUTHORITY_HOST
    # A CA bundle to trust for the provider's HTTPS (a private or test CA); None: the system's.
    ca_bundle: str | None = None
    admin_role: str = "DTBase.Admin"
    auto_provision: bool = False
    spa_client_id: str | None = None
    # Delegated scopes a person's client asks for; default `<app id uri>/user_impersonation`.
    scopes: Words = ()
    client_id: str | None = None
    client_secret: str | None = None
    # A PEM file with the private key and its certificate, or a .pfx/.p12 file.
    client_certificate: str | None = None
    client_certificate_password: str | None = None
    token_cache_path: str | None = Field(None, validation_alias="DT_ENTRA_TOKEN_CACHE")

    _words = field_validator("audiences", "scopes", mode="before")(_split_words)

    @field_validator("tenant_id", mode="after")
    @classmethod
    def _one_tenant(cls, tenant: str | None) -> str | None:
        tenant = (tenant or "").strip() or None
        if tenant and tenant.lower() in _MULTI_TENANT_NAMES:
            raise ValueError(f"must name one tenant (its id or domain), not {tenant!r}")
        return tenant

    @field_validator("authority_host", mode="after")
    @classmethod
    def _https(cls, host: str) -> str:
        host = host.strip().rstrip("/")
        if not host.startswith("https://"):
            raise ValueError(f"must be an https:// URL, got {host!r}")
        return host

    @model_validator(mode="after")
    def _both_or_neither(self) -> EntraSettings:
        if bool(self.tenant_id) != bool(self.audiences):
            missing = "DT_ENTRA_AUDIENCE" if self.tenant_id else "DT_ENTRA_TENANT_ID"
            raise ValueError(f"{missing} must be set too: Entra ID sign-in needs both")
        return self

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


class ServicesSettings(BaseSettings):
    """The services: calls made by run-service, the weather ingress, the forecast, and how
    services reach the API."""

    model_config = _COMMON

    # Where services (DTBaseClient) reach the API.
    backend_url: str = Field(default_factory=lambda: _platform_backend_url())
    service_user_email: str | None = None
    service_user_password: str | None = None
    # The key that stands in for a token on the services' own routes (x-functions-key).
    service_api_key: str | None = None
    # How long run-service waits for a run before answering 202 with its run-status URL.
    service_timeout_seconds: float = Field(30.0, gt=0)
    # How long a run may take in all (its call, and polling a 202's Location): then it
    # fails as a 504. Each call must fit the Functions host's functionTimeout (host.json).
    service_run_max_seconds: float = Field(600.0, gt=0)
    # Hosts that skip the outbound address check (dtbase_core/outbound.py); unset: none, or
    # LOCAL_ALLOWED_HOSTS in local mode (Settings.service_allowed_hosts).
    allowed_hosts: Words | None = Field(None, validation_alias="DT_SERVICE_ALLOWED_HOSTS")
    openweathermap_api_key: str | None = _alias("DT_OPENWEATHERMAP_APIKEY")
    openweathermap_base_url: str = "https://api.openweathermap.org"
    openweathermap_latitude: float = Field(
        DEFAULT_WEATHER_LATITUDE,
        ge=-90,
        le=90,
        validation_alias="DT_OPENWEATHERMAP_LAT",
    )
    openweathermap_longitude: float = Field(
        DEFAULT_WEATHER_LONGITUDE,
        ge=-180,
        le=180,
        validation_alias="DT_OPENWEATHERMAP_LON",
    )
    openweathermap_timeout_seconds: float = Field(10.0, gt=0)
    # The scheduled forecast's configuration (JSON of the /forecast/arima body), checked
    # here at start-up rather than when the timer first fires.
    forecast_config_json: str | None = Field(None, validation_alias="DT_FORECAST_CONFIG")
    # Register the weather ingress and the ARIMA forecast as services at start-up
    # (dtbase_core/own_services.py).
    register_own_services: bool = True

    _words = field_validator("allowed_hosts", mode="before")(_split_words)

    @field_validator("openweathermap_base_url", mode="after")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        return url.rstrip("/")

    @field_validator("forecast_config_json", mode="after")
    @classmethod
    def _forecast_config(cls, raw: str | None) -> str | None:
        if raw is not None:
            from dtbase_core.forecasting.config import ArimaConfig

            ArimaConfig.model_validate_json(raw)
        return raw


class NotifySettings(BaseSettings):
    """Notifications: the outbox drainer's retries, and email through Azure Communication
    Services (dtbase_core/notifications/)."""

    model_config = SettingsConfigDict(**{**_COMMON, "env_prefix": "DT_NOTIFY_"})

    # Sends of one delivery before it is marked dead; the first retry comes after
    # retry_seconds, each later one after twice the previous delay, up to retry_max_seconds.
    max_attempts: int = Field(8, ge=1)
    retry_seconds: float = Field(30.0, gt=0)
    retry_max_seconds: float = Field(3600.0, gt=0)
    # One send (a webhook POST; an email's submission and status polls) waits this long.
    timeout_seconds: float = Field(10.0, gt=0)
    # Deliveries one drain claims; a claim is held for lease_seconds, after which another
    # drainer may take the delivery again (the first one died while sending).
    batch_size: int = Field(50, ge=1)
    lease_seconds: float = Field(300.0, gt=0)
    # Azure Communication Services Email: the resource's endpoint (https://<name>.<region>
    # .communication.azure.com), its access key (a secret; unset: the app's managed
    # identity, a user-assigned one if its client id is given) and the sender address.
    acs_endpoint: str | None = _alias("DT_ACS_ENDPOINT")
    acs_access_key: str | None = _alias("DT_ACS_ACCESS_KEY")
    acs_managed_identity_client_id: str | None = _alias("DT_ACS_MANAGED_IDENTITY_CLIENT_ID")
    acs_sender_address: str | None = _alias("DT_ACS_SENDER_ADDRESS")

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> NotifySettings:
        if self.lease_seconds <= 2 * self.timeout_seconds:
            raise ValueError(
                "DT_NOTIFY_LEASE_SECONDS must be more than twice DT_NOTIFY_TIMEOUT_SECONDS: "
                "a claimed delivery must not be taken again while it is being sent"
            )
        return self


class RetentionSettings(BaseSettings):
    """What the daily retention timer prunes besides readings (dtbase_core/retention.py):
    ages in days, and the rows one batch (one transaction) removes."""

    model_config = SettingsConfigDict(**{**_COMMON, "env_prefix": "DT_RETENTION_"})

    audit_days: int = Field(365, ge=1)
    deliveries_days: int = Field(90, ge=1)  # delivered or dead notification deliveries
    dead_letters_days: int = Field(30, ge=1)  # telemetry dead letters
    batch_rows: int = Field(50_000, ge=1)


class Settings(BaseSettings):
    model_config = _COMMON

    # unset: the local host's embedded PostgreSQL; a deployment must set it
    database_url: str | None = None
    local_mode: bool = False  # set by the local host: secrets may be generated
    jwt_secret_key: str | None = None
    default_user_password: str | None = _alias("DT_DEFAULT_USER_PASS")
    access_token_seconds: int = Field(
        3600,
        gt=0,
        validation_alias="DT_JWT_ACCESS_TOKEN_EXPIRES_SECONDS",
    )
    refresh_grace_seconds: int = Field(
        3600,
        ge=0,
        validation_alias="DT_JWT_REFRESH_TOKEN_GRACE_SECONDS",
    )
    db_pool_size: int = Field(5, ge=1)
    db_max_overflow: int = Field(5, ge=0)
    # Bounds on every wait for the database, so that a slow or hung one gives a 503 (a
    # lock: a 409) rather than a hang (dtbase_core/db.py). libpq's connect timeout is whole
    # seconds, at least 2.
    db_connect_timeout_seconds: int = Field(10, ge=2)
    # A request at the readings limit (500,000) writes in one statement: ~6 s on 2 cores.
    db_statement_timeout_seconds: float = Field(60.0, gt=0)
    db_lock_timeout_seconds: float = Field(20.0, gt=0)
    db_pool_timeout_seconds: float = Field(10.0, gt=0)
    # Readings (values, or timestamps) one request may carry, over all its series (413).
    max_readings_per_request: int = Field(500_000, ge=1)
    # Sign-in throttling: free attempts per email and per client address within
    # the window; past them, each attempt blocks for a doubling time (block, 2 x block, ...)
    # up to the maximum.
    login_attempts_per_email: int = Field(5, ge=1)
    login_attempts_per_address: int = Field(30, ge=1)
    login_window_seconds: float = Field(900.0, gt=0)
    login_block_seconds: float = Field(1.0, gt=0)
    login_max_block_seconds: float = Field(900.0, gt=0)
    # How many proxies in front of the app append the caller to X-Forwarded-For (Azure's
    # front end: 1; the local host adds itself likewise); 0: the header is not trusted.
    trusted_proxy_hops: int = Field(0, ge=0)
    # Origins allowed to call the API from a browser (the Static Web App's); none: closed.
    cors_origins: Words = ()
    # Device telemetry on the local host (local/telemetry.py): an MQTT broker to subscribe
    # to instead of the embedded one, as mqtt://[user:password@]host[:port] (mqtts:// for
    # TLS); and how the subscriber batches messages: up to this many, or what arrived
    # within this many milliseconds of a batch's first message, in one write.
    mqtt_url: str | None = None
    # The subscriber's MQTT client id, which names its persistent session on the broker:
    # one per twin sharing a broker.
    mqtt_client_id: str = "dtbase-local-telemetry"
    telemetry_batch_messages: int = Field(500, ge=1)
    telemetry_batch_milliseconds: float = Field(100.0, gt=0)
    entra: EntraSettings = Field(default_factory=lambda: EntraSettings())
    services: ServicesSettings = Field(default_factory=lambda: ServicesSettings())
    notify: NotifySettings = Field(default_factory=lambda: NotifySettings())
    retention: RetentionSettings = Field(default_factory=lambda: RetentionSettings())

    _words = field_validator("cors_origins", mode="before")(_split_words)

    @field_validator("cors_origins", mode="after")
    @classmethod
    def _origins(cls, words: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_origin(word) for word in words)

    @field_validator("mqtt_url", mode="after")
    @classmethod
    def _mqtt_url(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
                raise ValueError("must be mqtt://host[:port] or mqtts://host[:port]")
        return url

    @property
    def service_allowed_hosts(self) -> tuple[str, ...]:
        """DT_SERVICE_ALLOWED_HOSTS, or its default: 127.0.0.1 and localhost in local mode."""
        if self.services.allowed_hosts is not None:
            return self.services.allowed_hosts
        return LOCAL_ALLOWED_HOSTS if self.local_mode else ()

    @property
    def refresh_token_seconds(self) -> int:
        return self.access_token_seconds + self.refresh_grace_seconds

    def require_secret(self) -> str:
        """The JWT signing secret; outside local mode it must be set (checked at start-up)."""
        if not self.jwt_secret_key:
            raise ConfigError(
                "DT_JWT_SECRET_KEY is not set: refusing to issue or check tokens. "
                "Set it to a long random string (the local host generates one for you)."
            )
        return self.jwt_secret_key


def _where(settings_class: type[BaseSettings], loc: tuple[Any, ...]) -> str:
    """The environment variable behind an error's location, and the path inside its value:
    e.g. `DT_OPENWEATHERMAP_LAT`, `DT_FORECAST_CONFIG (arima.alpha)`."""
    head, rest = str(loc[0]), loc[1:]
    variable = (
        head
        if head.startswith("DT_")
        else f"{settings_class.model_config.get('env_prefix', '')}{head}".upper()
    )
    return f"{variable} ({'.'.join(str(part) for part in rest)})" if rest else variable


def _load(settings_class: type[BaseSettings], **groups: BaseSettings) -> Any:
    build: Callable[..., BaseSettings] = settings_class  # its __init__ also reads the environment
    try:
        return build(**groups)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # a check across fields names its variables itself
            raise ConfigError(message) from exc
        raise ConfigError(f"{_where(settings_class, tuple(error['loc']))}: {message}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    # The groups first, so that an error in one names its own variable.
    groups = {
        "entra": _load(EntraSettings),
        "services": _load(ServicesSettings),
        "notify": _load(NotifySettings),
        "retention": _load(RetentionSettings),
    }
    settings: Settings = _load(Settings, **groups)
    return settings


def reset_settings() -> None:
    get_settings.cache_clear()


def check_deployable(settings: Settings) -> None:
    """Refuse to start a deployed app without its real secrets."""
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
    secret = settings.jwt_secret_key or ""
    if len(secret.encode()) < MIN_JWT_SECRET_BYTES:
        raise ConfigError(
            f"DT_JWT_SECRET_KEY must be at least {MIN_JWT_SECRET_BYTES} bytes outside local "
            f"mode (it has {len(secret.encode())}): generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
        )


def limit_numeric_threads() -> None:
    """One BLAS/OpenMP thread per process unless the environment says otherwise.

    Forecasts run one series per worker process, in parallel; a multi-threaded BLAS in each
    of them oversubscribes the cores (SARIMAX fits measured 2 to 3 times slower on two busy
    cores). Called by the process entry points (the Functions entry script, dtbase-local)
    before numpy is first imported.
    """
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
