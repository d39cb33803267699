"""Assets: asset types, the asset tree and the sensors attached to assets (docs/api.md,
Assets and annotations).

The tree lives in `asset.parent_id`; `asset_move` records every parent an asset had, from
when. Writers of the tree (insert, move, delete) take one transaction-scoped advisory lock
first, so two concurrent moves cannot each pass the cycle check and together make a cycle.

A sensor's attachments are a history like its locations: the row with the latest
installation_datetime is where the sensor is now; a row with no asset detaches it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Session

from dtbase_core.errors import AlreadyExists, Conflict, NotFound
from dtbase_core.orm import Asset, AssetMove, AssetSensor, AssetType, Sensor, SensorType
from dtbase_core.sensors import find_sensor_id
from dtbase_core.timeutil import utcnow

# pg_advisory_xact_lock key for writes to the asset tree (the migrations use 7283401,
# sensor types 7283402).
ASSET_TREE_LOCK = 7283414


def _lock_tree(session: Session) -> None:
    session.execute(sa.select(sa.func.pg_advisory_xact_lock(ASSET_TREE_LOCK)))


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


# --- asset types -------------------------------------------------------------------------


def _type_id(session: Session, name: str) -> int:
    type_id = session.scalar(sa.select(AssetType.id).where(AssetType.name == name))
    if type_id is None:
        raise NotFound(f"Asset type '{name}' does not exist")
    return int(type_id)


def insert_asset_type(session: Session, *, name: str, brick_class: str | None = None) -> None:
    inserted = session.scalar(
        pg.insert(AssetType)
        .values(name=name, brick_class=brick_class)
        .on_conflict_do_nothing(index_elements=[AssetType.name])
        .returning(AssetType.id)
    )
    if inserted is None:
        raise AlreadyExists(f"Asset type '{name}' exists already")


def list_asset_types(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        sa.select(AssetType.name, AssetType.brick_class).order_by(AssetType.id)
    ).all()
    return [{"name": r.name, "brick_class": r.brick_class} for r in rows]


def delete_asset_type(session: Session, *, name: str) -> None:
    """Refused while assets have the type: they would lose what they are."""
    type_id = _type_id(session, name)
    users = list(
        session.scalars(sa.select(Asset.name).where(Asset.type_id == type_id).order_by(Asset.id))
    )
    if users:
        raise Conflict(f"Asset type '{name}' is used by the assets {_names(users)}")
    session.execute(sa.delete(AssetType).where(AssetType.id == type_id))


# --- the tree ----------------------------------------------------------------------------


def asset_id(session: Session, name: str, field: str = "Asset") -> int:
    found = session.scalar(sa.select(Asset.id).where(Asset.name == name))
    if found is None:
        raise NotFound(f"{field} '{name}' does not exist")
    return int(found)


def subtree_ids(root_id: int) -> sa.CTE:
    """A recursive CTE of `id`s: the asset `root_id` and everything below it."""
    tree = sa.select(Asset.id).where(Asset.id == root_id).cte("subtree", recursive=True)
    below = sa.select(Asset.id).join(tree, Asset.parent_id == tree.c.id)
    return tree.union_all(below)


def insert_asset(
    session: Session,
    *,
    name: str,
    type_name: str,
    parent: str | None = None,
    description: str | None = None,
) -> None:
    _lock_tree(session)
    type_id = _type_id(session, type_name)
    parent_id = asset_id(session, parent, "Parent asset") if parent is not None else None
    inserted = session.scalar(
        pg.insert(Asset)
        .values(name=name, type_id=type_id, parent_id=parent_id, description=description)
        .on_conflict_do_nothing(index_elements=[Asset.name])
        .returning(Asset.id)
    )
    if inserted is None:
        raise AlreadyExists(f"Asset '{name}' exists already")
    session.execute(sa.insert(AssetMove).values(asset_id=inserted, parent_id=parent_id))


def _asset_rows(session: Session, *where: Any) -> list[dict[str, Any]]:
    parent = sa.orm.aliased(Asset)
    rows = session.execute(
        sa.select(
            Asset.id,
            Asset.name,
            AssetType.name.label("type_name"),
            AssetType.brick_class,
            parent.name.label("parent"),
            Asset.description,
        )
        .join(AssetType, AssetType.id == Asset.type_id)
        .outerjoin(parent, parent.id == Asset.parent_id)
        .where(*where)
        .order_by(Asset.id)
    ).all()
    return [dict(r._mapping) for r in rows]


def list_assets(
    session: Session, *, parent: str | None = None, type_name: str | None = None
) -> list[dict[str, Any]]:
    """Every asset in insertion order, or only the children of `parent`, or only those
    of one type."""
    conditions = []
    if parent is not None:
        conditions.append(Asset.parent_id == asset_id(session, parent, "Parent asset"))
    if type_name is not None:
        conditions.append(Asset.type_id == _type_id(session, type_name))
    rows = _asset_rows(session, *conditions)
    for row in rows:
        del row["id"]
    return rows


def asset_tree(session: Session, *, root: str | None = None) -> list[dict[str, Any]]:
    """The tree as nested nodes ({..., "children": [...]}): the roots, or `root` alone
    with everything below it. Children in insertion order."""
    if root is None:
        rows = _asset_rows(session)
    else:
        subtree = subtree_ids(asset_id(session, root))
        rows = _asset_rows(session, Asset.id.in_(sa.select(subtree.c.id)))
    nodes = {row["name"]: {**row, "children": []} for row in rows}
    top: list[dict[str, Any]] = []
    for row in rows:
        node = nodes[row["name"]]
        del node["id"]
        if row["name"] == root or row["parent"] is None:
            top.append(node)
        else:
            nodes[row["parent"]]["children"].append(node)
    return top


def move_asset(session: Session, *, name: str, parent: str | None) -> None:
    """Put `name` under `parent` (null: make it a root), recording the move. A move
    under itself or anything below it is a 409."""
    _lock_tree(session)
    moving = asset_id(session, name)
    parent_id = asset_id(session, parent, "Parent asset") if parent is not None else None
    if parent_id is not None:
        subtree = subtree_ids(moving)
        if session.scalar(sa.select(sa.exists().where(subtree.c.id == parent_id))):
            where = "itself" if parent_id == moving else f"'{parent}', which is below it"
            raise Conflict(f"Asset '{name}' cannot move under {where}: that makes a cycle")
    current = session.scalar(sa.select(Asset.parent_id).where(Asset.id == moving))
    if current == parent_id:
        return
    session.execute(sa.update(Asset).where(Asset.id == moving).values(parent_id=parent_id))
    session.execute(sa.insert(AssetMove).values(asset_id=moving, parent_id=parent_id))


def list_asset_moves(session: Session, *, name: str) -> list[dict[str, Any]]:
    """Every parent the asset had, newest first (element 0 is its parent now; null for a
    root, or for a parent deleted since)."""
    moving = asset_id(session, name)
    parent = sa.orm.aliased(Asset)
    rows = session.execute(
        sa.select(parent.name.label("parent"), AssetMove.moved_at)
        .outerjoin(parent, parent.id == AssetMove.parent_id)
        .where(AssetMove.asset_id == moving)
        .order_by(AssetMove.moved_at.desc(), AssetMove.id.desc())
    ).all()
    return [{"parent": r.parent, "moved_at": r.moved_at} for r in rows]


def delete_asset(session: Session, *, name: str) -> None:
    """Delete an asset with its history and annotations. Refused (409) while it has
    children or sensors attached: nothing is moved or detached behind the caller's back."""
    _lock_tree(session)
    target = asset_id(session, name)
    children = list(
        session.scalars(sa.select(Asset.name).where(Asset.parent_id == target).order_by(Asset.id))
    )
    if children:
        raise Conflict(
            f"Asset '{name}' has children ({_names(children)}): move or delete them first"
        )
    attached = [s["unique_identifier"] for s in list_asset_sensors(session, asset=name)]
    if attached:
        raise Conflict(
            f"Asset '{name}' has sensors attached ({_names(attached)}): "
            "attach them elsewhere or detach them first"
        )
    session.execute(sa.delete(Asset).where(Asset.id == target))


