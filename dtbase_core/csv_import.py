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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Session

from dtbase_core import readings
from dtbase_core.errors import Forbidden, Invalid, NotFound
from dtbase_core.instants import MAX_MICROS, MIN_MICROS, from_micros, micros, parse_iso
from dtbase_core.orm import CsvUploadPart, Datatype
from dtbase_core.readings import MAX_FLOAT_READING, SeriesTarget
from dtbase_core.schemas.csv_import import CsvMapping
from dtbase_core.values import INT64

# Staged parts are deleted after their import, or after this long.
EXPIRY = timedelta(days=1)
# Rows per write: a few MB of strings and arrays, small beside a part.
BATCH_ROWS = 10_000
# A report lists this many errors, and counts the rest.
MAX_REPORTED_ERRORS = 1000
# Where an error sorts among a row's cells: the row's own, the timestamp, then the measures.
ROW, TIMESTAMP = -2, -1
TRUE = frozenset({"true", "t", "yes", "y", "1"})
FALSE = frozenset({"false", "f", "no", "n", "0"})


# --- staging ---------------------------------------------------------------------------


def stage_part(
    session: Session,
    *,
    upload_id: uuid.UUID,
    part_number: int,
    csv: str,
    owner: str,
    now: datetime,
) -> int:
    """Store one part of `owner`'s file (a part sent again replaces the first), and delete
    parts staged more than a day ago. Returns the part's length in characters."""
    session.execute(sa.delete(CsvUploadPart).where(CsvUploadPart.created_at < now - EXPIRY))
    _check_owner(session, upload_id, owner)
    statement = pg.insert(CsvUploadPart).values(
        upload_id=upload_id, part_number=part_number, text=csv, owner=owner, created_at=now
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[CsvUploadPart.upload_id, CsvUploadPart.part_number],
            set_={"text": statement.excluded.text, "created_at": now},
        )
    )
    return len(csv)


def _check_owner(session: Session, upload_id: uuid.UUID, owner: str) -> None:
    """Refuse an upload that another user started: parts are only ever theirs to add to or
    import (an upload id seen in a log or a screen must not let anyone change the file)."""
    others = session.scalar(
        sa.select(sa.func.count())
        .select_from(CsvUploadPart)
        .where(CsvUploadPart.upload_id == upload_id, CsvUploadPart.owner != owner)
    )
    if others:
        raise Forbidden(f"Upload '{upload_id}' was started by another user")


