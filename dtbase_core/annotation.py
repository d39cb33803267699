"""Annotations: time-ranged notes on an asset or a sensor, with who wrote them
(docs/api.md, Assets and annotations).

An annotation covers [dt_from, dt_to], or the instant dt_from when dt_to is null. A
listing returns those overlapping its window. By default an asset's listing also holds
the annotations of the sensors attached to it now, and a sensor's those of the asset it
is attached to now: a note "filter changed" on an air handler belongs on the plots of its
sensors too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core.assets import asset_id, current_attachments, subtree_ids
from dtbase_core.errors import Invalid, NotFound
from dtbase_core.orm import Annotation, Asset, Sensor
from dtbase_core.sensors import find_sensor_id


def _one_target(asset: str | None, unique_identifier: str | None) -> None:
    if asset is not None and unique_identifier is not None:
        raise Invalid(
            "Give either asset or unique_identifier, not both", loc=("body", "unique_identifier")
        )


def insert_annotation(
    session: Session,
    *,
    asset: str | None = None,
    unique_identifier: str | None = None,
    dt_from: datetime,
    dt_to: datetime | None = None,
    text: str,
    tags: Sequence[str] = (),
    author: str,
) -> int:
    """Annotate an asset or a sensor (exactly one); the new annotation's id."""
    _one_target(asset, unique_identifier)
    if asset is None and unique_identifier is None:
        raise Invalid("Give an asset or a unique_identifier", loc=("body", "asset"))
    if dt_to is not None and dt_to < dt_from:
        raise Invalid("dt_to must not be before dt_from", loc=("body", "dt_to"))
    target = (
        {"asset_id": asset_id(session, asset)}
        if asset is not None
        else {"sensor_id": find_sensor_id(session, unique_identifier or "")}
    )
    new_id = session.scalar(
        sa.insert(Annotation)
        .values(**target, dt_from=dt_from, dt_to=dt_to, text=text, tags=list(tags), author=author)
        .returning(Annotation.id)
    )
    return int(new_id or 0)


def list_annotations(
    session: Session,
    *,
    asset: str | None = None,
    unique_identifier: str | None = None,
    dt_from: datetime,
    dt_to: datetime,
    include_related: bool = True,
    recursive: bool = False,
) -> list[dict[str, Any]]:
    """The annotations overlapping [dt_from, dt_to], by dt_from then id: every one, or
    those of an asset (`recursive`: and of every asset below it) or of a sensor, with
    the related ones (see the module's note)."""
    _one_target(asset, unique_identifier)
    current = current_attachments()
    where: sa.ColumnElement[bool]
    if asset is not None:
        target = asset_id(session, asset)
        if recursive:
            subtree = subtree_ids(target)
            where = Annotation.asset_id.in_(sa.select(subtree.c.id))
            attached = sa.select(current.c.sensor_id).where(
                current.c.asset_id.in_(sa.select(subtree.c.id))
            )
        else:
            where = Annotation.asset_id == target
            attached = sa.select(current.c.sensor_id).where(current.c.asset_id == target)
        if include_related:
            where = sa.or_(where, Annotation.sensor_id.in_(attached))
    elif unique_identifier is not None:
        target = find_sensor_id(session, unique_identifier)
        where = Annotation.sensor_id == target
        if include_related:
            holder = sa.select(current.c.asset_id).where(current.c.sensor_id == target)
            where = sa.or_(where, Annotation.asset_id.in_(holder))
    else:
        where = sa.true()
    rows = session.execute(
        sa.select(
            Annotation.id,
            Asset.name.label("asset"),
            Sensor.unique_identifier,
            Annotation.dt_from,
            Annotation.dt_to,
            Annotation.text,
            Annotation.tags,
            Annotation.author,
            Annotation.time_created,
        )
        .outerjoin(Asset, Asset.id == Annotation.asset_id)
        .outerjoin(Sensor, Sensor.id == Annotation.sensor_id)
        .where(
            where,
            Annotation.dt_from <= dt_to,
            sa.func.coalesce(Annotation.dt_to, Annotation.dt_from) >= dt_from,
        )
        .order_by(Annotation.dt_from, Annotation.id)
    ).all()
    return [dict(r._mapping) for r in rows]


def delete_annotation(session: Session, *, id: int) -> None:
    deleted = session.scalar(
        sa.delete(Annotation).where(Annotation.id == id).returning(Annotation.id)
    )
    if deleted is None:
        raise NotFound(f"Annotation {id} does not exist")
