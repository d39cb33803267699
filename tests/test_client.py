"""The API client services use (dtbase_core/client.py) against the live host: sign-in,
refresh before expiry and on a 401 "Token has expired", errors with the server's detail,
and idempotent set-up."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import jwt
import pytest

from dtbase_core.client import ApiError, DTBaseClient, PasswordTokenSource, StaticTokenSource
from dtbase_core.config import get_settings
from dtbase_core.errors import ERROR_CODE_HEADER, AlreadyExists, Conflict, DomainError, NotFound
from tests.support import JWT_SECRET, Api, LocalHost, replace_settings

SERVICE_EMAIL = "ingress-service@example.org"
SERVICE_PASSWORD = "service-password-123"


class Recorder:
    """An httpx event hook that notes (method, path, status) of every reply."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def __call__(self, reply: httpx.Response) -> None:
        self.calls.append((reply.request.method, reply.request.url.path, reply.status_code))

    def statuses(self, path_end: str) -> list[int]:
        return [status for _, path, status in self.calls if path.endswith(path_end)]


def recording_client(
    base: str, email: str, password: str, clock: Callable[[], float] = time.time
) -> tuple[DTBaseClient, Recorder]:
    recorder = Recorder()
    http = httpx.Client(base_url=base, event_hooks={"response": [recorder]}, timeout=60)
    return DTBaseClient.with_password(base, email, password, http=http, clock=clock), recorder


@pytest.fixture
def service_user(admin: Api) -> tuple[str, str]:
    """A non-admin user for services (never the default user's password)."""
    admin.ok("/user/create-user", {"email": SERVICE_EMAIL, "password": SERVICE_PASSWORD}, 201)
    return SERVICE_EMAIL, SERVICE_PASSWORD


@pytest.fixture
def client(live_host: LocalHost, service_user: tuple[str, str]) -> Iterator[DTBaseClient]:
    settings = replace_settings(
        get_settings(),
        services={
            "backend_url": live_host.api,
            "service_user_email": service_user[0],
            "service_user_password": service_user[1],
        },
    )
    with DTBaseClient.from_settings(settings) as api:
        yield api


def test_signs_in_as_the_service_user_once(client: DTBaseClient) -> None:
    assert client.list_sensor_types() == []
    assert client.list_sensors() == []
    tokens = client.tokens
    assert isinstance(tokens, PasswordTokenSource)
    assert (tokens.logins, tokens.refreshes, tokens.email) == (1, 0, SERVICE_EMAIL)
    me = client.get("/user/me")
    assert me == {"email": SERVICE_EMAIL, "is_admin": False, "role": "editor"}


def test_settings_without_a_service_user_are_refused() -> None:
    settings = replace_settings(
        get_settings(), services={"service_user_email": None, "service_user_password": None}
    )
    with pytest.raises(ValueError, match="DT_SERVICE_USER_EMAIL"):
        DTBaseClient.from_settings(settings)


def test_a_wrong_password_raises_with_the_server_s_detail(
    live_host: LocalHost, service_user: tuple[str, str]
) -> None:
    with (
        DTBaseClient.with_password(live_host.api, SERVICE_EMAIL, "wrong") as api,
        pytest.raises(ApiError) as caught,
    ):
        api.list_sensors()
    assert caught.value.status == 401
    assert caught.value.detail == "Incorrect email or password"
    assert "/auth/login" in str(caught.value)


def test_errors_carry_the_server_s_detail(client: DTBaseClient) -> None:
    with pytest.raises(ApiError) as caught:
        client.insert_sensor("No such type", "s-1")
    error = caught.value
    assert (error.status, error.detail) == (400, "Sensor type 'No such type' does not exist")
    assert error.path == "/api/sensor/insert-sensor" and error.method == "POST"
    assert isinstance(error, DomainError) and error.status_code == 400
    # The core's class for the status: code catches the same errors via the API or the core.
    assert isinstance(error, NotFound) and not isinstance(error, Conflict)
    # A 422 keeps pydantic's list; the message names the field.
    with pytest.raises(ApiError) as caught:
        client.post("/sensor/insert-sensor", {"type_name": "T"})
    assert caught.value.status == 422
    assert caught.value.detail[0]["loc"] == ["body", "unique_identifier"]
    assert "unique_identifier" in str(caught.value)
    # An unknown route.
    with pytest.raises(ApiError) as caught:
        client.post("/sensor/no-such-thing", {})
    assert (caught.value.status, caught.value.detail) == (404, "Not Found")


