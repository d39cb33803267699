"""PostgreSQL's binary COPY format, built from numpy arrays in one pass.

A COPY of prepared binary rows is the fastest way into PostgreSQL: the server neither
parses text nor plans a statement per batch. For fixed-width columns (integers, float8,
bool, timestamptz) every row has the same layout, so the whole block is one numpy
structured array: a field count, then each field's length and big-endian value
(https://www.postgresql.org/docs/current/sql-copy.html, Binary Format).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from dtbase_core.instants import micros
from dtbase_core.orm.base import Datatype

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)

# timestamptz travels as int64 microseconds since 2000-01-01T00:00:00Z.
PG_EPOCH_MICROS = micros(datetime(2000, 1, 1, tzinfo=UTC))

# The wire type of each fixed-width column kind.
WIRE: dict[str, str] = {
    "int4": ">i4",
    "int8": ">i8",
    "float8": ">f8",
    "bool": "u1",
    "timestamptz": ">i8",
}
VALUE_WIRE: dict[Datatype, str] = {
    Datatype.FLOAT: "float8",
    Datatype.INTEGER: "int8",
    Datatype.BOOLEAN: "bool",
}


def rows(columns: Sequence[tuple[str, npt.ArrayLike]], count: int) -> bytes:
    """`count` rows of a COPY ... (FORMAT binary) stream, which starts with HEADER and ends
    with TRAILER: `columns` are (wire kind, values), each values either an array of
    `count` elements or one scalar for every row. timestamptz values are microseconds
    since 1970."""
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for i, (kind, _) in enumerate(columns):
        fields += [(f"len{i}", ">i4"), (f"v{i}", WIRE[kind])]
    out = np.empty(count, np.dtype(fields))
    out["count"] = len(columns)
    for i, (kind, values) in enumerate(columns):
        out[f"len{i}"] = np.dtype(WIRE[kind]).itemsize
        if kind == "timestamptz":
            values = np.asarray(values, np.int64) - PG_EPOCH_MICROS
        out[f"v{i}"] = values
    return out.tobytes()
