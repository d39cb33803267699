"""Device telemetry: one function stores a batch of messages, whichever transport brought
them (IoT Hub through an Event Hubs-triggered function on Azure, MQTT locally; docs/api.md,
Device telemetry; docs/architecture.md, Device telemetry).

A message is JSON: the body of insert-sensor-readings, a sample `{"unique_identifier",
"timestamp", "values": {measure: value}}`, or a list of either. The transport's device id
(IoT Hub's `iothub-connection-device-id`, the MQTT topic's sensor) stands for a missing
`unique_identifier`, and a device writes only its own sensor.

Every message is checked first, on its own: one that cannot be stored (not JSON, too big,
an unknown sensor or measure, a value of the wrong type, another device's sensor) goes to
the dead-letter table with its reason and never holds up the others. The good ones are
then written together through the readings' bulk insert (readings.insert_readings_bulk,
one statement per series) with `on_conflict="ignore"`: delivery is at least once, and a
redelivered message stores nothing twice (nor does a redelivered poison message, whose
dead letter is keyed by a digest).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pydantic
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Session

from dtbase_core import readings
from dtbase_core.errors import DomainError, Invalid
from dtbase_core.instants import Micros, as_micros
from dtbase_core.orm import (
    Datatype,
    Sensor,
    SensorMeasure,
    SensorType,
    SensorTypeMeasure,
    TelemetryDeadLetter,
)
from dtbase_core.schemas.telemetry import TelemetrySample, TelemetrySeries
from dtbase_core.values import check_values

log = logging.getLogger(__name__)

# IoT Hub's own limit for a device-to-cloud message; MQTT brokers allow more.
MAX_MESSAGE_BYTES = 256 * 1024
# What a dead letter keeps of its message: enough to see what was wrong with it.
MAX_KEPT_PAYLOAD = 4096
MAX_LISTED = 1000  # dead letters one listing returns, newest first


@dataclass(frozen=True)
class Delivery:
    """One message as a transport delivered it."""

    payload: bytes
    device_id: str | None = None


@dataclass
class _Series:
    unique_identifier: str
    measure_name: str
    readings: list[Any]
    timestamps: Micros
    units: str | None = None  # when the message names them


@dataclass
class _Target:
    measure_name: str
    type_name: str
    units: str | None
    datatype: Datatype | None  # None: the type has no such measure
    ambiguous: bool = False


@dataclass
class BatchSummary:
    messages: int = 0
    stored: int = 0  # messages whose readings were written (or were there already)
    inserted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "messages": self.messages,
            "stored": self.stored,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_lettered,
        }


class Rejected(Exception):
    """A message cannot be stored; the reason goes to its dead letter."""


def store_telemetry(
    session: Session, *, deliveries: Sequence[Delivery], source: str, now: datetime
) -> BatchSummary:
    """Store a batch: the good messages' readings in one bulk write, the others as dead
    letters, in the session's transaction."""
    summary = BatchSummary(messages=len(deliveries))
    parsed: list[tuple[Delivery, list[_Series] | str]] = []
    for delivery in deliveries:
        try:
            parsed.append((delivery, _parse(delivery)))
        except Rejected as exc:
            parsed.append((delivery, str(exc)))
    sensors = _targets(
        session,
        {s.unique_identifier for _, r in parsed if not isinstance(r, str) for s in r},
    )
    good: list[tuple[Delivery, list[_Series]]] = []
    dead: list[tuple[Delivery, str]] = []
    for delivery, result in parsed:
        if isinstance(result, str):
            dead.append((delivery, result))
            continue
        try:
            good.append((delivery, [_checked(one, sensors) for one in result]))
        except (Rejected, DomainError) as exc:
            dead.append((delivery, _reason(exc)))
    if good:
        dead.extend(_write(session, good, summary))
    if dead:
        _dead_letter(session, dead, source=source, now=now)
    summary.dead_lettered = len(dead)
    summary.reasons = [reason for _, reason in dead]
    return summary


def _reason(exc: Exception) -> str:
    """An error's message, naming the field where the message does not already."""
    if isinstance(exc, Invalid):
        where = ".".join(str(part) for part in exc.loc[1:])
        if where and not exc.detail.startswith(where):
            return f"{where}: {exc.detail}"
    return exc.detail if isinstance(exc, DomainError) else str(exc)


