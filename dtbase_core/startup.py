"""What a process does once, before its first request, in one transaction: on Azure at the
first request of an instance (function_app/http.py), locally when the host starts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from dtbase_core import apikeys, users
from dtbase_core.config import Settings


def on_start(session: Session, settings: Settings, now: datetime) -> None:
    """The default user from DT_DEFAULT_USER_PASS, and DT_SERVICE_API_KEY as the API key
    `built-in services`; both idempotent, so every instance may do it."""
    users.ensure_default_user(session, settings.default_user_password)
    apikeys.ensure_service_key(session, settings, now)
