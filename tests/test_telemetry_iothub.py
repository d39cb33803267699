"""Device telemetry through the Event Hubs-triggered function (docs/api.md, Device
telemetry): batches of real `azure.functions.EventHubEvent`s, decoded by the library's own
converter from what the Functions host sends for IoT Hub's built-in endpoint, stored in the
test database and read back over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest
from azure.functions import meta
from azure.functions.eventhub import EventHubTriggerConverter

from dtbase_core.config import reset_settings
from dtbase_core.db import dispose_engine
from function_app.telemetry import telemetry_iothub
from tests.support import Api, TestDatabase

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def events(*messages: tuple[str | None, Any]) -> list[func.EventHubEvent]:
    """What the Python worker hands a `cardinality=many`, `dataType=binary` function: the
    bodies as a bytes collection and each event's system properties in
    SystemPropertiesArray (IoT Hub's carry `iothub-connection-device-id`)."""
    bodies = [m if isinstance(m, bytes) else json.dumps(m).encode() for _, m in messages]
    properties = [
        {
            "EnqueuedTimeUtc": "2025-03-01T00:00:00Z",
            "SequenceNumber": i,
            "Offset": str(i * 100),
            **({"iothub-connection-device-id": device} if device else {}),
            "iothub-enqueuedtime": "2025-03-01T00:00:00Z",
        }
        for i, (device, _) in enumerate(messages)
    ]
    data = meta.Datum(SimpleNamespace(bytes=bodies), "collection_bytes")
    metadata = {"SystemPropertiesArray": meta.Datum(json.dumps(properties), "json")}
    decoded = EventHubTriggerConverter.decode(data, trigger_metadata=metadata)
    assert isinstance(decoded, list)
    return decoded


@pytest.fixture
def in_process(database: TestDatabase, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The function app's settings, pointed at the test database."""
    monkeypatch.setenv("DT_DATABASE_URL", database.url)
    monkeypatch.setenv("DT_JWT_SECRET_KEY", "x" * 40)
    reset_settings()
    dispose_engine()
    yield
    monkeypatch.undo()
    reset_settings()
    dispose_engine()


def make_sensors(api: Api, *uids: str) -> None:
    api.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "weather",
            "measures": [
                {"name": "temperature", "units": "degC", "datatype": "float"},
                {"name": "count", "units": None, "datatype": "integer"},
            ],
        },
        201,
    )
    for uid in uids:
        api.ok("/sensor/insert-sensor", {"type_name": "weather", "unique_identifier": uid}, 201)


def readings(api: Api, uid: str, measure: str = "temperature") -> list[tuple[Any, str]]:
    rows = api.ok(
        "/sensor/sensor-readings",
        {
            "measure_name": measure,
            "unique_identifier": uid,
            "dt_from": iso(T0 - timedelta(days=1)),
            "dt_to": iso(T0 + timedelta(days=1)),
        },
    )
    return [(row["value"], row["timestamp"]) for row in rows]


def dead_letters(api: Api) -> list[dict[str, Any]]:
    return api.ok("/telemetry/list-dead-letters", {})


def sample(second: int, **values: Any) -> dict[str, Any]:
    return {"timestamp": iso(T0 + timedelta(seconds=second)), "values": values}


def test_a_batch_of_every_format_is_stored_and_redelivery_stores_nothing_twice(
    admin: Api, in_process: None
) -> None:
    make_sensors(admin, "dev-1", "dev-2")
    batch = events(
        ("dev-1", sample(0, temperature=20.5, count=3)),
        ("dev-1", sample(1, temperature=21)),  # an integer for a float measure
        (
            "dev-2",
            {
                "unique_identifier": "dev-2",
                "measure_name": "temperature",
                "units": "degC",
                "readings": [1.5, 2.5],
                "timestamps": [iso(T0), iso(T0 + timedelta(seconds=1))],
            },
        ),
        ("dev-2", [sample(2, temperature=3.5), sample(3, count=7)]),
    )
    telemetry_iothub(batch)
    assert readings(admin, "dev-1") == [(20.5, iso(T0)), (21.0, "2025-03-01T00:00:01Z")]
    assert readings(admin, "dev-1", "count") == [(3, iso(T0))]
    assert [v for v, _ in readings(admin, "dev-2")] == [1.5, 2.5, 3.5]
    assert readings(admin, "dev-2", "count") == [(7, "2025-03-01T00:00:03Z")]

    # At least once: the same events again, then a batch overlapping the first.
    telemetry_iothub(batch)
    telemetry_iothub(events(("dev-1", sample(1, temperature=99.0)), ("dev-1", sample(4, count=1))))
    assert readings(admin, "dev-1") == [(20.5, iso(T0)), (21.0, "2025-03-01T00:00:01Z")]
    assert readings(admin, "dev-1", "count") == [(3, iso(T0)), (1, "2025-03-01T00:00:04Z")]
    assert dead_letters(admin) == []
    # The hourly rollups counted each reading once.
    aggregated = admin.ok(
        "/sensor/sensor-readings-aggregated",
        {
            "measure_name": "temperature",
            "unique_identifier": "dev-1",
            "dt_from": iso(T0),
            "dt_to": iso(T0 + timedelta(hours=1)),
            "aggregation": "count",
            "interval": "1h",
        },
    )
    assert [row["value"] for row in aggregated] == [2]