# --- one message -------------------------------------------------------------------------


def _parse(delivery: Delivery) -> list[_Series]:
    """The message's series, each with its sensor; Rejected with the reason."""
    size = len(delivery.payload)
    if size > MAX_MESSAGE_BYTES:
        raise Rejected(f"message of {size} bytes is over the limit of {MAX_MESSAGE_BYTES}")
    try:
        body = orjson.loads(delivery.payload)
    except orjson.JSONDecodeError as exc:
        raise Rejected(f"not JSON: {exc}") from None
    items = body if isinstance(body, list) else [body]
    if not items:
        raise Rejected("an empty list: no readings")
    series: list[_Series] = []
    for index, item in enumerate(items):
        where = f"[{index}]" if isinstance(body, list) else ""
        if not isinstance(item, dict):
            raise Rejected(f"{where or 'message'}: not an object")
        try:
            if "values" in item:
                series.extend(_sample(TelemetrySample.model_validate(item), delivery))
            else:
                one = TelemetrySeries.model_validate(item)
                uid = _sensor(one.unique_identifier, delivery)
                if len(one.timestamps) != len(one.readings):
                    raise Rejected(
                        f"{where}{' ' if where else ''}timestamps and readings must have the "
                        f"same length ({len(one.timestamps)} != {len(one.readings)})"
                    )
                series.append(
                    _Series(uid, one.measure_name, one.readings, one.timestamps, one.units)
                )
        except pydantic.ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            loc = ".".join(str(part) for part in error["loc"])
            raise Rejected(f"{where}{'.' if where and loc else ''}{loc}: {error['msg']}") from None
        except Invalid as exc:
            raise Rejected(f"{where}{' ' if where else ''}{_reason(exc)}") from None
    return series


def _sample(sample: TelemetrySample, delivery: Delivery) -> list[_Series]:
    uid = _sensor(sample.unique_identifier, delivery)
    us = as_micros([sample.timestamp])
    return [_Series(uid, name, [value], us) for name, value in sample.values.items()]


def _sensor(unique_identifier: str | None, delivery: Delivery) -> str:
    """The sensor a message writes: its own, or the device's; a device writes only its own."""
    device = delivery.device_id
    if unique_identifier is None:
        if device is None:
            raise Rejected("unique_identifier: missing, and the transport named no device")
        return device
    if device is not None and unique_identifier != device:
        raise Rejected(f"device '{device}' may not write sensor '{unique_identifier}'")
    return unique_identifier


# --- checking against the sensors ----------------------------------------------------------


def _targets(session: Session, uids: set[str]) -> dict[str, dict[str, _Target] | str]:
    """Each sensor's measures by name (or its type's name, for the message naming a
    measure it lacks), in one query for the whole batch."""
    if not uids:
        return {}
    rows = session.execute(
        sa.select(
            Sensor.unique_identifier,
            SensorType.name.label("type_name"),
            SensorMeasure.name,
            SensorMeasure.units,
            SensorMeasure.datatype,
        )
        .join(SensorType, SensorType.id == Sensor.type_id)
        .outerjoin(SensorTypeMeasure, SensorTypeMeasure.type_id == Sensor.type_id)
        .outerjoin(SensorMeasure, SensorMeasure.id == SensorTypeMeasure.measure_id)
        .where(Sensor.unique_identifier.in_(sorted(uids)))
    ).all()
    found: dict[str, dict[str, _Target] | str] = {}
    for row in rows:
        measures = found.setdefault(row.unique_identifier, {})
        assert isinstance(measures, dict)
        measures.setdefault("", _Target("", row.type_name, None, None))
        if row.name is None:
            continue
        if row.name in measures:
            measures[row.name].ambiguous = True
        else:
            measures[row.name] = _Target(row.name, row.type_name, row.units, row.datatype)
    return found


