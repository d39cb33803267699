"""A Python client for the API, for services and scripts (docs/api.md, Already exists;
Weather ingress and forecasts).

- A failed call raises `ApiError(status, detail)` carrying the server's `detail`; nothing is
  only logged. It is also the core's error class for that status (`NotFound` for a 400,
  `AlreadyExists` for a 409 marked so...), so callers catch the same classes either way.
  The `ensure_*` helpers for idempotent set-up treat `AlreadyExists` as success (and return
  False: nothing was created).
- Tokens come from a small pluggable `TokenSource`. `PasswordTokenSource` signs in with an
  email and password (a service user, never the default user's password), refreshes the
  access token shortly before its `exp`, and signs in again when the refresh token has
  expired too. A 401 "Token has expired" (clock skew, a sleeping laptop) makes the client
  invalidate the token and retry the call once.
- Every instant sent is UTC ISO-8601 with a `Z`; every instant read back is an aware UTC
  `datetime`.

    client = DTBaseClient.from_settings()          # DT_BACKEND_URL, DT_SERVICE_USER_*
    client.ensure_sensor_type("Weather", "...", [{"name": "rain", "units": "mms", ...}])
    client.insert_readings_bulk([{...}])
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx
import orjson

from dtbase_core.config import Settings, get_settings
from dtbase_core.errors import (
    ERROR_CODE_HEADER,
    AlreadyExists,
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    Missing,
    NotFound,
    Unauthorized,
    UpstreamTimeout,
)
from dtbase_core.schemas.sensors import OnConflict
from dtbase_core.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)

JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
EXPIRED = "Token has expired"
# The details after which a renewed token may succeed: the built-in one, and Entra ID's.
RENEWABLE = frozenset({EXPIRED, "Entra token has expired"})


def _counts(reply: Mapping[str, Any]) -> dict[str, int]:
    return {"inserted": int(reply["inserted"]), "duplicates": int(reply["duplicates"])}


class ApiError(DomainError):
    """The API answered a call with a status outside 2xx; `detail` is its `detail`.

    A DomainError like the core's own, so code that runs either through the API or on
    the core directly (service_base.CoreBackend) handles one kind of error; raised inside
    a function of this app, it is answered with the same status and detail.
    """

    def __init__(self, status: int, detail: Any, *, method: str = "", path: str = "") -> None:
        where = f"{method} {path}: " if path else ""
        super().__init__(detail)
        self.status_code = status
        self.method = method
        self.path = path
        self.message = f"{where}{status} {_detail_text(detail)}"

    @property
    def status(self) -> int:
        return self.status_code

    def __str__(self) -> str:
        return self.message

    @property
    def exists_already(self) -> bool:
        return isinstance(self, AlreadyExists)


# One mapping from a reply's status to the core's error class, so that code handles an
# error alike whether it ran on the core or through the API (`except AlreadyExists`).
_CORE_ERRORS: dict[int, type[DomainError]] = {
    400: NotFound,
    401: Unauthorized,
    403: Forbidden,
    404: Missing,
    409: Conflict,
    422: Invalid,
    504: UpstreamTimeout,
}
_API_ERRORS: dict[type[DomainError], type[ApiError]] = {
    kind: type(f"Api{kind.__name__}", (ApiError, kind), {})
    for kind in (*_CORE_ERRORS.values(), AlreadyExists)
}


def api_error_class(status: int, error_code: str | None) -> type[ApiError]:
    """The ApiError subclass for a reply: e.g. a 409 marked already_exists is also an
    AlreadyExists, a 400 also a NotFound."""
    kind = _CORE_ERRORS.get(status)
    if kind is Conflict and error_code == AlreadyExists.code:
        kind = AlreadyExists
    return _API_ERRORS[kind] if kind is not None else ApiError


def _detail_text(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):  # a 422 list: "field.path: message; ..."
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return json.dumps(detail)


def _error_from(reply: httpx.Response) -> ApiError:
    try:
        body = reply.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = reply.text or reply.reason_phrase
    kind = api_error_class(reply.status_code, reply.headers.get(ERROR_CODE_HEADER))
    return kind(reply.status_code, detail, method=reply.request.method, path=reply.request.url.path)


def parse_instant(value: Any) -> datetime:
    """An ISO string from the API (or a datetime from the core) as an aware UTC datetime."""
    if isinstance(value, datetime):
        return as_utc(value)
    return as_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def _token_claims(token: str) -> dict[str, Any]:
    """The JWT's claims, read without checking the signature (only the server can)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims if isinstance(claims, dict) else {}
    except (IndexError, ValueError):
        return {}


