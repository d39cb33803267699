"""/user: accounts (docs/api.md, Users; Roles and tokens)."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from dtbase_core import users
from dtbase_core.schemas.users import (
    ChangePasswordIn,
    CreateServiceUserIn,
    CreateUserIn,
    EmailIn,
    Me,
)
from function_app.http import Call, endpoint

bp = func.Blueprint()


@endpoint(bp, "user/list-users", method="GET", response=list[str])
def list_users(call: Call[None]) -> Any:
    """Every user's email, in the order they were created, for an admin; only your own
    for anyone else."""
    return users.list_users(call.session, call.actor)


@endpoint(
    bp,
    "user/create-user",
    body=CreateUserIn,
    status=201,
    errors={403: "Only an admin can create users", 409: "User already exists"},
)
def create_user(call: Call[CreateUserIn]) -> Any:
    """Create a user (admins only); `is_admin` makes another admin."""
    users.create_user(call.session, actor=call.actor, **call.body.model_dump())
    return {"detail": "User created"}


@endpoint(
    bp,
    "user/create-service-user",
    body=CreateServiceUserIn,
    status=201,
    errors={
        403: "Only an admin can create service users",
        409: "User already exists",
    },
)
def create_service_user(call: Call[CreateServiceUserIn]) -> Any:
    """Register an Entra ID application (by client id) as a user (admins only)."""
    users.create_service_user(call.session, actor=call.actor, **call.body.model_dump())
    return {"detail": "User created"}


@endpoint(
    bp,
    "user/delete-user",
    body=EmailIn,
    errors={400: "User doesn't exist", 403: "Only an admin can delete users"},
)
def delete_user(call: Call[EmailIn]) -> Any:
    """Delete a user (admins only); their tokens stop working at once."""
    users.delete_user(call.session, actor=call.actor, email=call.body.email)
    return {"detail": "User deleted"}


@endpoint(
    bp,
    "user/change-password",
    body=ChangePasswordIn,
    errors={400: "User doesn't exist", 403: "Only an admin can change another user's password"},
)
def change_password(call: Call[ChangePasswordIn]) -> Any:
    """Change a password: your own, or anyone's if you are an admin. Older tokens end."""
    users.change_password(call.session, actor=call.actor, **call.body.model_dump())
    return {"detail": "Password changed"}


@endpoint(bp, "user/me", method="GET", response=Me)
def me(call: Call[None]) -> Any:
    """The signed-in user's email and whether they are an admin."""
    return users.me(call.actor)
