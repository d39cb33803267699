"""Device telemetry on the local host: MQTT in, the same core function as on Azure
(docs/api.md, Device telemetry; docs/architecture.md, Device telemetry).

- `EmbeddedBroker`: an amqtt broker on 127.0.0.1 (`--mqtt-port`, 1884). A device connects
  with its sensor's unique_identifier as user name and an API key as password: the key must
  be live, hold the `readings:write` scope and be allowed that sensor, or the CONNECT is
  refused. A device may publish to its own topic only, and subscribe to nothing.
- `Subscriber`: a paho-mqtt client subscribed to `dtbase/devices/+/readings` with QoS 1,
  on the embedded broker or on the one `DT_MQTT_URL` names (whose own authentication then
  applies). It keeps a persistent session and acknowledges a message only once its batch is
  committed, so a message is delivered at least once; the core stores nothing twice.
- `Batcher`: collects up to DT_TELEMETRY_BATCH_MESSAGES messages, or those that arrive
  within DT_TELEMETRY_BATCH_MILLISECONDS of a batch's first, and stores them with one call
  of `dtbase_core.telemetry.store_telemetry` in its own thread.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import queue
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session as MqttSession
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dtbase_core import telemetry
from dtbase_core.config import Settings
from dtbase_core.db import session_scope
from dtbase_core.timeutil import utcnow

log = logging.getLogger("dtbase.local.telemetry")

TOPIC_FILTER = "dtbase/devices/+/readings"
_TOPIC = re.compile(r"^dtbase/devices/([^/]+)/readings$")
SOURCE = "mqtt"
# The embedded broker's user name for the host's own subscriber (with a password made at
# each start); no device can use it.
INTERNAL_USER = "dtbase-local-telemetry"
RETRY_SECONDS = 1.0  # a batch the database refused is tried again after this
IDLE_GAP = 0.01  # seconds without a new message that close a batch early
# MQTT 5 (external brokers): messages the broker may send before their acknowledgements,
# and how long it keeps the subscriber's session (and QoS 1 messages) while it is away.
RECEIVE_MAXIMUM = 2000
SESSION_EXPIRY_SECONDS = 7 * 24 * 3600


def device_of(topic: str) -> str | None:
    """The sensor a topic belongs to: `dtbase/devices/<unique_identifier>/readings`."""
    match = _TOPIC.match(topic)
    return match.group(1) if match else None


# --- batching ----------------------------------------------------------------------------


@dataclass
class _Item:
    delivery: telemetry.Delivery
    ack: Callable[[], None]


Store = Callable[[list[telemetry.Delivery]], None]


def store(deliveries: list[telemetry.Delivery]) -> None:
    """One batch, in one transaction."""
    with session_scope() as session:
        summary = telemetry.store_telemetry(
            session, deliveries=deliveries, source=SOURCE, now=utcnow()
        )
    log.debug("telemetry over MQTT: %s", summary.as_dict())


class Batcher:
    """Collects messages into batches and stores each in its own thread; acknowledges a
    batch's messages once it is committed."""

    def __init__(self, *, max_messages: int, max_wait_seconds: float, store: Store = store):
        self.max_messages = max_messages
        self.max_wait = max_wait_seconds
        self._store = store
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telemetry-batcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, delivery: telemetry.Delivery, ack: Callable[[], None]) -> None:
        self._queue.put(_Item(delivery, ack))

    def stop(self) -> None:
        """Store what has arrived, then stop."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join()

    def _next_batch(self) -> list[_Item] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        # The batch waits for more no longer than max_wait after its first message, nor
        # longer than IDLE_GAP after its last: a broker sends only so many messages before
        # their acknowledgements (Mosquitto: 20), which come once the batch is stored.
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_messages:
            left = min(deadline - time.monotonic(), IDLE_GAP)
            try:
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # seen again by the loop, after this batch
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            while True:
                try:
                    self._store([item.delivery for item in batch])
                except Exception:
                    # Unacknowledged, the messages would come again only on a reconnect:
                    # try again here, unless the host is stopping (then the broker keeps them).
                    log.exception("telemetry batch of %d messages not stored", len(batch))
                    if self._stopping.wait(RETRY_SECONDS):
                        return
                    continue
                break
            for item in batch:
                item.ack()


# --- the subscriber ----------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:  # never the credentials
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class Subscriber:
    """Subscribes to every device's topic and hands each message to the batcher, to be
    acknowledged (PUBACK) once stored.

    With `mqtt5` (an external broker) it speaks MQTT 5 and announces a Receive Maximum of
    RECEIVE_MAXIMUM: over MQTT 3.1.1 a broker sends only so many messages unacknowledged
    (Mosquitto: 20), which would cap a batch at that. amqtt speaks 3.1.1 only and has no
    such cap."""

    def __init__(
        self, address: BrokerAddress, batcher: Batcher, *, client_id: str, mqtt5: bool = False
    ):
        self.address = address
        self.batcher = batcher
        self.mqtt5 = mqtt5
        self.subscribed = threading.Event()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if mqtt5 else False,
            protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
            manual_ack=True,
        )
        if address.username is not None:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set_context(ssl.create_default_context())
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client = client

    def start(self) -> None:
        if self.mqtt5:
            properties = Properties(PacketTypes.CONNECT)
            properties.ReceiveMaximum = RECEIVE_MAXIMUM
            properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
            self.client.connect_async(
                self.address.host,
                self.address.port,
                keepalive=30,
                clean_start=False,
                properties=properties,
            )
        else:
            self.client.connect_async(self.address.host, self.address.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _: Any, flags: Any, reason: Any, __: Any) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s refused the telemetry subscriber: %s", self.address, reason)
            return
        client.subscribe(TOPIC_FILTER, qos=1)

    def _on_subscribe(self, client: mqtt.Client, _: Any, mid: int, reasons: Any, __: Any) -> None:
        if any(reason.is_failure for reason in reasons):
            log.error("MQTT broker %s refused the subscription to %s", self.address, TOPIC_FILTER)
            return
        log.info("telemetry: subscribed to %s on %s", TOPIC_FILTER, self.address)
        self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, _: Any, flags: Any, reason: Any, __: Any) -> None:
        self.subscribed.clear()
        if reason.is_failure:
            log.warning("telemetry: disconnected from %s (%s); reconnecting", self.address, reason)

    def _on_message(self, client: mqtt.Client, _: Any, message: mqtt.MQTTMessage) -> None:
        mid, qos = message.mid, message.qos

        def ack() -> None:
            client.ack(mid, qos)

        device = device_of(message.topic)
        self.batcher.put(telemetry.Delivery(bytes(message.payload), device), ack)


# --- the embedded broker -----------------------------------------------------------------


def _check_device_key(unique_identifier: str, key: str, address: str | None) -> str | None:
    """None if `key` may write `unique_identifier`'s readings, else why not."""
    from dtbase_core import apikeys
    from dtbase_core.config import get_settings
    from dtbase_core.errors import DomainError

    try:
        with session_scope() as session:
            principal = apikeys.authenticate_key(
                session, key, now=utcnow(), address=address, settings=get_settings()
            )
            principal.require(apikeys.Scope.READINGS_WRITE)
            principal.check_sensors(session, [unique_identifier])
    except DomainError as exc:
        return exc.detail
    return None


