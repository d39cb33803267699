"""Bodies of /apikey (docs/api.md, API keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from dtbase_core.apikeys import Scope
from dtbase_core.schemas.common import Body, Name, UtcDatetime

KeyName = Annotated[str, Field(min_length=1, max_length=100)]


class CreateApiKeyIn(Body):
    name: KeyName
    scopes: Annotated[list[Scope], Field(min_length=1)]
    # Limits on the sensors whose readings the key may write; absent: any sensor.
    sensors: list[str] | None = None
    sensor_types: list[Name] | None = None
    expires_at: UtcDatetime | None = None


class ApiKeyNameIn(Body):
    name: KeyName


class RotateApiKeyIn(Body):
    name: KeyName
    # How long the old key keeps working beside the new one.
    overlap_seconds: int = Field(86400, ge=0, le=90 * 86400)


class ApiKeyOut(BaseModel):
    name: str
    prefix: str
    scopes: list[Scope]
    sensors: list[str] | None
    sensor_types: list[str] | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_address: str | None


class NewApiKeyOut(ApiKeyOut):
    key: str  # shown this once
