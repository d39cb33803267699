"""/auth: sign in and refresh (docs/api.md, Auth), with sign-in throttling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func

from dtbase_core import security, users
from dtbase_core.errors import Unauthorized
from dtbase_core.roles import Role
from dtbase_core.schemas.users import AuthConfig, LoginIn, TokenPair
from dtbase_core.throttle import TOO_MANY
from dtbase_core.timeutil import utcnow
from function_app.http import Auth, Call, client_address, endpoint, in_transaction

bp = func.Blueprint()


def _lower_priority() -> None:
    """Run this thread at a lower CPU priority, where the OS allows it per thread (Linux):
    a request that needs the CPU goes before a password check."""
    # Elsewhere (not Linux, or not permitted) only the queue helps.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PASSWORD_CHECK_NICENESS)


# A flood of sign-ins queues on threads of its own rather than occupying the worker threads
# every other request needs: argon2 is slow on purpose (one thread, at a lower priority),
# and the throttle's transactions wait for each other on the address's row (two threads).
PASSWORD_CHECK_NICENESS = 10
_password_checks = ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="password-check", initializer=_lower_priority
)
_sign_in_transactions = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sign-in")


@endpoint(
    bp,
    "auth/login",
    body=LoginIn,
    response=TokenPair,
    auth=Auth.NONE,
    errors={401: users.INCORRECT_LOGIN, 429: TOO_MANY},
)
async def login(call: Call[LoginIn]) -> Any:
    """Exchange an email and password for an access and a refresh token. Repeated failures
    for one email or from one address are refused for a while (429 with Retry-After)."""
    email, password, settings = call.body.email, call.body.password, call.settings
    address = client_address(call.request, settings)
    sign_in = await in_transaction(
        lambda session: users.begin_login(
            session, email=email, address=address, now=utcnow(), settings=settings
        ),
        _sign_in_transactions,
    )
    matched = await asyncio.get_running_loop().run_in_executor(
        _password_checks, security.verify_password, sign_in.password_hash, password
    )
    if not matched or sign_in.user_id is None:
        raise Unauthorized(users.INCORRECT_LOGIN)
    return await in_transaction(
        lambda session: users.finish_login(session, sign_in, settings), _sign_in_transactions
    )


@endpoint(bp, "auth/refresh", response=TokenPair, auth=Auth.REFRESH_TOKEN, role=Role.VIEWER)
def refresh(call: Call[None]) -> Any:
    """Exchange a refresh token (in the Authorization header) for a new pair."""
    return users.refresh(call.session, user=call.actor, settings=call.settings)


@endpoint(bp, "auth/config", method="GET", response=AuthConfig, auth=Auth.NONE, db=False)
async def config(call: Call[None]) -> Any:
    """How the web app may sign in: Entra ID's client id, authority and scopes, or null."""
    return users.auth_config(call.settings)
