"""Device telemetry through the real MQTT path (docs/api.md, Device telemetry): devices
publish with paho-mqtt to the local host's embedded broker (signing in with their API key)
or to the machine's Mosquitto (DT_MQTT_URL), and the readings are read back through
`/sensor/sensor-readings`. Waits are on conditions, each with a deadline."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.support import Api, LocalHost, TestDatabase, free_port, start_host

T0 = datetime(2025, 3, 1, tzinfo=UTC)
DEADLINE = 30.0  # seconds any awaited condition may take
MOSQUITTO = ("127.0.0.1", 1883)


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def wait_until(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def topic(uid: str) -> str:
    return f"dtbase/devices/{uid}/readings"


class Device:
    """A device's MQTT connection (paho-mqtt, MQTT 3.1.1)."""

    def __init__(
        self,
        port: int,
        username: str | None = None,
        password: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"device-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.answered = threading.Event()
        self.reason: Any = None
        self.client.on_connect = self._on_connect
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        assert self.answered.wait(DEADLINE), "no CONNACK"

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not self.answered.is_set():
            self.reason = reason
            self.answered.set()

    @property
    def refused(self) -> bool:
        return bool(self.reason.is_failure)

    def publish(self, uid: str, message: Any) -> None:
        """QoS 1: returns once the broker has acknowledged it (PUBACK)."""
        payload = message if isinstance(message, bytes) else json.dumps(message).encode()
        info = self.client.publish(topic(uid), payload, qos=1)
        info.wait_for_publish(DEADLINE)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def sample(second: int, **values: Any) -> dict[str, Any]:
    return {"timestamp": iso(T0 + timedelta(seconds=second)), "values": values}


def make_sensors(api: Api, *uids: str) -> None:
    api.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "weather",
            "measures": [{"name": "temperature", "units": "degC", "datatype": "float"}],
        },
        201,
    )
    for uid in uids:
        api.ok("/sensor/insert-sensor", {"type_name": "weather", "unique_identifier": uid}, 201)


def stored(api: Api, uid: str) -> list[tuple[Any, str]]:
    rows = api.ok(
        "/sensor/sensor-readings",
        {
            "measure_name": "temperature",
            "unique_identifier": uid,
            "dt_from": iso(T0 - timedelta(days=1)),
            "dt_to": iso(T0 + timedelta(days=1)),
        },
    )
    return [(row["value"], row["timestamp"]) for row in rows]


def dead_letters(api: Api, device: str) -> list[dict[str, Any]]:
    return [
        letter
        for letter in api.ok("/telemetry/list-dead-letters", {})
        if letter["device_id"] == device
    ]


def subscribed(host: LocalHost) -> bool:
    return "telemetry: subscribed to dtbase/devices/+/readings" in host.log()


def port_open(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def mosquitto_session() -> Iterator[str]:
    """A client id for the host's subscriber on the machine's Mosquitto; its persistent
    session is erased afterwards (a clean-session CONNECT with the same id)."""
    client_id = f"dtbase-test-{uuid.uuid4().hex[:12]}"
    yield client_id
    eraser = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=mqtt.MQTTv311,
    )
    eraser.connect(*MOSQUITTO)
    eraser.loop_start()
    eraser.disconnect()
    eraser.loop_stop()


