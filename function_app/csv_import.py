"""/sensor/import-readings-csv and /sensor/upload-csv-part (docs/api.md, CSV import)."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from dtbase_core import csv_import
from dtbase_core.schemas.csv_import import ImportCsvIn, ImportReport, UploadPartIn, UploadPartOut
from dtbase_core.timeutil import utcnow
from function_app.http import Call, endpoint, json_response

bp = func.Blueprint()


def _part_target(body: UploadPartIn) -> str:
    return f"upload_id={body.upload_id}, part {body.part_number}"


def _import_target(body: ImportCsvIn) -> str:
    """What an import writes, for its audit row: the sensor (or the column naming them),
    the upload, and whether it was a dry run."""
    mapping = body.mapping
    sensor = (
        f"unique_identifier={mapping.unique_identifier}"
        if mapping.unique_identifier is not None
        else f"sensor_column={mapping.sensor_column}"
    )
    upload = f", upload_id={body.upload_id}" if body.upload_id is not None else ""
    return sensor + upload + (", dry run" if body.dry_run else "")


@endpoint(
    bp,
    "sensor/upload-csv-part",
    body=UploadPartIn,
    text_field="csv",
    status=201,
    response=UploadPartOut,
    target=_part_target,
)
def upload_csv_part(call: Call[UploadPartIn]) -> Any:
    """Stage one part (at most 8 MB of text, cut at a line end) of a CSV file to import."""
    body = call.body
    characters = csv_import.stage_part(
        call.session,
        upload_id=body.upload_id,
        part_number=body.part_number,
        csv=body.csv,
        owner=call.actor.email,
        now=utcnow(),
    )
    return {
        "detail": "Part staged",
        "upload_id": body.upload_id,
        "part_number": body.part_number,
        "characters": characters,
    }


@endpoint(
    bp,
    "sensor/import-readings-csv",
    body=ImportCsvIn,
    text_field="csv",
    status=201,
    response=ImportReport,
    replies={200: (ImportReport, "A dry run: the report, nothing written")},
    errors={400: "A sensor or measure does not exist, or the upload has no parts"},
    target=_import_target,
)
def import_readings_csv(call: Call[ImportCsvIn]) -> Any:
    """Import readings from CSV, all or nothing; a dry run reports every bad line."""
    body = call.body
    report = csv_import.import_csv(
        call.session,
        mapping=body.mapping,
        csv_text=body.csv,
        upload_id=body.upload_id,
        parts=body.parts,
        owner=call.actor.email,
        dry_run=body.dry_run,
    )
    return json_response(report, 200 if body.dry_run else 201)
