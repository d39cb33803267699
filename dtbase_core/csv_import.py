"""Readings imported from CSV (docs/api.md, CSV import).

A file comes in one request (`csv`), or, when it is larger than a request may be (Azure
Functions takes at most 100 MB, and hands the whole body to the function), staged in parts
of at most 8 MB (`stage_part`) and imported by its upload id. Either way it is read
incrementally: the csv module over an iterator of lines, the staged parts fetched one at a
time, the rows gathered into batches of `BATCH_ROWS`; no more than a part and a batch is
ever held.

Each batch goes through the bulk insert (`readings.insert_readings_bulk`), all in the
request's one transaction, so an import keeps that path's guarantees: values checked
against their measure's datatype, readings stored already (or twice in the file) counted
as duplicates and left as they are, rollups exact, and nothing written unless everything
is. The first bad cell stops the writing; the file is still read to the end, so that the
report (and a dry run's) names every bad line with its column.
"""

from __future__ import annotations

import csv
import math
import uuid
import zoneinfo
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Session

from dtbase_core import readings
from dtbase_core.errors import Invalid, NotFound
from dtbase_core.instants import MAX_MICROS, MIN_MICROS, from_micros, micros
from dtbase_core.orm import CsvUploadPart, Datatype
from dtbase_core.readings import MAX_FLOAT_READING, SeriesTarget
from dtbase_core.schemas.csv_import import CsvMapping
from dtbase_core.values import INT64

# Staged parts are deleted after their import, or after this long.
EXPIRY = timedelta(days=1)
# Rows per write: about 2 MB of arrays per measure, small beside a part.
BATCH_ROWS = 50_000
# A report lists this many errors, and counts the rest.
MAX_REPORTED_ERRORS = 1000
TRUE = frozenset({"true", "t", "yes", "y", "1"})
FALSE = frozenset({"false", "f", "no", "n", "0"})


# --- staging ---------------------------------------------------------------------------


def stage_part(
    session: Session, *, upload_id: uuid.UUID, part_number: int, csv: str, now: datetime
) -> int:
    """Store one part of a file (a part sent again replaces the first), and delete parts
    staged more than a day ago. Returns the part's length in characters."""
    session.execute(sa.delete(CsvUploadPart).where(CsvUploadPart.created_at < now - EXPIRY))
    statement = pg.insert(CsvUploadPart).values(
        upload_id=upload_id, part_number=part_number, text=csv, created_at=now
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[CsvUploadPart.upload_id, CsvUploadPart.part_number],
            set_={"text": statement.excluded.text, "created_at": now},
        )
    )
    return len(csv)


def _staged_parts(session: Session, upload_id: uuid.UUID, parts: int | None) -> Iterator[str]:
    """The staged parts' text in order, fetched one at a time."""
    key = CsvUploadPart.upload_id == upload_id
    numbers = session.scalars(
        sa.select(CsvUploadPart.part_number).where(key).order_by(CsvUploadPart.part_number)
    ).all()
    if not numbers:
        raise NotFound(f"Upload '{upload_id}' has no parts (staged parts expire after a day)")
    missing = sorted(set(range(1, numbers[-1] + 1)) - set(numbers))
    if missing:
        raise Invalid(
            f"upload_id: part {missing[0]} of upload '{upload_id}' is missing",
            loc=("body", "upload_id"),
        )
    if parts is not None and parts != len(numbers):
        raise Invalid(
            f"parts: {parts} parts announced, {len(numbers)} staged", loc=("body", "parts")
        )
    for number in numbers:
        yield (
            session.scalar(
                sa.select(CsvUploadPart.text).where(key, CsvUploadPart.part_number == number)
            )
            or ""
        )


def _lines(chunks: Iterable[str]) -> Iterator[str]:
    """The lines of text arriving in chunks, a line that spans two chunks joined up."""
    carry = ""
    for chunk in chunks:
        text = carry + chunk if carry else chunk
        start = 0
        while (end := text.find("\n", start)) >= 0:
            yield text[start : end + 1]
            start = end + 1
        carry = text[start:]
    if carry:
        yield carry


# --- cells -------------------------------------------------------------------------------


def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Invalid(
            f"mapping.timezone: unknown time zone '{name}'", loc=("body", "mapping", "timezone")
        ) from None