def _checked(one: _Series, sensors: dict[str, dict[str, _Target] | str]) -> _Series:
    measures = sensors.get(one.unique_identifier)
    if not isinstance(measures, dict):
        raise Rejected(f"Sensor '{one.unique_identifier}' does not exist")
    target = measures.get(one.measure_name)
    if target is None:
        type_name = measures[""].type_name
        raise Rejected(
            f"Measure '{one.measure_name}' is not a measure of sensor type '{type_name}'"
        )
    if target.ambiguous:
        raise Rejected(
            f"Sensor type '{target.type_name}' has several measures called '{one.measure_name}'"
        )
    if one.units is not None and one.units != target.units:
        raise Rejected(
            f"units: '{one.units}' are not the units of measure '{one.measure_name}' "
            f"({target.units!r})"
        )
    assert target.datatype is not None
    one.readings = check_values(
        one.readings, target.datatype, "readings", max_float=readings.MAX_FLOAT_READING
    )
    return one


# --- writing -------------------------------------------------------------------------------


def _merged(messages: list[tuple[Delivery, list[_Series]]]) -> list[dict[str, Any]]:
    """One series per (sensor, measure) for the whole batch."""
    merged: dict[tuple[str, str], tuple[list[Any], list[Micros]]] = {}
    for _, series in messages:
        for one in series:
            values, stamps = merged.setdefault((one.unique_identifier, one.measure_name), ([], []))
            values.extend(one.readings)
            stamps.append(one.timestamps)
    return [
        {
            "unique_identifier": uid,
            "measure_name": name,
            "readings": values,
            "timestamps": np.concatenate(stamps) if len(stamps) > 1 else stamps[0],
        }
        for (uid, name), (values, stamps) in merged.items()
    ]


def _write(
    session: Session, messages: list[tuple[Delivery, list[_Series]]], summary: BatchSummary
) -> list[tuple[Delivery, str]]:
    """All checked messages in one bulk write. Should it fail all the same (a sensor
    deleted since the check), each message is written on its own and the failures are
    dead-lettered: the rest of the batch still goes in."""
    try:
        with session.begin_nested():
            counts = readings.insert_readings_bulk(session, series=_merged(messages))
    except DomainError:
        log.warning("telemetry: the batch's bulk write failed; writing message by message")
    else:
        summary.stored += len(messages)
        summary.inserted += counts["inserted"]
        summary.duplicates += counts["duplicates"]
        return []
    dead: list[tuple[Delivery, str]] = []
    for delivery, series in messages:
        try:
            with session.begin_nested():
                counts = readings.insert_readings_bulk(
                    session, series=_merged([(delivery, series)])
                )
        except DomainError as exc:
            dead.append((delivery, _reason(exc)))
        else:
            summary.stored += 1
            summary.inserted += counts["inserted"]
            summary.duplicates += counts["duplicates"]
    return dead


def _digest(source: str, delivery: Delivery) -> bytes:
    sha = hashlib.sha256()
    for part in (source.encode(), (delivery.device_id or "").encode(), delivery.payload):
        sha.update(len(part).to_bytes(8, "big"))
        sha.update(part)
    return sha.digest()


def _dead_letter(
    session: Session, dead: list[tuple[Delivery, str]], *, source: str, now: datetime
) -> None:
    rows = [
        {
            "received_at": now,
            "source": source,
            "device_id": delivery.device_id,
            "payload": delivery.payload[:MAX_KEPT_PAYLOAD]
            .decode("utf-8", "replace")
            .replace("\x00", "\ufffd"),
            "payload_bytes": len(delivery.payload),
            "reason": reason[:1000],
            "digest": _digest(source, delivery),
        }
        for delivery, reason in dead
    ]
    session.execute(
        pg.insert(TelemetryDeadLetter)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["digest"])
    )
    for delivery, reason in dead:
        log.warning(
            "telemetry from %s dead-lettered: %s", delivery.device_id or "(no device)", reason
        )


def list_dead_letters(session: Session, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """Dead letters, newest first, at most MAX_LISTED."""
    query = sa.select(TelemetryDeadLetter).order_by(
        TelemetryDeadLetter.received_at.desc(), TelemetryDeadLetter.id.desc()
    )
    if since is not None:
        query = query.where(TelemetryDeadLetter.received_at >= since)
    return [
        {
            "id": row.id,
            "received_at": row.received_at,
            "source": row.source,
            "device_id": row.device_id,
            "payload": row.payload,
            "payload_bytes": row.payload_bytes,
            "reason": row.reason,
        }
        for row in session.scalars(query.limit(MAX_LISTED))
    ]