@pytest.mark.skipif(not port_open(MOSQUITTO), reason="no MQTT broker on 127.0.0.1:1883")
def test_through_an_external_broker(
    admin: Api, host_factory: Callable[..., LocalHost], mosquitto_session: str
) -> None:
    """DT_MQTT_URL: the host subscribes to Mosquitto (whose own authentication, here none,
    applies); a redelivered message stores nothing twice, a poison one is dead-lettered."""
    host = host_factory(
        env={
            "DT_MQTT_URL": "mqtt://{}:{}".format(*MOSQUITTO),
            "DT_MQTT_CLIENT_ID": mosquitto_session,
        },
        log_level="info",
    )
    wait_until(lambda: subscribed(host), "the host subscribed")
    uid = f"ext-{uuid.uuid4().hex[:8]}"  # the broker is the machine's: a name of our own
    make_sensors(admin, uid)
    device = Device(MOSQUITTO[1], host=MOSQUITTO[0])
    try:
        device.publish(uid, sample(0, temperature=1.5))
        device.publish(uid, sample(0, temperature=1.5))  # as a redelivery would
        device.publish(uid, b"{not json")
        device.publish(uid, {**sample(1, temperature=2.5), "unique_identifier": uid})
    finally:
        device.close()
    wait_until(lambda: len(stored(admin, uid)) == 2, "both readings stored")
    letters = wait_until(lambda: dead_letters(admin, uid), "the poison message dead-lettered")
    assert stored(admin, uid) == [(1.5, iso(T0)), (2.5, "2025-03-01T00:00:01Z")]
    assert [(x["source"], x["payload"]) for x in letters] == [("mqtt", "{not json")]
    assert "not JSON" in letters[0]["reason"]


def create_key(api: Api, name: str, **limits: Any) -> str:
    body = {"name": name, "scopes": ["readings:write"], **limits}
    return str(api.ok("/apikey/create-api-key", body, 201)["key"])


@pytest.fixture(scope="module")
def broker_host(database: TestDatabase, host_root: Path) -> Iterator[LocalHost]:
    """A host with its embedded MQTT broker, on the suite's database (which `admin`
    empties before each test)."""
    host = start_host(
        database.url, host_root / "mqtt-broker", mqtt_port=free_port(), log_level="debug"
    )
    wait_until(lambda: subscribed(host), "the host subscribed to its own broker")
    yield host
    host.stop()


def mqtt_port(host: LocalHost) -> int:
    process_args = host.process.args
    assert isinstance(process_args, list)
    return int(process_args[process_args.index("--mqtt-port") + 1])


def test_devices_sign_in_with_their_key_and_their_readings_are_readable(
    admin: Api, broker_host: LocalHost
) -> None:
    make_sensors(admin, "dev-1", "dev-2")
    port = mqtt_port(broker_host)
    one = Device(port, "dev-1", create_key(admin, "one", sensors=["dev-1"]))
    two = Device(port, "dev-2", create_key(admin, "by type", sensor_types=["weather"]))
    assert not one.refused and not two.refused
    try:
        one.publish("dev-1", sample(0, temperature=1.5))
        # At least once: a device that missed the PUBACK sends the message again.
        one.publish("dev-1", sample(0, temperature=1.5))
        two.publish("dev-2", [sample(0, temperature=7.0), sample(1, temperature=8.0)])
        one.publish("dev-1", b"\x00 not json")  # poison: dead-lettered, the rest goes on
        one.publish(
            "dev-1",
            {
                "measure_name": "temperature",
                "readings": [2.5, 3.5],
                "timestamps": [iso(T0 + timedelta(seconds=1)), iso(T0 + timedelta(seconds=2))],
            },
        )
        # Another device's topic: the broker drops it (a device publishes to its own only).
        one.publish("dev-2", sample(5, temperature=99.0))
        two.publish("dev-2", sample(6, temperature=9.0))
    finally:
        one.close()
        two.close()
    wait_until(lambda: len(stored(admin, "dev-1")) == 3, "dev-1's readings")
    wait_until(lambda: len(stored(admin, "dev-2")) == 3, "dev-2's readings")
    assert stored(admin, "dev-1") == [
        (1.5, iso(T0)),
        (2.5, "2025-03-01T00:00:01Z"),
        (3.5, "2025-03-01T00:00:02Z"),
    ]
    # dev-2's own message after the foreign one is there, the foreign one is not.
    assert [v for v, _ in stored(admin, "dev-2")] == [7.0, 8.0, 9.0]
    (letter,) = wait_until(lambda: dead_letters(admin, "dev-1"), "the poison message")
    assert letter["source"] == "mqtt" and "not JSON" in letter["reason"]
    assert letter["payload"] == "\ufffd not json"  # kept as text, NUL replaced


