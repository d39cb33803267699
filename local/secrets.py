"""Local-mode secrets: generated once, kept in the data directory, reused after."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

FILE_NAME = "local-secrets.json"


def load_or_create(data_dir: Path) -> dict[str, str]:
    path = data_dir / FILE_NAME
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for key, make in (
        ("DT_JWT_SECRET_KEY", lambda: secrets.token_urlsafe(48)),
        ("DT_DEFAULT_USER_PASS", lambda: secrets.token_urlsafe(12)),
    ):
        if not stored.get(key):
            stored[key] = make()
            changed = True
    if changed:
        path.write_text(json.dumps(stored, indent=2))
        path.chmod(0o600)
    return stored


def apply(data_dir: Path) -> dict[str, str]:
    """Set each secret the environment lacks; the environment's own values win."""
    stored = load_or_create(data_dir)
    for key, value in stored.items():
        if not os.environ.get(key):
            os.environ[key] = value
    return {key: os.environ[key] for key in stored}
