"""The reply of /sensor/sensor-readings, which PostgreSQL writes for numbers and booleans
(readings.sensor_readings_json), is byte for byte the API encoder's JSON of the readings as
values, for every datatype."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy.orm import Session

from dtbase_core import readings
from dtbase_core.orm.base import Datatype
from dtbase_core.timeutil import JSON_OPTIONS
from tests.support import Api

FIRST = datetime(1, 1, 1, tzinfo=UTC)
LAST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
START = datetime(2021, 6, 1, tzinfo=UTC)
# Instants with and without microseconds (trailing zeros too), and far years.
INSTANTS = [
    FIRST,
    datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(999, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
    datetime(1000, 1, 1, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    START + timedelta(microseconds=10),
    START + timedelta(seconds=1, microseconds=120000),
    START + timedelta(seconds=2, microseconds=123456),
    LAST,
]
FLOATS = [
    0.1, 1e-7, 1e22, 123456789.123, -0.0, 0.0, 1.0, -1.0, 0.5, 1e-4, 1.5e-4, 1e-5, 1.2e-5,
    9.99e-6, 1e-6, 5e-324, 2.2250738585072014e-308, -1e-300, 1e14, 1e15, 1.5e15,
    1234567890123456.8, 9007199254740993.0, 9999999999999998.0, 1e16, 1.2e17, 2.0**63,
    1e21, 1e100, 1e290, -1e290, 123456789012345.6, 0.30000000000000004, 100.0, 3.14159,
]  # fmt: skip
INTEGERS = [0, 1, -1, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63), 10**15, 123]
STRINGS = [
    "",
    "plain",
    'quote " and backslash \\',
    "controls \x01\x08\t\n\x0b\x0c\r\x1b\x1f and \x7f",
    "unicode é ü 中文 😀 \u2028\u2029 \ufeff",
    "</script> & / ' <",
    '{"value":1,"timestamp":"2020-01-01T00:00:00.000000Z"}',
    "ends in .000000Z",
]


@pytest.fixture
def session(sensor_per_datatype: Session) -> Session:
    return sensor_per_datatype


def both(session: Session, datatype: Datatype) -> tuple[bytes, bytes]:
    """PostgreSQL's reply, and the encoder's JSON of the readings as values."""
    query = {
        "measure_name": datatype.value,
        "unique_identifier": datatype.value,
        "dt_from": FIRST,
        "dt_to": LAST,
    }
    values = readings.sensor_readings(session, **query)
    return (
        readings.sensor_readings_json(session, **query),
        orjson.dumps(values, option=JSON_OPTIONS),
    )


def store(session: Session, datatype: Datatype, values: list[Any]) -> None:
    instants = [*INSTANTS, *(START + timedelta(minutes=i) for i in range(len(values)))]
    readings.insert_sensor_readings(
        session,
        measure_name=datatype.value,
        unique_identifier=datatype.value,
        readings=[values[i % len(values)] for i in range(len(instants))],
        timestamps=instants,
    )


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        (Datatype.FLOAT, FLOATS),
        (Datatype.INTEGER, INTEGERS),
        (Datatype.BOOLEAN, [True, False]),
        (Datatype.STRING, STRINGS),
    ],
)
def test_the_reply_is_the_encoders_json_of_the_values(
    session: Session, datatype: Datatype, values: list[Any]
) -> None:
    store(session, datatype, values)
    written, encoded = both(session, datatype)
    assert written == encoded
    assert len(orjson.loads(written)) == len(INSTANTS) + len(values)


def test_random_floats_of_every_magnitude_are_written_as_the_encoder_writes_them(
    session: Session,
) -> None:
    rng = random.Random(7)
    # Any bit pattern (within the accepted range), and decimal-looking values near every
    # power of ten where the two forms change.
    bits = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(3000)]
    decimal = [
        float(
            f"{rng.choice('-+')}{rng.randint(1, 10 ** rng.randint(1, 17))}e{e - rng.randint(0, 17)}"
        )
        for e in range(-20, 40)
        for _ in range(40)
    ]
    values = [v for v in bits + decimal if abs(v) <= readings.MAX_FLOAT_READING]
    store(session, Datatype.FLOAT, values)
    written, encoded = both(session, Datatype.FLOAT)
    assert written == encoded


def test_no_readings_nor_measure(session: Session) -> None:
    assert both(session, Datatype.FLOAT) == (b"[]", b"[]")


def test_the_route_sends_those_bytes_with_the_security_headers(admin: Api) -> None:
    measure = {"name": "level", "units": "m", "datatype": "float"}
    admin.ok("/sensor/insert-sensor-type", {"name": "gauge", "measures": [measure]}, 201)
    admin.ok("/sensor/insert-sensor", {"type_name": "gauge", "unique_identifier": "g-1"}, 201)
    values = [0.1, 1e22, 2.0**60, -0.0, 1.0, 1.5e-6]
    instants = [START + timedelta(seconds=s, microseconds=s * 250000) for s in range(6)]
    series = {"measure_name": "level", "unique_identifier": "g-1"}
    written = {"readings": values, "timestamps": [t.isoformat() for t in instants]}
    admin.ok("/sensor/insert-sensor-readings", {**series, **written}, 201)
    reply = admin.post(
        "/sensor/sensor-readings",
        {**series, "dt_from": START.isoformat(), "dt_to": LAST.isoformat()},
    )
    assert reply.status_code == 200
    expected = [{"value": v, "timestamp": t} for v, t in zip(values, instants, strict=True)]
    assert reply.content == orjson.dumps(expected, option=JSON_OPTIONS)
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