def _staged_parts(
    session: Session, upload_id: uuid.UUID, parts: int | None, owner: str
) -> Iterator[str]:
    """The staged parts' text in order, fetched one at a time."""
    _check_owner(session, upload_id, owner)
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
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder
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
    owner: str,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Import readings from `csv_text`, or from the parts `owner` staged as `upload_id`
    (deleted once imported). A dry run writes nothing and answers the report; otherwise a file with
    any bad cell is refused whole, Invalid naming each bad line and column."""
    chunks: Iterable[str]
    if csv_text is not None:
        chunks = [csv_text]
    elif upload_id is not None:
        chunks = _staged_parts(session, upload_id, parts, owner)
    else:
        raise Invalid("give either csv or upload_id")
    report = Report(dry_run=dry_run)
    _read(session, mapping, _lines(chunks), report)
    if report.error_count and not dry_run:
        items: list[tuple[tuple[str | int, ...], str]] = [
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
    reader = csv.reader(lines, delimiter=mapping.delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise Invalid("csv: the file is empty; it needs a header row", ("body", "csv")) from None
    except csv.Error as exc:
        raise Invalid(f"csv: line 1: {exc}", loc=("body", "csv")) from None
    positions = _header_index(header, mapping)
    batch = _Rows(
        mapping,
        [(column, positions[column], name) for column, name in mapping.columns.items()],
        timestamp_parser(mapping.timestamp_format, mapping.timezone),
        _Targets(session),
    )
    if mapping.unique_identifier is not None:
        for _, _, name in batch.measures:
            found = batch.targets.get(mapping.unique_identifier, name)
            if isinstance(found, str):
                raise NotFound(found)
    ts_at = positions[mapping.timestamp_column]
    sensor_at = positions[mapping.sensor_column] if mapping.sensor_column is not None else ts_at
    at = [position for _, position, _ in batch.measures]
    width = len(header)
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            report.rows += 1
            batch.errors.append((reader.line_num, ROW, None, str(exc)))
            continue
        if not row:
            continue  # a blank line
        report.rows += 1
        if len(row) != width:
            message = f"{len(row)} fields where the header has {width}"
            batch.errors.append((reader.line_num, ROW, None, message))
            continue
        batch.lines.append(reader.line_num)
        batch.stamps.append(row[ts_at])
        batch.sensors.append(row[sensor_at])
        for cells, position in zip(batch.cells, at, strict=True):
            cells.append(row[position])
        if len(batch.lines) >= BATCH_ROWS:
            batch.process(session, report)
    batch.process(session, report)


@dataclass
class _Rows:
    """A batch of rows, column by column: checked and converted over whole columns where
    the file allows (ISO timestamps in UTC, numbers of one sensor), cell by cell where it
    does not, which names each bad cell; then written, unless an error was found."""

    mapping: CsvMapping
    measures: list[tuple[str, int, str]]  # (column, position, measure name)
    parse_timestamp: Callable[[str], int]
    targets: _Targets
    lines: list[int] = field(default_factory=list)
    stamps: list[str] = field(default_factory=list)
    sensors: list[str] = field(default_factory=list)
    cells: list[list[str]] = field(default_factory=list)
    # (line, column index, column, message) of this batch, sorted before they are reported.
    errors: list[tuple[int, int, str | None, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cells = [[] for _ in self.measures]

    def process(self, session: Session, report: Report) -> None:
        if not self.lines:
            self._report_errors(report)
            return
        us, bad = self._timestamps()
        if self.mapping.unique_identifier is not None:
            series = self._fixed_sensor(bad)
        else:
            series = self._sensor_column(bad)
        self._report_errors(report)
        accepted = ~bad
        count = int(accepted.sum())
        if count:
            report.rows_accepted += count
            first, last = int(us[accepted].min()), int(us[accepted].max())
            report.first_us = first if report.first_us is None else min(report.first_us, first)
            report.last_us = last if report.last_us is None else max(report.last_us, last)
        writes = []
        for uid, measure, values, present in series:
            keep = present & accepted
            report.readings += int(keep.sum())
            if keep.any() and not report.dry_run and not report.error_count:
                writes.append(
                    {
                        "unique_identifier": uid,
                        "measure_name": measure,
                        "readings": _selected(values, keep),
                        "timestamps": us[keep],
                    }
                )
        if writes:
            counts = readings.insert_readings_bulk(session, series=writes)
            report.inserted += counts["inserted"]
            report.duplicates += counts["duplicates"]
        self.lines, self.stamps, self.sensors = [], [], []
        self.cells = [[] for _ in self.measures]

    def _report_errors(self, report: Report) -> None:
        for line, _, column, message in sorted(self.errors, key=lambda e: (e[0], e[1])):
            report.error(line, column, message)
        self.errors = []

    def _error(self, i: int, index: int, column: str | None, message: str) -> None:
        self.errors.append((self.lines[i], index, column, message))

    def _timestamps(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """The rows' instants, and which rows have none."""
        n = len(self.stamps)
        bad = np.zeros(n, bool)
        if self.mapping.timestamp_format == "iso" and self.mapping.timezone.upper() == "UTC":
            fast = parse_iso(self.stamps)
            if fast is not None:
                return fast, bad
        us = np.zeros(n, np.int64)
        column = self.mapping.timestamp_column
        for i, text in enumerate(self.stamps):
            try:
                value = self.parse_timestamp(text.strip())
                if not MIN_MICROS <= value <= MAX_MICROS:
                    raise ValueError(f"'{text}' is outside years 1 to 9999")
                us[i] = value
            except (ValueError, OverflowError) as exc:
                bad[i] = True
                self._error(i, TIMESTAMP, column, str(exc))
        return us, bad

    def _fixed_sensor(self, bad: npt.NDArray[np.bool_]) -> list[_Series]:
        uid = self.mapping.unique_identifier
        assert uid is not None
        series: list[_Series] = []
        for index, ((column, _, name), cells) in enumerate(
            zip(self.measures, self.cells, strict=True)
        ):
            target = self.targets.get(uid, name)
            assert not isinstance(target, str), "checked before the first row"
            whole = _whole_column(cells, target.datatype)
            if whole is not None:
                series.append((uid, name, whole, np.ones(len(cells), bool)))
            else:
                values, present = self._cell_by_cell(cells, target.datatype, index, column, bad)
                series.append((uid, name, values, present))
        return series

    def _cell_by_cell(
        self,
        cells: list[str],
        datatype: Datatype,
        index: int,
        column: str,
        bad: npt.NDArray[np.bool_],
    ) -> tuple[list[Any], npt.NDArray[np.bool_]]:
        convert = CONVERT[datatype]
        values: list[Any] = [None] * len(cells)
        present = np.zeros(len(cells), bool)
        for i, text in enumerate(cells):
            if not text.strip():
                continue  # an empty cell: no reading
            try:
                values[i] = convert(text)
                present[i] = True
            except ValueError as exc:
                bad[i] = True
                self._error(i, index, column, _message(exc, text, datatype))
        return values, present

    def _sensor_column(self, bad: npt.NDArray[np.bool_]) -> list[_Series]:
        """Each row's sensor from its column: looked up, and its cells converted, one by one."""
        n = len(self.lines)
        gathered: dict[tuple[str, str], tuple[list[Any], npt.NDArray[np.bool_]]] = {}
        for i, raw_uid in enumerate(self.sensors):
            uid = raw_uid.strip()
            for index, ((column, _, name), cells) in enumerate(
                zip(self.measures, self.cells, strict=True)
            ):
                text = cells[i]
                if not text.strip():
                    continue
                target = self.targets.get(uid, name)
                if isinstance(target, str):
                    bad[i] = True
                    self._error(i, index, self.mapping.sensor_column, target)
                    continue
                try:
                    value = CONVERT[target.datatype](text)
                except ValueError as exc:
                    bad[i] = True
                    self._error(i, index, column, _message(exc, text, target.datatype))
                    continue
                values, present = gathered.setdefault((uid, name), ([None] * n, np.zeros(n, bool)))
                values[i] = value
                present[i] = True
        return [(uid, name, values, present) for (uid, name), (values, present) in gathered.items()]