# --- tokens ----------------------------------------------------------------------------


class TokenSource(Protocol):
    """Where the client gets its access token. `get` returns a token that should be valid
    now; `invalidate` says the server refused it, so the next `get` must find another."""

    def get(self) -> str: ...

    def invalidate(self) -> None: ...


class StaticTokenSource:
    """A token obtained elsewhere (a web session, a test). It cannot be renewed."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get(self) -> str:
        return self.token

    def invalidate(self) -> None:
        pass


class PasswordTokenSource:
    """Sign in with email and password; refresh before the access token expires.

    The refresh happens when less than `margin` of the token's life is left: a fifth of
    its lifetime, at most a minute (a 2 s token is refreshed with 0.4 s left). When the
    refresh token is refused, it signs in again. `clock` returns Unix seconds (tests
    inject a skewed one to provoke a server-side "Token has expired").
    """

    def __init__(
        self,
        http: httpx.Client,
        email: str,
        password: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not email or not password:
            raise ValueError("a service user email and password are needed to sign in")
        self.http = http
        self.email = email
        self._password = password
        self.clock = clock
        self._lock = threading.Lock()
        self._access: str | None = None
        self._refresh: str | None = None
        self._renew_at = 0.0
        self.logins = 0
        self.refreshes = 0

    def get(self) -> str:
        with self._lock:
            if self._access is None or self.clock() >= self._renew_at:
                self._renew()
            assert self._access is not None
            return self._access

    def invalidate(self) -> None:
        with self._lock:
            self._renew_at = 0.0  # refresh (or sign in) on the next get

    def _renew(self) -> None:
        if self._refresh is not None:
            reply = self.http.post(
                "/auth/refresh", headers={"Authorization": f"Bearer {self._refresh}"}
            )
            if reply.status_code == 200:
                self.refreshes += 1
                self._store(reply.json())
                return
            log.info("token refresh refused (%s); signing in again", reply.status_code)
        reply = self.http.post(
            "/auth/login", json={"email": self.email, "password": self._password}
        )
        if reply.status_code != 200:
            raise _error_from(reply)
        self.logins += 1
        self._store(reply.json())

    def _store(self, tokens: Mapping[str, str]) -> None:
        self._access = tokens["access_token"]
        self._refresh = tokens.get("refresh_token")
        claims = _token_claims(self._access)
        now = self.clock()
        expires = float(claims.get("exp", now + 60))
        issued = float(claims.get("iat", now))
        margin = min(60.0, max(0.0, expires - issued) / 5)
        self._renew_at = expires - margin


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    value: Any
    timestamp: datetime


@dataclass(frozen=True)
class ModelRunInfo:
    """A `list-model-runs` item."""

    id: int
    model_name: str
    scenario_description: str | None
    time_created: datetime
    sensor_unique_id: str | None
    sensor_measure: dict[str, Any] | None
    metrics: dict[str, Any] | None

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> ModelRunInfo:
        return cls(
            id=int(item["id"]),
            model_name=item["model_name"],
            scenario_description=item.get("scenario_description"),
            time_created=parse_instant(item["time_created"]),
            sensor_unique_id=item.get("sensor_unique_id"),
            sensor_measure=item.get("sensor_measure"),
            metrics=item.get("metrics"),
        )


# --- the client -------------------------------------------------------------------------


class DTBaseClient:
    """The API over HTTP. `http` (or `transport`) can be injected; the base URL ends in
    `/api` (DT_BACKEND_URL). It authenticates with tokens from `token_source`, or with an
    API key (`api_key`, sent as `Authorization: ApiKey <key>`)."""

    def __init__(
        self,
        base_url: str,
        token_source: TokenSource | None = None,
        *,
        api_key: str | None = None,
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.http = http or httpx.Client(
            base_url=base_url.rstrip("/"), transport=transport, timeout=timeout
        )
        if not str(self.http.base_url):  # an injected client without one
            self.http.base_url = httpx.URL(base_url.rstrip("/"))
        self._owns_http = http is None
        self.tokens = token_source
        self.api_key = api_key

    @classmethod
    def with_password(
        cls,
        base_url: str,
        email: str,
        password: str,
        *,
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 60.0,
    ) -> DTBaseClient:
        client = cls(base_url, http=http, transport=transport, timeout=timeout)
        client.tokens = PasswordTokenSource(client.http, email, password, clock=clock)
        return client

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> DTBaseClient:
        """Signed in as the service user (DT_SERVICE_USER_EMAIL / _PASSWORD) at
        DT_BACKEND_URL; or, with no service user password but an Entra ID app registration
        (DT_ENTRA_CLIENT_ID and a secret or certificate), with client credentials; or,
        with neither, with the service key DT_SERVICE_API_KEY (an API key that reads, writes
        readings and runs services, but cannot manage models)."""
        settings = settings or get_settings()
        entra = settings.entra
        if not settings.services.service_user_password and (
            entra.client_id and (entra.client_secret or entra.client_certificate)
        ):
            from dtbase_core.entra_client import token_source

            return cls(
                settings.services.backend_url, token_source(entra), http=http, transport=transport
            )
        if not settings.services.service_user_password and settings.services.service_api_key:
            return cls(
                settings.services.backend_url,
                api_key=settings.services.service_api_key,
                http=http,
                transport=transport,
            )
        if not settings.services.service_user_email or not settings.services.service_user_password:
            raise ValueError(
                "DT_SERVICE_USER_EMAIL and DT_SERVICE_USER_PASSWORD must be set for a "
                "service to sign in to the API"
            )
        return cls.with_password(
            settings.services.backend_url,
            settings.services.service_user_email,
            settings.services.service_user_password,
            http=http,
            transport=transport,
        )

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> DTBaseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- raw calls ---------------------------------------------------------------------

    def request(self, method: str, path: str, payload: Any = None) -> Any:
        """Call the API; the reply's JSON, or ApiError. A 401 "Token has expired" renews
        the token and retries once."""
        content = None if payload is None else orjson.dumps(payload, option=JSON_OPTIONS)
        for attempt in (1, 2):
            headers = {"Content-Type": "application/json"} if content is not None else {}
            if self.api_key is not None:
                headers["Authorization"] = f"ApiKey {self.api_key}"
            elif self.tokens is not None:
                headers["Authorization"] = f"Bearer {self.tokens.get()}"
            reply = self.http.request(method, path, content=content, headers=headers)
            if reply.status_code == 401 and attempt == 1 and self.tokens is not None:
                error = _error_from(reply)
                if error.detail in RENEWABLE:
                    self.tokens.invalidate()
                    continue
                raise error
            if reply.status_code >= 300:
                raise _error_from(reply)
            if not reply.content:
                return None
            if reply.headers.get("content-type", "").startswith("application/json"):
                return reply.json()
            return reply.text
        raise AssertionError("unreachable")

    def post(self, path: str, payload: Any = None) -> Any:
        return self.request("POST", path, payload)

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def _ensure(self, path: str, payload: Any) -> bool:
        """POST a set-up call; False when the API says it was done already."""
        try:
            self.post(path, payload)
        except AlreadyExists:
            return False
        return True

    # --- sensors -------------------------------------------------------------------------

    def insert_sensor_type(
        self, name: str, description: str | None, measures: Sequence[Mapping[str, Any]]
    ) -> None:
        self.post(
            "/sensor/insert-sensor-type",
            {"name": name, "description": description, "measures": list(measures)},
        )

    def ensure_sensor_type(
        self, name: str, description: str | None, measures: Sequence[Mapping[str, Any]]
    ) -> bool:
        return self._ensure(
            "/sensor/insert-sensor-type",
            {"name": name, "description": description, "measures": list(measures)},
        )

    def list_sensor_types(self) -> list[dict[str, Any]]:
        return list(self.get("/sensor/list-sensor-types"))

    def insert_sensor(
        self,
        type_name: str,
        unique_identifier: str,
        name: str | None = None,
        notes: str | None = None,
    ) -> None:
        self.post("/sensor/insert-sensor", _sensor(type_name, unique_identifier, name, notes))

    def ensure_sensor(
        self,
        type_name: str,
        unique_identifier: str,
        name: str | None = None,
        notes: str | None = None,
    ) -> bool:
        return self._ensure(
            "/sensor/insert-sensor", _sensor(type_name, unique_identifier, name, notes)
        )

    def list_sensors(self, type_name: str | None = None) -> list[dict[str, Any]]:
        return list(self.post("/sensor/list-sensors", {"type_name": type_name}))

    def ensure_location(self, identifiers: Sequence[Mapping[str, Any]], values: list[Any]) -> bool:
        """A location given by position; its schema is named after the identifiers."""
        return self._ensure(
            "/location/insert-location", {"identifiers": list(identifiers), "values": values}
        )

    def insert_sensor_location(
        self,
        unique_identifier: str,
        schema_name: str,
        coordinates: Mapping[str, Any],
        installation_datetime: datetime | None = None,
    ) -> None:
        self.post(
            "/sensor/insert-sensor-location",
            {
                "unique_identifier": unique_identifier,
                "schema_name": schema_name,
                "coordinates": dict(coordinates),
                "installation_datetime": installation_datetime,
            },
        )

    def sensor_locations(self, unique_identifier: str) -> list[dict[str, Any]]:
        """The sensor's location history, newest first; instants as datetimes."""
        rows = self.post("/sensor/list-sensor-locations", {"unique_identifier": unique_identifier})
        return [
            {**row, "installation_datetime": parse_instant(row["installation_datetime"])}
            for row in rows
        ]

    def insert_sensor_readings(
        self,
        measure_name: str,
        unique_identifier: str,
        readings: Sequence[Any],
        timestamps: Sequence[datetime],
        on_conflict: OnConflict = "ignore",
    ) -> dict[str, int]:
        """One series: {"inserted": n, "duplicates": m}. A timestamp stored already keeps
        its value, or with `on_conflict="update"` takes the new one."""
        reply = self.post(
            "/sensor/insert-sensor-readings",
            {
                "measure_name": measure_name,
                "unique_identifier": unique_identifier,
                "readings": list(readings),
                "timestamps": list(timestamps),
                "on_conflict": on_conflict,
            },
        )
        return _counts(reply)

    def insert_readings_bulk(
        self, series: Sequence[Mapping[str, Any]], on_conflict: OnConflict = "ignore"
    ) -> dict[str, int]:
        """Many series, all or nothing: {"inserted": n, "duplicates": m}."""
        reply = self.post(
            "/sensor/insert-readings-bulk", {"series": list(series), "on_conflict": on_conflict}
        )
        return _counts(reply)

    def sensor_readings(
        self, unique_identifier: str, measure_name: str, dt_from: datetime, dt_to: datetime
    ) -> list[Reading]:
        rows = self.post(
            "/sensor/sensor-readings",
            {
                "measure_name": measure_name,
                "unique_identifier": unique_identifier,
                "dt_from": dt_from,
                "dt_to": dt_to,
            },
        )
        return [Reading(row["value"], parse_instant(row["timestamp"])) for row in rows]

    def measure_units(self, unique_identifier: str, measure_name: str) -> list[str | None]:
        """The units of the measures called `measure_name` of the sensor's type (one item
        normally; none when the sensor or measure does not exist)."""
        for sensor_type in self.list_sensor_types():
            units = [m["units"] for m in sensor_type["measures"] if m["name"] == measure_name]
            if not units:
                continue
            sensors = self.list_sensors(sensor_type["name"])
            if any(s["unique_identifier"] == unique_identifier for s in sensors):
                return units
        return []

    # --- models --------------------------------------------------------------------------

    def ensure_model(self, name: str) -> bool:
        return self._ensure("/model/insert-model", {"name": name})

    def ensure_model_scenario(self, model_name: str, description: str | None) -> bool:
        return self._ensure(
            "/model/insert-model-scenario", {"model_name": model_name, "description": description}
        )

    def ensure_model_measure(self, name: str, units: str, datatype: str) -> bool:
        return self._ensure(
            "/model/insert-model-measure", {"name": name, "units": units, "datatype": datatype}
        )

    def insert_model_run(
        self,
        *,
        model_name: str,
        scenario_description: str,
        measures_and_values: Sequence[Mapping[str, Any]],
        time_created: datetime | None = None,
        create_scenario: bool = False,
        sensor_unique_id: str | None = None,
        sensor_measure: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> int:
        """Insert a run; its id (read back by its creation instant, which this sets)."""
        created = as_utc(time_created) if time_created is not None else utcnow()
        body: dict[str, Any] = {
            "model_name": model_name,
            "scenario_description": scenario_description,
            "measures_and_values": list(measures_and_values),
            "time_created": created,
            "create_scenario": create_scenario,
            "sensor_unique_id": sensor_unique_id,
            "sensor_measure": dict(sensor_measure) if sensor_measure is not None else None,
        }
        if metrics is not None:
            body["metrics"] = dict(metrics)
        self.post("/model/insert-model-run", body)
        return self.find_model_run(model_name, scenario_description, created)

    def find_model_run(self, model_name: str, scenario_description: str, created: datetime) -> int:
        """The id of the run of this model and scenario created at exactly `created`."""
        runs = self.list_model_runs(
            model_name, dt_from=created, dt_to=created, scenario=scenario_description
        )
        if not runs:
            raise ApiError(400, f"No run of model '{model_name}' created at {created}")
        return runs[0].id

    def list_model_runs(
        self,
        model_name: str,
        *,
        dt_from: datetime | None = None,
        dt_to: datetime | None = None,
        scenario: str | None = None,
    ) -> list[ModelRunInfo]:
        body: dict[str, Any] = {"model_name": model_name, "dt_from": dt_from, "dt_to": dt_to}
        if scenario is not None:
            body["scenario"] = scenario
        return [ModelRunInfo.from_json(item) for item in self.post("/model/list-model-runs", body)]

    def get_model_run(self, run_id: int) -> dict[str, list[Reading]]:
        """{measure name: [Reading...]} ascending by timestamp; {} for an unknown run."""
        reply = self.post("/model/get-model-run", {"run_id": run_id})
        return {
            name: [Reading(v["value"], parse_instant(v["timestamp"])) for v in values]
            for name, values in reply.items()
        }

    # --- services ------------------------------------------------------------------------

    def ensure_service(self, name: str, url: str, http_method: str = "POST") -> bool:
        return self._ensure(
            "/service/insert-service", {"name": name, "url": url, "http_method": http_method}
        )

    def run_service(
        self,
        service_name: str,
        parameter_set_name: str | None = None,
        parameters: Any = None,
    ) -> dict[str, Any]:
        """DTBase's reply (`detail`, `status_code`, `response_json`), or, for a run still
        going after the API's wait, `{"detail", "run_id", "status_url"}`: follow it with
        `service_run_status`."""
        body: dict[str, Any] = {"service_name": service_name}
        if parameter_set_name is not None:
            body["parameter_set_name"] = parameter_set_name
        if parameters is not None:
            body["parameters"] = parameters
        return dict(self.post("/service/run-service", body))

    def service_run_status(self, run_id: int) -> dict[str, Any]:
        """A run: `status` is running, completed or failed (docs/api.md, Services)."""
        return dict(self.get(f"/service/run-status/{int(run_id)}"))

    def list_service_runs(self, service_name: str | None = None) -> list[dict[str, Any]]:
        return list(self.post("/service/list-runs", {"service_name": service_name}))


def _sensor(
    type_name: str, unique_identifier: str, name: str | None, notes: str | None
) -> dict[str, Any]:
    return {
        "type_name": type_name,
        "unique_identifier": unique_identifier,
        "name": name,
        "notes": notes,
    }