@pytest.mark.parametrize(
    ("device", "message", "reason"),
    [
        ("dev-1", b"{not json", "not JSON"),
        ("dev-1", b"\xff\xfe", "not JSON"),
        ("dev-1", 42, "message: not an object"),
        ("dev-1", [], "an empty list"),
        ("dev-1", sample(0, temperature="warm"), '"warm" is not a valid float value'),
        ("dev-1", sample(0, count=1.5), "1.5 is not a valid integer value"),
        ("dev-1", sample(0, humidity=1.0), "Measure 'humidity' is not a measure of sensor type"),
        ("ghost", sample(0, temperature=1.0), "Sensor 'ghost' does not exist"),
        ("dev-1", {"values": {"temperature": 1}}, "timestamp: Field required"),
        ("dev-1", {**sample(0), "values": {}}, "values: Dictionary should have at least 1 item"),
        (None, sample(0, temperature=1.0), "unique_identifier: missing"),
        (
            "dev-1",
            {"measure_name": "temperature", "readings": [1.0], "timestamps": []},
            "same length (0 != 1)",
        ),
        (
            "dev-1",
            {
                "measure_name": "temperature",
                "units": "K",
                "readings": [1.0],
                "timestamps": [iso(T0)],
            },
            "units: 'K' are not the units",
        ),
        # The sensor this device may not write: another device's.
        (
            "dev-1",
            {**sample(0, temperature=1.0), "unique_identifier": "dev-2"},
            "device 'dev-1' may not write sensor 'dev-2'",
        ),
        (
            "dev-1",
            [sample(0, temperature=1.0), sample(1, temperature=None)],
            "[1].values.temperature",
        ),
    ],
)
def test_a_message_that_cannot_be_stored_is_dead_lettered_and_the_rest_stored(
    admin: Api, in_process: None, device: str | None, message: Any, reason: str
) -> None:
    make_sensors(admin, "dev-1", "dev-2")
    batch = events(
        ("dev-2", sample(0, temperature=1.0)),
        (device, message),
        ("dev-2", sample(1, temperature=2.0)),
    )
    telemetry_iothub(batch)
    assert [v for v, _ in readings(admin, "dev-2")] == [1.0, 2.0]
    assert readings(admin, "dev-1") == []  # nothing of the poison message
    (letter,) = dead_letters(admin)
    assert reason in letter["reason"], letter
    assert letter["source"] == "iothub"
    assert letter["device_id"] == device
    raw = message if isinstance(message, bytes) else json.dumps(message).encode()
    assert letter["payload_bytes"] == len(raw)
    # Redelivered, the poison message is kept once.
    telemetry_iothub(batch)
    assert len(dead_letters(admin)) == 1


def test_dead_letters_bound_what_they_keep_and_list_newest_first(
    admin: Api, in_process: None
) -> None:
    make_sensors(admin, "dev-1")
    huge = b'{"values": "' + b"x" * 300_000 + b'"}'
    telemetry_iothub(events(("dev-1", b"[1")))
    telemetry_iothub(events(("dev-1", huge)))
    newest, oldest = dead_letters(admin)
    assert "over the limit" in newest["reason"]
    assert newest["payload_bytes"] == len(huge)
    assert len(newest["payload"]) == 4096
    assert oldest["payload"] == "[1"
    later = admin.ok("/telemetry/list-dead-letters", {"since": newest["received_at"]})
    assert [letter["id"] for letter in later] == [newest["id"]]


def test_dead_letters_are_for_editors(admin: Api, anon: Api) -> None:
    assert anon.post("/telemetry/list-dead-letters", {}).status_code == 401
    admin.ok("/user/create-user", {"email": "v@x.org", "password": "pw-viewer-1", "role": "viewer"})
    viewer = Api(admin.base, "v@x.org", "pw-viewer-1")
    assert viewer.post("/telemetry/list-dead-letters", {}).status_code == 403
    admin.ok("/user/create-user", {"email": "e@x.org", "password": "pw-editor-1"})
    editor = Api(admin.base, "e@x.org", "pw-editor-1")
    assert editor.ok("/telemetry/list-dead-letters") == []
    viewer.close()
    editor.close()


def test_the_trigger_reads_iot_hub_with_its_own_consumer_group() -> None:
    # As the worker describes it to the Functions host.
    function = json.loads(telemetry_iothub._function.get_function_json())  # type: ignore[attr-defined]
    (binding,) = function["bindings"]
    assert binding["type"] == "eventHubTrigger"
    assert binding["cardinality"] == "MANY"  # the host reads these case-insensitively
    assert binding["dataType"] == "BINARY"
    assert binding["connection"] == "DT_TELEMETRY_CONNECTION"
    assert binding["eventHubName"] == "%DT_TELEMETRY_EVENT_HUB%"
    assert binding["consumerGroup"] == "%DT_TELEMETRY_CONSUMER_GROUP%"
    # The trigger checkpoints failed batches too, unless a retry policy holds them.
    retry = telemetry_iothub._function.get_setting("retry_policy").get_dict_repr()  # type: ignore[attr-defined]
    assert retry["strategy"] == "exponential_backoff"
    assert retry["max_retry_count"] == "-1"
