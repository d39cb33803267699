"""/locations endpoints (API.md §2)."""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