def _epoch(scale: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return int(text) * scale
        except ValueError:
            seconds = float(text)
            if not math.isfinite(seconds):
                raise ValueError(f"'{text}' is not a number of seconds") from None
            return round(seconds * scale)

    return parse


def timestamp_parser(timestamp_format: str, zone_name: str) -> Callable[[str], int]:
    """A cell's instant as microseconds since 1970 (ValueError saying why not): ISO 8601
    ("iso"), Unix seconds or milliseconds ("epoch_s", "epoch_ms"), or a strptime format;
    naive times are in `zone_name`."""
    zone = _zone(zone_name)
    if timestamp_format == "epoch_s":
        return _epoch(1_000_000)
    if timestamp_format == "epoch_ms":
        return _epoch(1_000)
    if timestamp_format == "iso":
        read = datetime.fromisoformat
    elif "%" in timestamp_format:

        def read(text: str) -> datetime:
            return datetime.strptime(text, timestamp_format)

    else:
        raise Invalid(
            "mapping.timestamp_format: use iso, epoch_s, epoch_ms or a strptime format "
            "such as %Y-%m-%d %H:%M:%S",
            loc=("body", "mapping", "timestamp_format"),
        )

    def parse(text: str) -> int:
        try:
            instant = read(text)
        except ValueError:
            raise ValueError(f"'{text}' is not a timestamp of format {timestamp_format}") from None
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=zone)
        return micros(instant)

    return parse


def _float(text: str) -> float:
    value = float(text)
    if not -MAX_FLOAT_READING <= value <= MAX_FLOAT_READING:  # NaN fails it too
        raise ValueError(f"{text} is outside the accepted range (±{MAX_FLOAT_READING:g})")
    return value


def _integer(text: str) -> int:
    value = int(text)
    if not -INT64 <= value < INT64:
        raise ValueError(f"{text} does not fit in 64 bits")
    return value


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise ValueError("not true/false, yes/no or 1/0")


def _string(text: str) -> str:
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    return text


CONVERT: dict[Datatype, Callable[[str], Any]] = {
    Datatype.FLOAT: _float,
    Datatype.INTEGER: _integer,
    Datatype.BOOLEAN: _boolean,
    Datatype.STRING: _string,
}


# --- the import --------------------------------------------------------------------------


@dataclass
class Report:
    dry_run: bool
    rows: int = 0
    rows_accepted: int = 0
    readings: int = 0
    inserted: int = 0
    duplicates: int = 0
    error_count: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    # The span of the accepted rows, as microseconds (for a link to their plot).
    first_us: int | None = None
    last_us: int | None = None

    def accept(self, us: int, readings: int) -> None:
        self.rows_accepted += 1
        self.readings += readings
        if self.first_us is None or us < self.first_us:
            self.first_us = us
        if self.last_us is None or us > self.last_us:
            self.last_us = us

    def error(self, line: int, column: str | None, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "column": column, "message": message})

    def as_dict(self) -> dict[str, Any]:
        detail = (
            f"{self.error_count} errors"
            if self.error_count
            else "Dry run: nothing written"
            if self.dry_run
            else "Readings imported"
        )
        counts = {k: v for k, v in self.__dict__.items() if not k.endswith("_us")}
        span = {
            "first_timestamp": None if self.first_us is None else from_micros(self.first_us),
            "last_timestamp": None if self.last_us is None else from_micros(self.last_us),
        }
        return {"detail": detail, **counts, **span}


@dataclass
class _Batch:
    """Readings gathered for one write, per (sensor, measure)."""

    series: dict[tuple[str, str], tuple[list[Any], array[int]]] = field(default_factory=dict)
    rows: int = 0

    def add(self, uid: str, measure: str, value: Any, us: int) -> None:
        values, instants = self.series.setdefault((uid, measure), ([], array("q")))
        values.append(value)
        instants.append(us)

    def write(self, session: Session, report: Report) -> None:
        if self.series:
            counts = readings.insert_readings_bulk(
                session,
                series=[
                    {
                        "unique_identifier": uid,
                        "measure_name": measure,
                        "readings": values,
                        "timestamps": np.frombuffer(instants, np.int64),
                    }
                    for (uid, measure), (values, instants) in self.series.items()
                ],
            )
            report.inserted += counts["inserted"]
            report.duplicates += counts["duplicates"]
        self.series.clear()
        self.rows = 0


class _Targets:
    """Each (sensor, measure)'s series, looked up once; an unknown one is remembered as
    the message that names it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.known: dict[tuple[str, str], SeriesTarget | str] = {}

    def get(self, uid: str, measure: str) -> SeriesTarget | str:
        key = (uid, measure)
        if key not in self.known:
            try:
                self.known[key] = readings.series_target(self.session, uid, measure)
            except (NotFound, Invalid) as exc:
                self.known[key] = exc.detail
        return self.known[key]


def _header_index(header: list[str], mapping: CsvMapping) -> dict[str, int]:
    """Each mapped column's position; Invalid naming a column the header lacks."""
    names = [name.strip() for name in header]
    positions = {name: i for i, name in reversed(list(enumerate(names)))}
    wanted = [("timestamp_column", mapping.timestamp_column)]
    if mapping.sensor_column is not None:
        wanted.append(("sensor_column", mapping.sensor_column))
    wanted += [("columns", column) for column in mapping.columns]
    for key, column in wanted:
        if column not in positions:
            loc: tuple[str | int, ...] = ("body", "mapping", key)
            if key == "columns":
                loc = (*loc, column)
            raise Invalid(
                f"mapping.{key}: no column '{column}' in the header (line 1): {names}", loc=loc
            )
    return positions


