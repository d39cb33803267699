"""/auth: sign in and refresh (API.md §2.1)."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from dtbase_core import users
from dtbase_core.schemas.users import AuthConfig, LoginIn, TokenPair
from function_app.http import Auth, Call, endpoint

bp = func.Blueprint()


@endpoint(
    bp,
    "auth/login",
    body=LoginIn,
    response=TokenPair,
    auth=Auth.NONE,
    errors={401: "Incorrect email or password"},
)
def login(call: Call[LoginIn]) -> Any:
    """Exchange an email and password for an access and a refresh token."""
    return users.login(
        call.session, email=call.body.email, password=call.body.password, settings=call.settings
    )


@endpoint(bp, "auth/refresh", response=TokenPair, auth=Auth.REFRESH_TOKEN)
def refresh(call: Call[None]) -> Any:
    """Exchange a refresh token (in the Authorization header) for a new pair."""
    return users.refresh(call.session, user=call.actor, settings=call.settings)


@endpoint(bp, "auth/config", method="GET", response=AuthConfig, auth=Auth.NONE, db=False)
async def config(call: Call[None]) -> Any:
    """How the web app may sign in: Entra ID's client id, authority and scopes, or null."""
    return users.auth_config(call.settings)
