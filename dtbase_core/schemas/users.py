"""Bodies of /auth and /user."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from dtbase_core.schemas.common import Body

Email = Annotated[str, Field(min_length=1, max_length=320)]
Password = Annotated[str, Field(min_length=1, max_length=1024)]


class LoginIn(Body):
    email: Email
    password: Password


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str


class CreateUserIn(Body):
    email: Email
    password: Password
    is_admin: bool = False


class EmailIn(Body):
    email: Email


class ChangePasswordIn(Body):
    email: Email
    password: Password


class Me(BaseModel):
    email: str
    is_admin: bool


# An Entra ID application (client) id: a GUID.
ClientId = Annotated[
    str, Field(pattern=r"^[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$", max_length=36)
]


class CreateServiceUserIn(Body):
    email: Email
    client_id: ClientId
    is_admin: bool = False


class EntraConfig(BaseModel):
    client_id: str
    authority: str
    scopes: list[str]


class AuthConfig(BaseModel):
    """How the web app may sign people in: `entra` is null unless Entra ID is configured."""

    entra: EntraConfig | None
