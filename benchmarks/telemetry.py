"""Benchmark: device telemetry over MQTT, from publish to readable through the API.

    python benchmarks/telemetry.py                       # the embedded broker, devices' API keys
    python benchmarks/telemetry.py --broker mqtt://127.0.0.1:1883   # an external broker

Starts its own `dtbase-local` on a fresh database (embedded PostgreSQL, or the server that
DT_TEST_DATABASE_URL names), with its embedded MQTT broker (each device signs in with an API
key of its own) or subscribed to `--broker`. Then:

- steady: `--devices` simulated devices (100), each its own MQTT connection, publish one
  sample a second for `--seconds` (60), QoS 1. One poller reads `/sensor/latest-readings`
  every `--poll-ms` (50): the delay of a reading is from just before its publish to the
  first poll that finds it (so it includes up to one poll's lag). Every reading is then read
  back through `/sensor/sensor-readings`. Prints the median, p95, p99 and the largest.
- burst: `--burst` readings (100,000) as fast as the devices can publish them, in messages
  of `--per-message` readings (100) in the insert-sensor-readings format; the rate is the
  readings over the time from the first publish until the last is readable.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import ADMIN_PASSWORD, Api, TestDatabase, free_port, start_host

BURST_START = datetime(2020, 1, 1, tzinfo=UTC)
BURST_MEASURE = "pressure"  # the burst's own series, apart from the steady phase's


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


class Device:
    def __init__(self, uid: str, host: str, port: int, key: str | None) -> None:
        self.uid = uid
        self.topic = f"dtbase/devices/{uid}/readings"
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{uid}", protocol=mqtt.MQTTv311
        )
        self.client.max_inflight_messages_set(100)
        if key is not None:
            self.client.username_pw_set(uid, key)
        connected = threading.Event()
        self.client.on_connect = lambda *a: connected.set()
        self.client.connect(host, port, keepalive=60)
        self.client.loop_start()
        if not connected.wait(30):
            raise RuntimeError(f"{uid}: no CONNACK")

    def publish(self, body: Any) -> mqtt.MQTTMessageInfo:
        return self.client.publish(self.topic, orjson.dumps(body), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Reader:
    """Reads a device's readings back through sensor-readings."""

    def __init__(self, api: Api) -> None:
        self.http = httpx.Client(base_url=api.base, timeout=60, headers=api._headers(None))

    def stamps(
        self, uid: str, dt_from: datetime, dt_to: datetime, measure: str = "temperature"
    ) -> list[str]:
        reply = self.http.post(
            "/sensor/sensor-readings",
            json={
                "measure_name": measure,
                "unique_identifier": uid,
                "dt_from": iso(dt_from),
                "dt_to": iso(dt_to),
            },
        )
        reply.raise_for_status()
        return [row["timestamp"] for row in reply.json()]


def steady(devices: list[Device], api: Api, seconds: int, poll_seconds: float) -> list[float]:
    """Delays (s) of every reading from just before its publish to the first poll that
    finds it readable. One request polls all devices: `latest-readings` of the sensor type
    (the same committed rows `sensor-readings` returns; a device's messages are stored in
    order, so its newest readable reading tells which of its readings are readable). At the
    end every reading is read back through `sensor-readings`."""
    pending: dict[str, dict[datetime, float]] = {d.uid: {} for d in devices}
    lock = threading.Lock()
    delays: list[float] = []
    publishing = threading.Event()
    publishing.set()
    first = datetime.now(UTC)

    def publish_all() -> None:
        start = time.monotonic()
        for tick in range(seconds):
            # Devices spread over the second, as independent devices would be.
            for index, device in enumerate(devices):
                due = start + tick + index / len(devices)
                time.sleep(max(0.0, due - time.monotonic()))
                instant = datetime.now(UTC)
                with lock:
                    pending[device.uid][instant] = time.monotonic()
                body = {"timestamp": iso(instant), "values": {"temperature": 20.0 + tick}}
                device.publish(body)
        publishing.clear()

    http = httpx.Client(base_url=api.base, timeout=60, headers=api._headers(None))
    publisher = threading.Thread(target=publish_all)
    publisher.start()
    deadline = None
    while publishing.is_set() or any(pending.values()):
        if not publishing.is_set():
            deadline = deadline or time.monotonic() + 60
            if time.monotonic() > deadline:
                break
        reply = http.post("/sensor/latest-readings", json={"type_name": "bench"})
        reply.raise_for_status()
        seen = time.monotonic()
        newest = {
            row["unique_identifier"]: datetime.fromisoformat(row["timestamp"])
            for row in reply.json()
            if row["measure_name"] == "temperature"
        }
        with lock:
            for uid, waiting in pending.items():
                if uid in newest:
                    for instant in [i for i in waiting if i <= newest[uid]]:
                        delays.append(seen - waiting.pop(instant))
        time.sleep(poll_seconds)
    publisher.join()
    reader = Reader(api)
    readable = sum(len(reader.stamps(d.uid, first, datetime.now(UTC))) for d in devices)
    assert readable == len(devices) * seconds, (readable, len(devices) * seconds)
    return delays


