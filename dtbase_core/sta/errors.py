"""The SensorThings API's errors: a request it cannot answer (400), nothing at a path (404)."""

from __future__ import annotations

from dtbase_core.errors import DomainError, Missing


class BadQuery(DomainError):
    """A query option or path the service cannot read: a 400 naming the problem."""

    status_code = 400


class NoEntity(Missing):
    """No entity set, entity or property at the path: a 404."""