# --- sensors attached to assets ----------------------------------------------------------


def current_attachments() -> sa.Subquery:
    """(sensor_id, asset_id, installation_datetime) of every sensor's latest attachment;
    asset_id is null for a sensor detached last."""
    return (
        sa.select(AssetSensor.sensor_id, AssetSensor.asset_id, AssetSensor.installation_datetime)
        .ext(pg.distinct_on(AssetSensor.sensor_id))
        .order_by(AssetSensor.sensor_id, AssetSensor.installation_datetime.desc())
        .subquery("current_attachment")
    )


def attach_sensor(
    session: Session,
    *,
    asset: str | None,
    unique_identifier: str,
    installation_datetime: datetime | None = None,
) -> None:
    """Attach a sensor to `asset` from `installation_datetime` (default now); a null
    asset detaches it. Earlier attachments stay in its history."""
    # The tree's lock: delete_asset must not miss a sensor attached while it checks.
    _lock_tree(session)
    sensor = find_sensor_id(session, unique_identifier)
    target = asset_id(session, asset) if asset is not None else None
    inserted = session.scalar(
        pg.insert(AssetSensor)
        .values(
            sensor_id=sensor,
            asset_id=target,
            installation_datetime=installation_datetime or utcnow(),
        )
        .on_conflict_do_nothing(
            index_elements=[AssetSensor.sensor_id, AssetSensor.installation_datetime]
        )
        .returning(AssetSensor.id)
    )
    if inserted is None:
        raise Conflict(
            f"Sensor '{unique_identifier}' already has an attachment at that installation_datetime"
        )


def list_sensor_attachments(session: Session, *, unique_identifier: str) -> list[dict[str, Any]]:
    """A sensor's attachment history, newest first (element 0 is where it is now; a null
    asset means detached)."""
    sensor = find_sensor_id(session, unique_identifier)
    rows = session.execute(
        sa.select(Asset.name.label("asset"), AssetSensor.installation_datetime)
        .outerjoin(Asset, Asset.id == AssetSensor.asset_id)
        .where(AssetSensor.sensor_id == sensor)
        .order_by(AssetSensor.installation_datetime.desc())
    ).all()
    return [{"asset": r.asset, "installation_datetime": r.installation_datetime} for r in rows]


def list_asset_sensors(
    session: Session, *, asset: str, recursive: bool = False
) -> list[dict[str, Any]]:
    """The sensors attached to `asset` now, or to it and everything below it."""
    target = asset_id(session, asset)
    current = current_attachments()
    where: sa.ColumnElement[bool]
    if recursive:
        subtree = subtree_ids(target)
        where = current.c.asset_id.in_(sa.select(subtree.c.id))
    else:
        where = current.c.asset_id == target
    rows = session.execute(
        sa.select(
            Sensor.unique_identifier,
            Sensor.name,
            SensorType.name.label("type_name"),
            Asset.name.label("asset"),
            current.c.installation_datetime,
        )
        .join(current, current.c.sensor_id == Sensor.id)
        .join(SensorType, SensorType.id == Sensor.type_id)
        .join(Asset, Asset.id == current.c.asset_id)
        .where(where)
        .order_by(Sensor.id)
    ).all()
    return [dict(r._mapping) for r in rows]
