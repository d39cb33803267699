"""Device telemetry on Azure: an Event Hubs-triggered function that receives what devices
send to IoT Hub, and the dead-letter listing (docs/api.md, Device telemetry).

The trigger takes many events per call (`cardinality=many`) as raw bytes, reads each
event's device id from IoT Hub's system properties (`iothub-connection-device-id`) and
hands the whole batch to `dtbase_core.telemetry.store_telemetry` in one transaction.

It reads with its own consumer group (DT_TELEMETRY_CONSUMER_GROUP) through an
identity-based connection (DT_TELEMETRY_CONNECTION__fullyQualifiedNamespace, with the app's
managed identity). IoT Hub's built-in Event Hubs-compatible endpoint takes shared access
keys only, so the hub routes device messages to an event hub of ours
(DT_TELEMETRY_EVENT_HUB), keeping their system properties (infra/dtbase_infra/telemetry.py).
The Event Hubs trigger checkpoints a batch whether its call succeeded or not, unless a
retry policy holds it: with this one (exponential backoff from 5 s to 15 min, without end)
a batch the database refuses is tried again, in order, until it is stored; it stores
nothing twice.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from dtbase_core import telemetry
from dtbase_core.db import session_scope
from dtbase_core.roles import Role
from dtbase_core.schemas.telemetry import DeadLetterOut, DeadLettersIn
from dtbase_core.timeutil import utcnow
from function_app.http import Call, endpoint

log = logging.getLogger(__name__)

bp = func.Blueprint()

# IoT Hub's system property naming the device that sent a message, as the Python library
# gives it (without its `iothub-` prefix).
DEVICE_ID_PROPERTY = "connection-device-id"
SOURCE = "iothub"


def device_id(event: func.EventHubEvent) -> str | None:
    properties = event.iothub_metadata or {}
    found = properties.get(DEVICE_ID_PROPERTY)
    return str(found) if found else None


@bp.function_name("telemetry_iothub")
@bp.retry(
    strategy="exponential_backoff",
    max_retry_count="-1",
    minimum_interval="00:00:05",
    maximum_interval="00:15:00",
)
@bp.event_hub_message_trigger(
    arg_name="events",
    connection="DT_TELEMETRY_CONNECTION",
    event_hub_name="%DT_TELEMETRY_EVENT_HUB%",
    consumer_group="%DT_TELEMETRY_CONSUMER_GROUP%",
    cardinality=func.Cardinality.MANY,
    data_type=func.DataType.BINARY,
)
def telemetry_iothub(events: list[func.EventHubEvent]) -> None:
    """Store a batch of device messages from IoT Hub."""
    deliveries = [telemetry.Delivery(event.get_body(), device_id(event)) for event in events]
    with session_scope() as session:
        summary = telemetry.store_telemetry(
            session, deliveries=deliveries, source=SOURCE, now=utcnow()
        )
    log.info("telemetry from IoT Hub: %s", summary.as_dict())


@endpoint(
    bp,
    "telemetry/list-dead-letters",
    body=DeadLettersIn,
    body_required=False,
    response=list[DeadLetterOut],
    role=Role.EDITOR,
    audit=False,  # a read (closed to viewers: payloads may hold what devices send)
)
def list_dead_letters(call: Call[DeadLettersIn]) -> Any:
    """Telemetry messages that could not be stored, with their reasons: newest first, at
    most 1,000."""
    return telemetry.list_dead_letters(call.session, since=call.body.since)