@pytest.mark.parametrize(
    ("username", "which_key"),
    [
        ("dev-1", "wrong"),  # not a key at all
        ("dev-1", "other sensor's"),  # a key limited to dev-2
        ("dev-1", "read only"),  # no readings:write
        ("dev-1", "revoked"),
        ("dev-1", None),  # no password
        ("dtbase-local-telemetry", "dev-1's"),  # the host's own user name
    ],
)
def test_a_wrong_key_is_refused_at_connect(
    admin: Api, broker_host: LocalHost, username: str, which_key: str | None
) -> None:
    make_sensors(admin, "dev-1", "dev-2")
    keys = {
        "wrong": "dtb_" + "x" * 43,
        "other sensor's": create_key(admin, "two", sensors=["dev-2"]),
        "read only": str(
            admin.ok("/apikey/create-api-key", {"name": "r", "scopes": ["read"]}, 201)["key"]
        ),
        "dev-1's": create_key(admin, "one", sensors=["dev-1"]),
    }
    if which_key == "revoked":
        keys["revoked"] = create_key(admin, "gone", sensors=["dev-1"])
        admin.ok("/apikey/revoke-api-key", {"name": "gone"})
    device = Device(mqtt_port(broker_host), username, keys[which_key] if which_key else None)
    try:
        assert device.refused, device.reason
    finally:
        device.close()
    # Nothing of the key reaches the host's log, at debug level (amqtt's packet logger is
    # not loaded, and amqtt logs from warnings up).
    for key in keys.values():
        assert key not in broker_host.log()


def test_the_host_stops_cleanly_with_its_broker(
    admin: Api, host_factory: Callable[..., LocalHost]
) -> None:
    port = free_port()
    host = host_factory(mqtt_port=port, log_level="info")
    wait_until(lambda: subscribed(host), "subscribed")
    host.stop()
    assert host.process.returncode == 0, host.log()
    assert not port_open(("127.0.0.1", port))
    assert "Traceback" not in host.log()


def test_a_second_host_on_a_taken_port_serves_without_telemetry(
    admin: Api, broker_host: LocalHost, host_factory: Callable[..., LocalHost]
) -> None:
    """Two twins on one machine: the second cannot listen on the broker's port, says so,
    and serves everything else."""
    second = host_factory(mqtt_port=mqtt_port(broker_host))
    assert admin.http.get(second.api + "/health").status_code == 200
    wait_until(lambda: "device telemetry is off" in second.log(), "the second host's notice")
    assert "--mqtt-port" in second.log()


@pytest.mark.skipif(not port_open(MOSQUITTO), reason="no MQTT broker on 127.0.0.1:1883")
def test_what_arrives_while_the_host_is_down_is_stored_when_it_is_back(
    admin: Api, host_factory: Callable[..., LocalHost], mosquitto_session: str
) -> None:
    """The subscriber's persistent session: the broker keeps QoS 1 messages for it."""
    env = {"DT_MQTT_URL": "mqtt://{}:{}".format(*MOSQUITTO), "DT_MQTT_CLIENT_ID": mosquitto_session}
    first = host_factory(env=env, log_level="info")
    wait_until(lambda: subscribed(first), "the first host subscribed")
    first.stop()
    uid = f"ext-{uuid.uuid4().hex[:8]}"
    make_sensors(admin, uid)
    device = Device(MOSQUITTO[1], host=MOSQUITTO[0])
    try:
        device.publish(uid, sample(0, temperature=4.5))  # nobody is subscribed now
    finally:
        device.close()
    second = host_factory(env=env, log_level="info")
    wait_until(lambda: stored(admin, uid) == [(4.5, iso(T0))], "stored by the second host")
    assert subscribed(second)
