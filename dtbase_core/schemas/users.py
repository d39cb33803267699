"""Bodies of /auth and /user."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, Field, model_validator

from dtbase_core.roles import DEFAULT_ROLE, Role
from dtbase_core.schemas.common import Body

Email = Annotated[str, Field(min_length=1, max_length=320)]
Password = Annotated[str, Field(min_length=1, max_length=1024)]


class LoginIn(Body):
    email: Email
    password: Password


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str


class WithRole(Body):
    """`role` (default editor), or DTBase's `"is_admin": true` for admin; both may be
    given only if they agree. `role` is always set once validated."""

    role: Role | None = None
    is_admin: bool = Field(default=False, exclude=True)

    @model_validator(mode="after")
    def _one_role(self) -> Self:
        if self.is_admin and self.role not in (None, Role.ADMIN):
            raise ValueError(f'"is_admin": true contradicts "role": "{self.role}"')
        if self.role is None:
            self.role = Role.ADMIN if self.is_admin else DEFAULT_ROLE
        return self


class CreateUserIn(WithRole):
    email: Email
    password: Password


class EmailIn(Body):
    email: Email


class ChangePasswordIn(Body):
    email: Email
    password: Password


class UserRoleIn(Body):
    email: Email
    role: Role


class UserRoleOut(BaseModel):
    email: str
    role: Role


class Me(BaseModel):
    email: str
    is_admin: bool
    role: Role


# An Entra ID application (client) id: a GUID.
ClientId = Annotated[
    str, Field(pattern=r"^[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$", max_length=36)
]


class CreateServiceUserIn(WithRole):
    email: Email
    client_id: ClientId


class EntraConfig(BaseModel):
    client_id: str
    authority: str
    scopes: list[str]


class AuthConfig(BaseModel):
    """How the web app may sign people in: `entra` is null unless Entra ID is configured."""

    entra: EntraConfig | None