class DeviceKeyAuth(BaseAuthPlugin):
    """CONNECT: user name = the sensor's unique_identifier, password = an API key with
    `readings:write` for that sensor; or the host's own subscriber."""

    @dataclass
    class Config:
        internal_password: str = ""

    async def authenticate(self, *, session: MqttSession) -> bool | None:
        username, password = session.username or "", session.password or ""
        if username == INTERNAL_USER:
            return bool(self.config.internal_password) and hmac.compare_digest(
                password.encode(), self.config.internal_password.encode()
            )
        if not username or not password:
            log.info("MQTT CONNECT refused: no user name or no API key")
            return False
        refused = await asyncio.to_thread(
            _check_device_key, username, password, session.remote_address
        )
        if refused is not None:
            log.info("MQTT CONNECT as %r refused: %s", username, refused)
            return False
        return True


class DeviceTopics(BaseTopicPlugin):
    """A device publishes to its own topic only and receives nothing; the host's subscriber
    subscribes to every device's topic."""

    async def topic_filtering(
        self,
        *,
        session: MqttSession | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        username = session.username if session else None
        if username == INTERNAL_USER:
            return action is Action.RECEIVE or (
                action is Action.SUBSCRIBE and topic == TOPIC_FILTER
            )
        if action is Action.PUBLISH and topic is not None:
            return device_of(topic) == username
        return False


class EmbeddedBroker:
    """amqtt on 127.0.0.1:`port`, with the devices' key check and topic rules."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.internal_password = secrets.token_urlsafe(32)
        self._broker: Broker | None = None

    async def start(self) -> None:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            # Only these plugins: amqtt's packet and event loggers would log CONNECT's
            # password (an API key) at debug level, and $SYS topics are not needed.
            "plugins": {
                f"{__name__}.DeviceKeyAuth": {"internal_password": self.internal_password},
                f"{__name__}.DeviceTopics": {},
            },
        }
        self._broker = Broker(config)
        try:
            await self._broker.start()
        except Exception as exc:
            raise RuntimeError(
                f"the MQTT broker cannot listen on {self.host}:{self.port} ({exc}): "
                "pass another --mqtt-port, or --mqtt-port 0 for none"
            ) from exc
        log.info("telemetry: MQTT broker listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress(
            self.host, self.port, username=INTERNAL_USER, password=self.internal_password
        )


# --- the whole of it, as the host starts it ----------------------------------------------


class TelemetryIngest:
    """The embedded broker (unless DT_MQTT_URL names one), the subscriber and the batcher;
    started and stopped by the local host's lifespan."""

    def __init__(self, settings: Settings, *, mqtt_port: int) -> None:
        self.broker = (
            None if settings.mqtt_url else EmbeddedBroker(mqtt_port) if mqtt_port else None
        )
        self.address = (
            BrokerAddress.parse(settings.mqtt_url)
            if settings.mqtt_url
            else self.broker.address
            if self.broker
            else None
        )
        self.batcher = Batcher(
            max_messages=settings.telemetry_batch_messages,
            max_wait_seconds=settings.telemetry_batch_milliseconds / 1000,
        )
        # The client id names a persistent session on the broker: it keeps what arrives
        # while the host is down (QoS 1).
        self.subscriber = (
            Subscriber(
                self.address,
                self.batcher,
                client_id=settings.mqtt_client_id,
                mqtt5=bool(settings.mqtt_url),
            )
            if self.address
            else None
        )

    @property
    def enabled(self) -> bool:
        return self.subscriber is not None

    async def start(self) -> None:
        if self.subscriber is None:
            return
        if self.broker is not None:
            try:
                await self.broker.start()
            except RuntimeError as exc:
                # The twin still serves everything else (a second one on this machine).
                log.error("device telemetry is off: %s", exc)
                self.subscriber = None
                return
        self.batcher.start()
        self.subscriber.start()

    async def stop(self) -> None:
        if self.subscriber is None:
            return
        # Store and acknowledge what arrived, then disconnect (what arrives meanwhile stays
        # unacknowledged: the broker's session delivers it again), then close the broker.
        await asyncio.to_thread(self.batcher.stop)
        await asyncio.to_thread(self.subscriber.stop)
        if self.broker is not None:
            await self.broker.stop()
