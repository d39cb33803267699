"""The three roles a user may hold (docs/api.md, Roles): each can do what the one before it
can, and more. Routes declare the least role they need (function_app/http.py)."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    VIEWER = "viewer"  # reads only
    EDITOR = "editor"  # reads and writes data, models and services: every DTBase user
    ADMIN = "admin"  # also users, API keys and notification channels

    def includes(self, needed: Role) -> bool:
        """Whether this role may do what `needed` may."""
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}
# What a user created without a role gets: what every DTBase user could do.
DEFAULT_ROLE = Role.EDITOR