def test_set_up_is_idempotent_but_other_conflicts_raise(client: DTBaseClient, admin: Api) -> None:
    measures = [{"name": "temperature", "units": "C", "datatype": "float"}]
    assert client.ensure_sensor_type("Weather", "about weather", measures) is True
    assert client.ensure_sensor_type("Weather", "about weather", measures) is False
    assert client.ensure_sensor("Weather", "w-1", "Weather one") is True
    assert client.ensure_sensor("Weather", "w-1", "Weather one") is False
    identifiers = [
        {"name": "latitude", "units": "degrees", "datatype": "float"},
        {"name": "longitude", "units": "degrees", "datatype": "float"},
    ]
    assert client.ensure_location(identifiers, [51.5, -0.1]) is True
    assert client.ensure_location(identifiers, [51.5, -0.1]) is False
    for _ in range(2):
        client.ensure_model("Arima")
        client.ensure_model_scenario("Arima", "Business as usual")
        client.ensure_model_measure("Mean temperature", "C", "float")
    # A conflict that is not "exists already" is an error, even during set-up.
    clash = [{"name": "temperature", "units": "C", "datatype": "integer"}]
    with pytest.raises(ApiError) as caught:
        client.ensure_sensor_type("Other", None, clash)
    assert caught.value.status == 409 and "datatype" in caught.value.detail
    assert isinstance(caught.value, Conflict) and not isinstance(caught.value, AlreadyExists)
    # Plain inserts do raise on duplicates; the reply marks them, so no English is matched.
    with pytest.raises(AlreadyExists) as duplicate:
        client.insert_sensor("Weather", "w-1")
    assert (duplicate.value.status_code, duplicate.value.detail) == (409, "Sensor exists already")
    reply = admin.post(
        "/sensor/insert-sensor", {"type_name": "Weather", "unique_identifier": "w-1"}
    )
    assert reply.status_code == 409 and reply.headers[ERROR_CODE_HEADER] == "already_exists"
    assert reply.json() == {"detail": "Sensor exists already"}  # DTBase's body, unchanged
    assert [t["name"] for t in client.list_sensor_types()] == ["Weather"]


def test_readings_and_model_runs_round_trip(client: DTBaseClient) -> None:
    client.ensure_sensor_type(
        "Weather",
        None,
        [
            {"name": "temperature", "units": "C", "datatype": "float"},
            {"name": "icon", "units": "", "datatype": "string"},
        ],
    )
    client.ensure_sensor("Weather", "w-1")
    instants = [datetime(2026, 1, 1, h, tzinfo=UTC) for h in range(3)]
    counts = client.insert_readings_bulk(
        [
            {
                "unique_identifier": "w-1",
                "measure_name": "temperature",
                "readings": [1.0, 2.0, 3.0],
                "timestamps": instants,
            },
            {
                "unique_identifier": "w-1",
                "measure_name": "icon",
                "readings": ["01d", "02d", "03d"],
                "timestamps": instants,
            },
        ]
    )
    assert counts == {"inserted": 6, "duplicates": 0}
    readings = client.sensor_readings("w-1", "temperature", instants[0], instants[-1])
    assert [(r.value, r.timestamp) for r in readings] == list(
        zip([1.0, 2.0, 3.0], instants, strict=True)
    )
    assert client.measure_units("w-1", "temperature") == ["C"]
    assert client.measure_units("w-1", "pressure") == []

    client.ensure_model("Arima")
    client.ensure_model_scenario("Arima", "Business as usual")
    client.ensure_model_measure("Mean temperature", "C", "float")
    run_id = client.insert_model_run(
        model_name="Arima",
        scenario_description="Business as usual",
        measures_and_values=[
            {"measure_name": "Mean temperature", "values": [4.0], "timestamps": [instants[0]]}
        ],
        sensor_unique_id="w-1",
        sensor_measure={"name": "temperature", "units": "C"},
        metrics={"RMSE": 0.25},
    )
    assert run_id == 1
    (run,) = client.list_model_runs("Arima")
    assert (run.id, run.sensor_unique_id, run.metrics) == (1, "w-1", {"RMSE": 0.25})
    assert client.get_model_run(run_id)["Mean temperature"][0].value == 4.0


