"""Fixtures for the infra tests. Self-contained: they need no database and no top-level conftest."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helpers live beside this file; make them importable under any pytest import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))
# And the program's package, for tests that read its tables (dtbase_infra.connections).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "infra"))

from pulumi_harness import Recorded, run_program


@pytest.fixture(scope="module")
def flex_stack() -> Recorded:
    return run_program()


@pytest.fixture(scope="module")
def private_stack() -> Recorded:
    return run_program({"database_access": "private"})


@pytest.fixture(scope="module")
def consumption_stack() -> Recorded:
    # Also the non-default sizes, to show they reach the resources.
    return run_program(
        {
            "hosting_plan": "consumption",
            "openweathermap_api_key": None,
            "db_sku_name": "Standard_B2s",
            "db_storage_gb": 64,
            "db_backup_retention_days": 14,
        }
    )