def burst(devices: list[Device], api: Api, readings: int, per_message: int) -> tuple[float, int]:
    """Seconds from the first publish until every reading is readable, and messages sent."""
    per_device = readings // len(devices)
    messages = per_device // per_message
    bodies = {
        device.uid: [
            {
                "measure_name": BURST_MEASURE,
                "readings": [float(i % 100) for i in range(m * per_message, (m + 1) * per_message)],
                "timestamps": [
                    iso(BURST_START + timedelta(seconds=i))
                    for i in range(m * per_message, (m + 1) * per_message)
                ],
            }
            for m in range(messages)
        ]
        for device in devices
    }
    last = BURST_START + timedelta(seconds=messages * per_message - 1)
    reader = Reader(api)
    started = time.monotonic()
    infos = [d.publish(body) for d in devices for body in bodies[d.uid]]
    for info in infos:
        info.wait_for_publish(300)
    acked = time.monotonic()
    # Each device's messages are stored in order: its last reading comes last. One request
    # for all devices (as in steady); the counts are checked through sensor-readings after.
    while True:
        reply = reader.http.post("/sensor/latest-readings", json={"type_name": "bench"})
        reply.raise_for_status()
        newest = {
            row["unique_identifier"]: datetime.fromisoformat(row["timestamp"])
            for row in reply.json()
            if row["measure_name"] == BURST_MEASURE
        }
        if all(newest.get(d.uid) == last for d in devices):
            break
        time.sleep(0.02)
    drained = time.monotonic() - started
    total = sum(len(reader.stamps(d.uid, BURST_START, last, BURST_MEASURE)) for d in devices)
    assert total == messages * per_message * len(devices), total
    print(f"  all PUBACKs after {acked - started:.2f} s")
    return drained, len(infos)


def erase_session(host: str, port: int, client_id: str) -> None:
    """A clean-session CONNECT with the subscriber's id: the broker forgets its session."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect(host, port)
    client.loop_start()
    connected.wait(10)
    client.disconnect()
    client.loop_stop()


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--burst", type=int, default=100_000)
    parser.add_argument("--per-message", type=int, default=100)
    parser.add_argument("--poll-ms", type=float, default=50, help="steady: time between polls")
    parser.add_argument("--broker", help="an external broker's mqtt:// URL (DT_MQTT_URL)")
    parser.add_argument("--skip-steady", action="store_true")
    args = parser.parse_args()
    database = TestDatabase()
    run = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="dtbase-telemetry-") as tmp:
        Path(tmp).chmod(0o755)
        port = 0 if args.broker else free_port()
        broker = urlsplit(args.broker) if args.broker else None
        mqtt_host = (broker.hostname if broker else None) or "127.0.0.1"
        mqtt_port = (broker.port or 1883) if broker else port
        env = (
            {"DT_MQTT_URL": args.broker, "DT_MQTT_CLIENT_ID": f"bench-{run}"} if args.broker else {}
        )
        host = start_host(database.url, Path(tmp) / "host", env, mqtt_port=port)
        devices: list[Device] = []
        try:
            api = Api(host.api, host.admin_email, ADMIN_PASSWORD)
            measures = [
                {"name": "temperature", "units": "degC", "datatype": "float"},
                {"name": BURST_MEASURE, "units": "hPa", "datatype": "float"},
            ]
            api.ok("/sensor/insert-sensor-type", {"name": "bench", "measures": measures}, 201)
            uids = [f"bench-{run}-{i:03d}" for i in range(args.devices)]
            for uid in uids:
                api.ok(
                    "/sensor/insert-sensor", {"type_name": "bench", "unique_identifier": uid}, 201
                )
            keys: dict[str, str | None] = dict.fromkeys(uids)
            if not args.broker:
                for uid in uids:
                    keys[uid] = api.ok(
                        "/apikey/create-api-key",
                        {"name": uid, "scopes": ["readings:write"], "sensors": [uid]},
                        201,
                    )["key"]
            with ThreadPoolExecutor(8) as pool:
                devices = list(
                    pool.map(lambda uid: Device(uid, mqtt_host, mqtt_port, keys[uid]), uids)
                )
            where = args.broker or f"embedded broker on 127.0.0.1:{port}"
            print(f"{database.kind}; {where}; {args.devices} devices")
            if not args.skip_steady:
                delays = steady(devices, api, args.seconds, args.poll_ms / 1000)
                expected = args.devices * args.seconds
                print(
                    f"steady: {len(delays):,} of {expected:,} readings read back; delay "
                    f"median {statistics.median(delays) * 1000:.0f} ms, "
                    f"p95 {percentile(delays, 95) * 1000:.0f} ms, "
                    f"p99 {percentile(delays, 99) * 1000:.0f} ms, "
                    f"max {max(delays) * 1000:.0f} ms"
                )
            took, messages = burst(devices, api, args.burst, args.per_message)
            print(
                f"burst: {args.burst:,} readings in {messages:,} messages of {args.per_message} "
                f"drained in {took:.2f} s: {args.burst / took:,.0f} readings/s "
                f"({messages / took:,.0f} messages/s)"
            )
        finally:
            for device in devices:
                device.close()
            host.stop()
            if args.broker:  # leave no session behind on a shared broker
                erase_session(mqtt_host, mqtt_port, env["DT_MQTT_CLIENT_ID"])
            database.close()


if __name__ == "__main__":
    main()