def import_csv(
    session: Session,
    *,
    mapping: CsvMapping,
    csv_text: str | None = None,
    upload_id: uuid.UUID | None = None,
    parts: int | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Import readings from `csv_text`, or from the parts staged as `upload_id` (deleted
    once imported). A dry run writes nothing and answers the report; otherwise a file with
    any bad cell is refused whole, Invalid naming each bad line and column."""
    chunks: Iterable[str] = (
        [csv_text] if csv_text is not None else _staged_parts(session, upload_id, parts)  # type: ignore[arg-type]
    )
    report = Report(dry_run=dry_run)
    _read(session, mapping, _lines(chunks), report)
    if report.error_count and not dry_run:
        items = [
            (("body", "csv", e["line"], e["column"] or ""), _where(e) + e["message"])
            for e in report.errors
        ]
        if report.error_count > len(items):
            items.append((("body", "csv"), f"and {report.error_count - len(items)} more errors"))
        (loc, first), *more = items
        # Raised, so that the batches written before the first error are rolled back.
        raise Invalid(first, loc, more=more)
    if upload_id is not None and not dry_run:
        session.execute(sa.delete(CsvUploadPart).where(CsvUploadPart.upload_id == upload_id))
    return report.as_dict()


def _where(error: dict[str, Any]) -> str:
    column = f", column '{error['column']}'" if error["column"] is not None else ""
    return f"line {error['line']}{column}: "


def _read(session: Session, mapping: CsvMapping, lines: Iterator[str], report: Report) -> None:
    timestamp = timestamp_parser(mapping.timestamp_format, mapping.timezone)
    reader = csv.reader(lines, delimiter=mapping.delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise Invalid(
            "csv: the file is empty; it needs a header row", loc=("body", "csv")
        ) from None
    except csv.Error as exc:
        raise Invalid(f"csv: line 1: {exc}", loc=("body", "csv")) from None
    positions = _header_index(header, mapping)
    ts_at = positions[mapping.timestamp_column]
    sensor_at = positions[mapping.sensor_column] if mapping.sensor_column is not None else None
    measures = [(column, positions[column], name) for column, name in mapping.columns.items()]
    targets = _Targets(session)
    if mapping.unique_identifier is not None:
        for _, _, name in measures:
            found = targets.get(mapping.unique_identifier, name)
            if isinstance(found, str):
                raise NotFound(found)
    batch = _Batch()
    width = len(header)
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            report.rows += 1
            report.error(reader.line_num, None, str(exc))
            continue
        if not row:
            continue  # a blank line
        line = reader.line_num
        report.rows += 1
        if len(row) != width:
            report.error(line, None, f"{len(row)} fields where the header has {width}")
            continue
        errors_before = report.error_count
        try:
            us = timestamp(row[ts_at].strip())
            if not MIN_MICROS <= us <= MAX_MICROS:
                raise ValueError(f"'{row[ts_at]}' is outside years 1 to 9999")
        except (ValueError, OverflowError) as exc:
            report.error(line, mapping.timestamp_column, str(exc))
        uid = mapping.unique_identifier or row[sensor_at].strip()  # type: ignore[index]
        values = []
        for column, at, name in measures:
            text = row[at]
            if not text.strip():
                continue  # an empty cell: no reading
            target = targets.get(uid, name)
            if isinstance(target, str):
                report.error(line, mapping.sensor_column or column, target)
                continue
            try:
                values.append((name, CONVERT[target.datatype](text)))
            except ValueError as exc:
                message = str(exc)
                if message.startswith(("could not convert", "invalid literal", "not true")):
                    message = f"'{text}' is not a valid {target.datatype.value} value"
                report.error(line, column, message)
        if report.error_count > errors_before:
            continue
        report.accept(us, len(values))
        if report.dry_run or report.error_count:
            continue  # nothing more will be written
        for name, value in values:
            batch.add(uid, name, value, us)
        batch.rows += 1
        if batch.rows >= BATCH_ROWS:
            batch.write(session, report)
    if not report.dry_run and not report.error_count:
        batch.write(session, report)
