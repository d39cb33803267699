"""Local-mode secrets: generated once, kept in the data directory, reused after.

Two kinds: settings (`DT_*`, put in the environment unless it has its own value), and the
Durable system key, which only the host itself reads (the management API and the URLs it
hands out), so it never enters the environment of the functions.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

FILE_NAME = "local-secrets.json"
SYSTEM_KEY = "DURABLE_SYSTEM_KEY"

_MAKERS: dict[str, Callable[[], str]] = {
    "DT_JWT_SECRET_KEY": lambda: secrets.token_urlsafe(48),
    "DT_DEFAULT_USER_PASS": lambda: secrets.token_urlsafe(12),
    SYSTEM_KEY: lambda: secrets.token_urlsafe(32),
}
SETTINGS = ("DT_JWT_SECRET_KEY", "DT_DEFAULT_USER_PASS")


def load_or_create(data_dir: Path) -> dict[str, str]:
    path = data_dir / FILE_NAME
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for key, make in _MAKERS.items():
        if not stored.get(key):
            stored[key] = make()
            changed = True
    if changed:
        path.write_text(json.dumps(stored, indent=2))
        path.chmod(0o600)
    return stored


def apply(data_dir: Path) -> dict[str, str]:
    """Set each secret setting the environment lacks; the environment's own values win.
    Returns the settings in force and the system key."""
    stored = load_or_create(data_dir)
    for key in SETTINGS:
        if not os.environ.get(key):
            os.environ[key] = stored[key]
    return {**{key: os.environ[key] for key in SETTINGS}, SYSTEM_KEY: stored[SYSTEM_KEY]}
