"""Bodies of /asset and /annotation (docs/api.md, Assets and annotations)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from dtbase_core.schemas.common import Body, Name, UtcDatetime

BrickClass = Annotated[str, Field(min_length=1, max_length=200)]


class AssetTypeIn(Body):
    name: Name
    # A Brick Schema class such as "brick:Air_Handling_Unit", kept as given.
    brick_class: BrickClass | None = None


class AssetTypeNameIn(Body):
    name: Name


class AssetTypeOut(BaseModel):
    name: str
    brick_class: str | None


class AssetIn(Body):
    name: Name
    type_name: Name
    parent: Name | None = None
    description: str | None = None


class AssetNameIn(Body):
    name: Name


class ListAssetsIn(Body):
    parent: Name | None = None
    type_name: Name | None = None


class AssetTreeIn(Body):
    root: Name | None = None


class MoveAssetIn(Body):
    name: Name
    parent: Name | None = Field(description="The new parent; null makes the asset a root.")


class AssetOut(BaseModel):
    name: str
    type_name: str
    brick_class: str | None
    parent: str | None
    description: str | None


class AssetNode(AssetOut):
    children: list[AssetNode]


class AssetMoveOut(BaseModel):
    parent: str | None
    moved_at: str


class AttachSensorIn(Body):
    asset: Name
    unique_identifier: Name
    installation_datetime: UtcDatetime | None = None


class DetachSensorIn(Body):
    unique_identifier: Name
    installation_datetime: UtcDatetime | None = None


class SensorAttachmentsIn(Body):
    unique_identifier: Name


class AttachmentOut(BaseModel):
    asset: str | None
    installation_datetime: str


class AssetSensorsIn(Body):
    asset: Name
    recursive: bool = False


class AssetSensorOut(BaseModel):
    unique_identifier: str
    name: str | None
    type_name: str
    asset: str
    installation_datetime: str


# --- annotations -------------------------------------------------------------------------

Tag = Annotated[str, Field(min_length=1, max_length=100)]


class _Target(Body):
    asset: Name | None = None
    unique_identifier: Name | None = None

    @model_validator(mode="after")
    def _not_both(self) -> _Target:
        if self.asset is not None and self.unique_identifier is not None:
            raise ValueError("give either asset or unique_identifier, not both")
        return self


class InsertAnnotationIn(_Target):
    dt_from: UtcDatetime
    dt_to: UtcDatetime | None = Field(None, description="Null: the annotation marks dt_from.")
    text: str = Field(min_length=1, max_length=10_000)
    tags: list[Tag] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _one_and_ordered(self) -> InsertAnnotationIn:
        if self.asset is None and self.unique_identifier is None:
            raise ValueError("give an asset or a unique_identifier")
        if self.dt_to is not None and self.dt_to < self.dt_from:
            raise ValueError("dt_to must not be before dt_from")
        return self


class ListAnnotationsIn(_Target):
    dt_from: UtcDatetime
    dt_to: UtcDatetime
    include_related: bool = Field(
        True,
        description="An asset's listing adds its attached sensors' annotations; a sensor's, "
        "those of the asset it is attached to.",
    )
    recursive: bool = Field(
        False, description="With `asset`: the annotations of every asset below it too."
    )


class AnnotationIdIn(Body):
    id: int = Field(ge=1, le=2**31 - 1)  # the column is a PostgreSQL integer


class AnnotationIdOut(BaseModel):
    detail: str
    id: int


class AnnotationOut(BaseModel):
    id: int
    asset: str | None
    unique_identifier: str | None
    dt_from: str
    dt_to: str | None
    text: str
    tags: list[str]
    author: str
    time_created: str
