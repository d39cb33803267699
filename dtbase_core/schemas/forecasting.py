"""Replies of the forecast starter and status routes; the starter's body is the forecast's
configuration, `ArimaConfig` (dtbase_core/forecasting/config.py), which the timer uses too."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class StartedOut(BaseModel):
    """Durable's check-status reply: the instance id and where to follow it, plus
    `statusApiUri`, the same status under /api with a DTBase token. Behind an Azure Static
    Web App only /api reaches the Function App, and Durable's own URLs carry the host's
    system key, which a browser should never hold."""

    id: str
    statusQueryGetUri: str
    sendEventPostUri: str
    terminatePostUri: str
    purgeHistoryDeleteUri: str
    statusApiUri: str


class StatusOut(BaseModel):
    instanceId: str
    runtimeStatus: str | None
    customStatus: Any = None
    output: Any = None
    createdTime: str | None
    lastUpdatedTime: str | None
