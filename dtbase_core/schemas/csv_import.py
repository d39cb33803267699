"""Bodies of the CSV import (docs/api.md, CSV import)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from dtbase_core.schemas.common import Body, Name

# A staged part's text: the client splits a file at line boundaries into parts of at most
# this many characters, well under Azure Functions' 100 MB request limit.
MAX_PART_CHARS = 8 * 1024 * 1024
Column = Annotated[str, Field(min_length=1, max_length=200)]


class CsvMapping(Body):
    """Which column holds what: the timestamp, the sensor (or one fixed sensor for every
    row), and the measure each further column holds. Other columns are ignored."""

    timestamp_column: Column
    # "iso" (ISO 8601), "epoch_s", "epoch_ms", or a strptime format such as "%d/%m/%Y %H:%M".
    timestamp_format: str = "iso"
    # The zone of timestamps that carry no offset (an IANA name).
    timezone: str = "UTC"
    unique_identifier: Name | None = None
    sensor_column: Column | None = None
    columns: Annotated[dict[Column, Name], Field(min_length=1)]
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","

    @model_validator(mode="after")
    def _one_sensor(self) -> CsvMapping:
        if (self.unique_identifier is None) == (self.sensor_column is None):
            raise ValueError("give either unique_identifier or sensor_column")
        return self


def _from_query(data: Any) -> Any:
    """The query-parameter form (a text/csv body): the mapping's fields at the top, and
    `columns` as `column:measure` pairs separated by commas."""
    if not isinstance(data, dict) or "mapping" in data:
        return data
    fields = set(CsvMapping.model_fields)
    mapping = {key: value for key, value in data.items() if key in fields}
    if isinstance(mapping.get("columns"), str):
        pairs = [pair.rpartition(":") for pair in mapping["columns"].split(",") if pair]
        mapping["columns"] = {column: measure for column, _, measure in pairs}
    rest = {key: value for key, value in data.items() if key not in fields}
    return {**rest, "mapping": mapping}


class ImportCsvIn(Body):
    """The CSV itself (`csv`), or a file staged in parts (`upload_id`), with its mapping.
    Sent as `text/csv`, the body is the CSV and the other fields are query parameters."""

    csv: str | None = None
    upload_id: uuid.UUID | None = None
    # How many parts the client staged, checked against those stored when given.
    parts: Annotated[int, Field(ge=1)] | None = None
    mapping: CsvMapping
    dry_run: bool = False

    @model_validator(mode="before")
    @classmethod
    def _query_form(cls, data: Any) -> Any:
        return _from_query(data)

    @model_validator(mode="after")
    def _one_source(self) -> ImportCsvIn:
        if (self.csv is None) == (self.upload_id is None):
            raise ValueError("give either csv or upload_id")
        return self


class UploadPartIn(Body):
    """One part of a file staged for import; sent as `text/csv` with `upload_id` and
    `part_number` as query parameters, or as JSON."""

    upload_id: uuid.UUID
    part_number: Annotated[int, Field(ge=1, le=100_000)]
    csv: Annotated[str, Field(max_length=MAX_PART_CHARS)]


class UploadPartOut(BaseModel):
    detail: str
    upload_id: uuid.UUID
    part_number: int
    characters: int


class CsvError(BaseModel):
    line: int  # the CSV line, the header being line 1
    column: str | None  # the column's name, None for the row as a whole
    message: str


class ImportReport(BaseModel):
    """What an import did, or (dry run) would do."""

    detail: str
    dry_run: bool
    rows: int  # data rows read
    rows_accepted: int  # rows without an error
    readings: int  # readings in the accepted rows
    inserted: int  # new readings stored (0 in a dry run)
    duplicates: int  # readings stored already, or twice in the file, and left as they were
    error_count: int
    errors: list[CsvError]  # the first MAX_REPORTED_ERRORS of them
    # The earliest and latest timestamps of the accepted rows (null without any).
    first_timestamp: datetime | None
    last_timestamp: datetime | None
