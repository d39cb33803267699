"""/annotation: time-ranged notes on an asset or a sensor (docs/api.md, Assets and
annotations)."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from dtbase_core import annotation
from dtbase_core.apikeys import Scope
from dtbase_core.roles import Role
from dtbase_core.schemas.assets import (
    AnnotationIdIn,
    AnnotationIdOut,
    AnnotationOut,
    InsertAnnotationIn,
    ListAnnotationsIn,
)
from function_app.http import Call, endpoint

bp = func.Blueprint()


def _sensors(body: Any) -> list[str]:
    return [body.unique_identifier] if body.unique_identifier is not None else []


@endpoint(
    bp,
    "annotation/insert-annotation",
    body=InsertAnnotationIn,
    response=AnnotationIdOut,
    status=201,
    errors={400: "The asset or the sensor does not exist"},
)
def insert_annotation(call: Call[InsertAnnotationIn]) -> Any:
    """Annotate an asset or a sensor (exactly one) over [dt_from, dt_to], or at dt_from;
    the signed-in user is recorded as its author."""
    new_id = annotation.insert_annotation(
        call.session, **call.body.model_dump(), author=call.actor.email
    )
    return {"detail": "Annotation inserted", "id": new_id}


@endpoint(
    bp,
    "annotation/list-annotations",
    body=ListAnnotationsIn,
    response=list[AnnotationOut],
    role=Role.VIEWER,
    scope=Scope.READ,
    sensors=_sensors,
    errors={400: "The asset or the sensor does not exist"},
)
def list_annotations(call: Call[ListAnnotationsIn]) -> Any:
    """The annotations overlapping [dt_from, dt_to]: all, an asset's or a sensor's (with
    those of the sensors attached to the asset, or of the sensor's asset, unless
    `include_related` is false)."""
    return annotation.list_annotations(call.session, **call.body.model_dump())


@endpoint(
    bp,
    "annotation/delete-annotation",
    body=AnnotationIdIn,
    errors={400: "Annotation does not exist"},
)
def delete_annotation(call: Call[AnnotationIdIn]) -> Any:
    """Delete an annotation."""
    annotation.delete_annotation(call.session, id=call.body.id)
    return {"detail": "Annotation deleted"}
