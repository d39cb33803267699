"""Types shared by every area's bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from dtbase_core.timeutil import as_utc

# Each JSON value keeps its type: 1 is an int, 1.0 a float, true a bool (API.md §1.4).
# Pydantic's smart-mode union picks the exact type match.
Value = bool | int | float | str

# Naive input is UTC; aware input is converted to UTC (Part A 6).
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]

Name = Annotated[str, Field(min_length=1, max_length=100)]
Units = Annotated[str, Field(max_length=100)]


class Body(BaseModel):
    """Request bodies ignore undeclared keys, as DTBase's do (the frontend relies on it)."""

    model_config = ConfigDict(extra="ignore")


class Message(BaseModel):
    detail: str


class ErrorItem(BaseModel):
    type: str
    loc: list[str | int]
    msg: str
    input: Any = None


class ValidationErrorReply(BaseModel):
    detail: list[ErrorItem]
