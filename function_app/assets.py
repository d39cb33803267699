"""/asset: asset types, the asset tree and the sensors attached to assets (docs/api.md,
Assets and annotations)."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from dtbase_core import assets
from dtbase_core.apikeys import Scope
from dtbase_core.roles import Role
from dtbase_core.schemas.assets import (
    AssetIn,
    AssetMoveOut,
    AssetNameIn,
    AssetNode,
    AssetOut,
    AssetSensorOut,
    AssetSensorsIn,
    AssetTreeIn,
    AssetTypeIn,
    AssetTypeNameIn,
    AssetTypeOut,
    AttachmentOut,
    AttachSensorIn,
    DetachSensorIn,
    ListAssetsIn,
    MoveAssetIn,
    SensorAttachmentsIn,
)
from function_app.http import Call, endpoint

bp = func.Blueprint()


@endpoint(
    bp,
    "asset/insert-asset-type",
    body=AssetTypeIn,
    status=201,
    errors={409: "Asset type exists already"},
)
def insert_asset_type(call: Call[AssetTypeIn]) -> Any:
    """Create an asset type, optionally naming its Brick Schema class."""
    assets.insert_asset_type(call.session, **call.body.model_dump())
    return {"detail": "Asset type inserted"}


@endpoint(
    bp,
    "asset/list-asset-types",
    method="GET",
    response=list[AssetTypeOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_asset_types(call: Call[None]) -> Any:
    """Every asset type."""
    return assets.list_asset_types(call.session)


@endpoint(
    bp,
    "asset/delete-asset-type",
    body=AssetTypeNameIn,
    errors={400: "Asset type does not exist", 409: "Assets of this type still exist"},
)
def delete_asset_type(call: Call[AssetTypeNameIn]) -> Any:
    """Delete an asset type that no asset has."""
    assets.delete_asset_type(call.session, name=call.body.name)
    return {"detail": "Asset type deleted"}


@endpoint(
    bp,
    "asset/insert-asset",
    body=AssetIn,
    status=201,
    errors={400: "The asset type or the parent does not exist", 409: "Asset exists already"},
)
def insert_asset(call: Call[AssetIn]) -> Any:
    """Create an asset of a type, under a parent or as a root."""
    assets.insert_asset(call.session, **call.body.model_dump())
    return {"detail": "Asset inserted"}


@endpoint(
    bp,
    "asset/list-assets",
    body=ListAssetsIn,
    body_required=False,
    response=list[AssetOut],
    role=Role.VIEWER,
    scope=Scope.READ,
    errors={400: "The parent or the asset type does not exist"},
)
def list_assets(call: Call[ListAssetsIn]) -> Any:
    """Every asset, or the children of `parent`, or those of one type; insertion order."""
    return assets.list_assets(call.session, **call.body.model_dump())


@endpoint(
    bp,
    "asset/asset-tree",
    body=AssetTreeIn,
    body_required=False,
    response=list[AssetNode],
    role=Role.VIEWER,
    scope=Scope.READ,
    errors={400: "The root asset does not exist"},
)
def asset_tree(call: Call[AssetTreeIn]) -> Any:
    """The asset tree, nested: every root, or `root` alone with everything below it."""
    return assets.asset_tree(call.session, root=call.body.root)


@endpoint(
    bp,
    "asset/move-asset",
    body=MoveAssetIn,
    errors={
        400: "The asset or the new parent does not exist",
        409: "The new parent is the asset itself or below it",
    },
)
def move_asset(call: Call[MoveAssetIn]) -> Any:
    """Put an asset under another (null: make it a root); the move is recorded."""
    assets.move_asset(call.session, name=call.body.name, parent=call.body.parent)
    return {"detail": "Asset moved"}


@endpoint(
    bp,
    "asset/list-asset-moves",
    body=AssetNameIn,
    response=list[AssetMoveOut],
    role=Role.VIEWER,
    scope=Scope.READ,
    errors={400: "Asset does not exist"},
)
def list_asset_moves(call: Call[AssetNameIn]) -> Any:
    """Every parent an asset had and since when, newest first."""
    return assets.list_asset_moves(call.session, name=call.body.name)


@endpoint(
    bp,
    "asset/delete-asset",
    body=AssetNameIn,
    errors={400: "Asset does not exist", 409: "The asset has children or sensors attached"},
)
def delete_asset(call: Call[AssetNameIn]) -> Any:
    """Delete an asset with no children and no sensors attached, with its history and
    annotations."""
    assets.delete_asset(call.session, name=call.body.name)
    return {"detail": "Asset deleted"}


@endpoint(
    bp,
    "asset/attach-sensor",
    body=AttachSensorIn,
    status=201,
    errors={
        400: "The asset or the sensor does not exist",
        409: "The sensor has an attachment at that installation_datetime",
    },
)
def attach_sensor(call: Call[AttachSensorIn]) -> Any:
    """Attach a sensor to an asset from `installation_datetime` (default now); the
    latest attachment is the current one."""
    assets.attach_sensor(call.session, **call.body.model_dump())
    return {"detail": "Sensor attached"}


@endpoint(
    bp,
    "asset/detach-sensor",
    body=DetachSensorIn,
    status=201,
    errors={
        400: "Sensor does not exist",
        409: "The sensor has an attachment at that installation_datetime",
    },
)
def detach_sensor(call: Call[DetachSensorIn]) -> Any:
    """Detach a sensor from its asset from `installation_datetime` (default now)."""
    assets.attach_sensor(call.session, asset=None, **call.body.model_dump())
    return {"detail": "Sensor detached"}


@endpoint(
    bp,
    "asset/list-sensor-attachments",
    body=SensorAttachmentsIn,
    response=list[AttachmentOut],
    role=Role.VIEWER,
    scope=Scope.READ,
    sensors=lambda body: [body.unique_identifier],
    errors={400: "Sensor does not exist"},
)
def list_sensor_attachments(call: Call[SensorAttachmentsIn]) -> Any:
    """A sensor's attachments, newest first (a null asset: detached from then on)."""
    return assets.list_sensor_attachments(
        call.session, unique_identifier=call.body.unique_identifier
    )


@endpoint(
    bp,
    "asset/list-asset-sensors",
    body=AssetSensorsIn,
    response=list[AssetSensorOut],
    role=Role.VIEWER,
    scope=Scope.READ,
    errors={400: "Asset does not exist"},
)
def list_asset_sensors(call: Call[AssetSensorsIn]) -> Any:
    """The sensors attached to an asset now, or with `recursive` to it and every asset
    below it."""
    return assets.list_asset_sensors(call.session, **call.body.model_dump())
