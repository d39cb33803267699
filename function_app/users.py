"""/user: accounts (docs/api.md, Users; Roles and tokens)."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from dtbase_core import users
from dtbase_core.roles import Role
from dtbase_core.schemas.users import (
    ChangePasswordIn,
    CreateServiceUserIn,
    CreateUserIn,
    EmailIn,
    Me,
    UserRoleIn,
    UserRoleOut,
)
from function_app.http import Call, endpoint

bp = func.Blueprint()


@endpoint(bp, "user/list-users", method="GET", response=list[str], role=Role.VIEWER)
def list_users(call: Call[None]) -> Any:
    """Every user's email, in the order they were created, for an admin; only your own
    for anyone else."""
    return users.list_users(call.session, call.actor)


@endpoint(
    bp,
    "user/create-user",
    body=CreateUserIn,
    status=201,
    role=Role.ADMIN,
    errors={403: "Only an admin can create users", 409: "User already exists"},
)
def create_user(call: Call[CreateUserIn]) -> Any:
    """Create a user (admins only) with a `role` (default editor); `"is_admin": true`,
    as in DTBase, makes an admin."""
    users.create_user(call.session, **call.body.model_dump())
    return {"detail": "User created"}


@endpoint(
    bp,
    "user/create-service-user",
    body=CreateServiceUserIn,
    status=201,
    role=Role.ADMIN,
    errors={
        403: "Only an admin can create service users",
        409: "User already exists",
    },
)
def create_service_user(call: Call[CreateServiceUserIn]) -> Any:
    """Register an Entra ID application (by client id) as a user (admins only)."""
    users.create_service_user(call.session, **call.body.model_dump())
    return {"detail": "User created"}


@endpoint(
    bp,
    "user/delete-user",
    body=EmailIn,
    role=Role.ADMIN,
    errors={400: "User doesn't exist", 403: "Only an admin can delete users"},
)
def delete_user(call: Call[EmailIn]) -> Any:
    """Delete a user (admins only); their tokens stop working at once."""
    users.delete_user(call.session, email=call.body.email)
    return {"detail": "User deleted"}


@endpoint(
    bp,
    "user/update-user-role",
    body=UserRoleIn,
    role=Role.ADMIN,
    errors={
        400: "User doesn't exist",
        403: "Only an admin can change roles",
        409: "The last admin cannot stop being one",
    },
)
def update_user_role(call: Call[UserRoleIn]) -> Any:
    """Give a user the role viewer, editor or admin (admins only); it counts from their
    next request."""
    users.update_user_role(call.session, email=call.body.email, role=call.body.role)
    return {"detail": "Role updated"}


@endpoint(
    bp,
    "user/list-user-roles",
    method="GET",
    response=list[UserRoleOut],
    role=Role.ADMIN,
    errors={403: "Only an admin can list users' roles"},
)
def list_user_roles(call: Call[None]) -> Any:
    """Every user's email and role, in the order they were created (admins only)."""
    return users.list_user_roles(call.session)


@endpoint(
    bp,
    "user/change-password",
    body=ChangePasswordIn,
    role=Role.VIEWER,
    audit=True,  # a viewer's write: their own password
    errors={400: "User doesn't exist", 403: "Only an admin can change another user's password"},
)
def change_password(call: Call[ChangePasswordIn]) -> Any:
    """Change a password: your own, or anyone's if you are an admin. Older tokens end."""
    users.change_password(call.session, actor=call.actor, **call.body.model_dump())
    return {"detail": "Password changed"}


@endpoint(bp, "user/me", method="GET", response=Me, role=Role.VIEWER)
def me(call: Call[None]) -> Any:
    """The signed-in user's email, role, and whether they are an admin."""
    return users.me(call.actor)
