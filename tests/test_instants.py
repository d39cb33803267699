"""Timestamps parsed in bulk (dtbase_core/instants.py) give exactly the instants that
pydantic's element-by-element validation gives, and leave everything else to it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pydantic
import pytest

from dtbase_core import instants
from dtbase_core.schemas.common import UtcDatetime
from dtbase_core.schemas.sensors import ReadingsIn

ONE_BY_ONE = pydantic.TypeAdapter(list[UtcDatetime])


def one_by_one(values: list[object]) -> list[int] | None:
    try:
        return [instants.micros(t) for t in ONE_BY_ONE.validate_python(values)]
    except pydantic.ValidationError:
        return None


@pytest.mark.parametrize(
    "values",
    [
        ["2020-01-01T00:00:00Z", "2020-01-01T00:00:10Z"],
        ["2020-01-01T00:00:00+01:00", "2020-06-01T12:30:00-05:30"],
        ["2020-01-01 00:00:00.5", "2021-03-04 05:06:07.8"],
        ["2020-01-01T00:00:00.123456+14:00"],
        ["0001-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z"],
        ["1969-12-31T23:59:59.999999", "1900-02-28T23:00:00.000001"],
        ["2020-01-01T00:00:00+23:59"],
    ],
)
def test_the_common_shapes_are_read_in_bulk_exactly(values: list[str]) -> None:
    fast = instants.parse_iso(values)
    assert fast is not None
    assert fast.tolist() == one_by_one(values)


@pytest.mark.parametrize(
    "values",
    [
        ["0001-01-01T00:30:00+01:00"],  # before year 1 once in UTC
        ["9999-12-31T23:59:59-01:00"],  # after 9999
        ["0000-01-01T00:00:00Z"],
        ["2020-02-30T00:00:00Z"],
        ["2021-02-29T00:00:00Z"],
        ["2020-01-01T24:00:00Z"],
        ["2020-01-01T00:00:60Z"],
        ["2020-01-01T00:00:00+24:00"],
        ["2020-01-01T00:00:00+00:60"],
        ["2020-01-01T00:00:00Z", "2020-01-01T00:00:00"],  # two shapes
        ["2020-01-01T00:00:00Z", 5],  # a number (Unix seconds)
        ["2020-01-01T00:00:00Z", "2020-01-01T00:00:0xZ"],
        ["2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z "],
        ["\uff12020-01-01T00:00:00Z"],  # a fullwidth digit
        ["2020-01-01T00:00:00.1234567Z"],
        ["2020-01-01t00:00:00Z"],
        ["2020-01-01"],
    ],
)
def test_anything_else_is_left_to_the_element_by_element_path(values: list[object]) -> None:
    assert instants.parse_iso(values) is None


def test_random_instants_agree_with_pydantic_whenever_read_in_bulk() -> None:
    rng = random.Random(20261129)
    bulk = 0
    for _ in range(4000):
        zone = rng.choice(["", "Z", "+{:02d}:{:02d}", "-{:02d}:{:02d}"])
        text = "{:04d}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}".format(
            rng.randint(0, 9999),
            rng.randint(0, 13),
            rng.randint(0, 32),
            rng.choice("T "),
            rng.randint(0, 24),
            rng.randint(0, 60),
            rng.randint(0, 60),
            rng.choice(["", "." + str(rng.randint(0, 999999))[: rng.randint(1, 6)]]),
            zone.format(rng.randint(0, 25), rng.randint(0, 61)),
        )
        fast = instants.parse_iso([text])
        if fast is not None:
            bulk += 1
            assert fast.tolist() == one_by_one([text]), text
    assert bulk > 1000  # most of them were valid and read in bulk


def test_a_readings_body_gives_the_same_array_either_way() -> None:
    start = datetime(2024, 3, 31, 0, 59, 59, 999999, tzinfo=UTC)
    stamps = [start + timedelta(microseconds=7 * i) for i in range(1000)]
    iso = [t.isoformat() for t in stamps]
    body = {"measure_name": "m", "unique_identifier": "s", "readings": [1.0] * 1000}
    in_bulk = ReadingsIn.model_validate({**body, "timestamps": iso}).timestamps
    mixed = ReadingsIn.model_validate({**body, "timestamps": [*iso[:-1], stamps[-1]]}).timestamps
    assert in_bulk.dtype == np.int64
    assert in_bulk.tolist() == mixed.tolist() == [instants.micros(t) for t in stamps]


def test_bad_elements_are_named_by_index() -> None:
    body = {"measure_name": "m", "unique_identifier": "s", "readings": [1.0, 2.0, 3.0]}
    stamps = ["2020-01-01T00:00:00Z", "2020-02-30T00:00:00Z", "2020-01-01T00:00:02Z"]
    with pytest.raises(pydantic.ValidationError) as caught:
        ReadingsIn.model_validate({**body, "timestamps": stamps})
    assert [e["loc"] for e in caught.value.errors()] == [("timestamps", 1)]