def test_a_static_token_is_sent_as_is(live_host: LocalHost, admin: Api) -> None:
    with DTBaseClient(live_host.api, StaticTokenSource(admin.token or "")) as api:
        assert api.get("/user/me")["email"] == live_host.admin_email
    with (
        DTBaseClient(live_host.api, StaticTokenSource("not-a-token")) as api,
        pytest.raises(ApiError) as caught,
    ):
        api.get("/user/me")
    assert (caught.value.status, caught.value.detail) == (401, "Could not validate credentials")


def expired_copy(token: str) -> str:
    """The same token (claims, user, version), signed by the same secret, but expired a
    minute ago: what the server sees once a token's lifetime has passed."""
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["exp"] = int(time.time()) - 60
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def test_token_lifecycle(live_host: LocalHost, service_user: tuple[str, str]) -> None:
    """The client's clock is injected; the server's expiry is met with tokens whose
    lifetime really has passed."""
    now = [time.time()]
    client, recorder = recording_client(
        live_host.api, SERVICE_EMAIL, SERVICE_PASSWORD, clock=lambda: now[0]
    )
    with client:
        assert client.list_sensors() == []
        tokens = client.tokens
        assert isinstance(tokens, PasswordTokenSource)
        # Near expiry (past the refresh point, 60 s before exp): refreshed proactively, so
        # the server never says "expired".
        now[0] += 3600 - 30
        assert client.list_sensors() == []
        assert (tokens.logins, tokens.refreshes) == (1, 1)
        assert 401 not in recorder.statuses("/sensor/list-sensors")
        assert recorder.statuses("/auth/refresh") == [200]

        # Both tokens expired: the refresh is refused, and it signs in again.
        now[0] += 3 * 3600
        tokens._refresh = expired_copy(tokens._refresh or "")
        assert client.list_sensors() == []
        assert (tokens.logins, tokens.refreshes) == (2, 1)
        assert recorder.statuses("/auth/refresh") == [200, 401]

    # A client whose clock lags believes an expired token is still good: the server's
    # 401 "Token has expired" makes it refresh and retry, once.
    lagging, recorder = recording_client(
        live_host.api, SERVICE_EMAIL, SERVICE_PASSWORD, clock=lambda: time.time() - 30
    )
    with lagging:
        assert lagging.list_sensors() == []
        source = lagging.tokens
        assert isinstance(source, PasswordTokenSource)
        source._access = expired_copy(source._access or "")
        assert lagging.list_sensors() == []
        assert recorder.statuses("/sensor/list-sensors") == [200, 401, 200]
        assert recorder.statuses("/auth/refresh") == [200]


def test_writes_return_their_counts_and_can_overwrite(client: DTBaseClient) -> None:
    measure = {"name": "temperature", "units": "C", "datatype": "float"}
    client.ensure_sensor_type("Weather", None, [measure])
    client.ensure_sensor("Weather", "w-2")
    instants = [datetime(2026, 1, 1, h, tzinfo=UTC) for h in range(3)]
    first = client.insert_sensor_readings("temperature", "w-2", [1.0, 2.0], instants[:2])
    assert first == {"inserted": 2, "duplicates": 0}
    # Stored values are kept by default...
    kept = client.insert_sensor_readings("temperature", "w-2", [9.0, 3.0], instants[1:])
    assert kept == {"inserted": 1, "duplicates": 1}
    # ...and overwritten when asked, one series or many.
    series = {"unique_identifier": "w-2", "measure_name": "temperature"}
    updated = client.insert_readings_bulk(
        [{**series, "readings": [7.0, 8.0], "timestamps": instants[:2]}], on_conflict="update"
    )
    assert updated == {"inserted": 0, "duplicates": 2}
    again = client.insert_sensor_readings(
        "temperature", "w-2", [6.0], instants[2:], on_conflict="update"
    )
    assert again == {"inserted": 0, "duplicates": 1}
    stored = client.sensor_readings("w-2", "temperature", instants[0], instants[-1])
    assert [r.value for r in stored] == [7.0, 8.0, 6.0]


def test_a_service_run_and_its_status(client: DTBaseClient, live_host: LocalHost) -> None:
    assert client.ensure_service("health", f"{live_host.api}/health", "GET") is True
    reply = client.run_service("health")
    assert (reply["status_code"], reply["response_json"]["status"]) == (200, "ok")
    (run,) = client.list_service_runs("health")
    status = client.service_run_status(run["run_id"])
    assert (status["status"], status["status_code"]) == ("completed", 200)
    with pytest.raises(ApiError) as missing:
        client.service_run_status(run["run_id"] + 1)
    assert missing.value.status == 404