# (unique_identifier, measure name, a value per row of the batch, which rows have one)
_Series = tuple[str, str, "list[Any] | npt.NDArray[Any]", "npt.NDArray[np.bool_]"]


def _whole_column(cells: list[str], datatype: Datatype) -> npt.NDArray[Any] | None:
    """A column of numbers converted at once, or None when any cell needs a closer look
    (empty, not a number, out of range): then each is converted on its own."""
    try:
        if datatype is Datatype.FLOAT:
            floats = np.array(cells, np.float64)
            # NaN fails the comparison too.
            return floats if (np.abs(floats) <= MAX_FLOAT_READING).all() else None
        if datatype is Datatype.INTEGER:
            return np.array(cells, np.int64)
    except (ValueError, OverflowError):
        return None
    return None


def _selected(values: list[Any] | npt.NDArray[Any], keep: npt.NDArray[np.bool_]) -> list[Any]:
    if isinstance(values, np.ndarray):
        return values[keep].tolist()
    return [value for value, kept in zip(values, keep.tolist(), strict=True) if kept]


def _message(exc: ValueError, text: str, datatype: Datatype) -> str:
    message = str(exc)
    if message.startswith(("could not convert", "invalid literal", "not true")):
        return f"'{text}' is not a valid {datatype.value} value"
    return message
