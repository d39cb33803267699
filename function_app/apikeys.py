"""/apikey: admins create, list, rotate and revoke API keys (docs/api.md, API keys). No
key may call these routes (`scope` left unset): a key never manages keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import azure.functions as func

from dtbase_core import apikeys
from dtbase_core.roles import Role
from dtbase_core.schemas.apikeys import (
    ApiKeyNameIn,
    ApiKeyOut,
    CreateApiKeyIn,
    NewApiKeyOut,
    RotateApiKeyIn,
)
from dtbase_core.timeutil import utcnow
from function_app.http import Call, endpoint

bp = func.Blueprint()


@endpoint(
    bp,
    "apikey/create-api-key",
    body=CreateApiKeyIn,
    response=NewApiKeyOut,
    status=201,
    role=Role.ADMIN,
    errors={403: "Only an admin can manage API keys", 409: "A key of that name exists"},
)
def create_api_key(call: Call[CreateApiKeyIn]) -> Any:
    """Make a key with scopes, optional sensor limits and expiry; the reply holds the key,
    shown this once."""
    return apikeys.create_api_key(
        call.session,
        **call.body.model_dump(),
        created_by=call.actor.email,
        now=utcnow(),
        settings=call.settings,
    )


@endpoint(
    bp,
    "apikey/list-api-keys",
    method="GET",
    response=list[ApiKeyOut],
    role=Role.ADMIN,
    errors={403: "Only an admin can manage API keys"},
)
def list_api_keys(call: Call[None]) -> Any:
    """Every key with its prefix, scopes, limits, creator, last use, expiry and revocation;
    never a key."""
    return apikeys.list_api_keys(call.session)


@endpoint(
    bp,
    "apikey/revoke-api-key",
    body=ApiKeyNameIn,
    role=Role.ADMIN,
    errors={
        403: "Only an admin can manage API keys",
        400: "No API key of that name",
        409: "The built-in services' key is revoked by changing DT_SERVICE_API_KEY",
    },
)
def revoke_api_key(call: Call[ApiKeyNameIn]) -> Any:
    """End a key at once (it stays listed, as revoked)."""
    apikeys.revoke_api_key(call.session, name=call.body.name, now=utcnow())
    return {"detail": "API key revoked"}


@endpoint(
    bp,
    "apikey/rotate-api-key",
    body=RotateApiKeyIn,
    response=NewApiKeyOut,
    status=201,
    role=Role.ADMIN,
    errors={
        403: "Only an admin can manage API keys",
        400: "No API key of that name",
        409: "The key is revoked, or is the built-in services' key",
    },
)
def rotate_api_key(call: Call[RotateApiKeyIn]) -> Any:
    """A new key under the same name, scopes and limits; the old one is renamed and keeps
    working for `overlap_seconds` (default a day), so both live side by side meanwhile."""
    return apikeys.rotate_api_key(
        call.session,
        name=call.body.name,
        overlap=timedelta(seconds=call.body.overlap_seconds),
        created_by=call.actor.email,
        now=utcnow(),
        settings=call.settings,
    )
