"""How many PostgreSQL connections the Function App can open at most, and what each server
size allows: the bound `settings.py` enforces before anything is deployed.

Every instance holds its own SQLAlchemy pool of `dbPoolSize` connections (no overflow:
infra sets DT_DB_MAX_OVERFLOW=0). Flex Consumption scales each *scale group* on its own up
to `maximumInstanceCount` (Microsoft's "Per-function scaling": the HTTP functions together,
the Durable functions together, every other function alone), so the worst case is
instances x groups x pool. Linux Consumption scales the app as one (`functionAppScaleLimit`).
"""

from __future__ import annotations

# Maximum *user* connections per server size: Azure's "Limits in Azure Database for
# PostgreSQL flexible server" page (max_connections less the 15 Azure reserves for
# replication and monitoring). These are the sizes the program offers (`dbSkuName`).
USER_CONNECTIONS: dict[str, int] = {
    "Standard_B1ms": 35,
    "Standard_B2s": 414,
    "Standard_B2ms": 844,
    "Standard_B4ms": 1703,
    "Standard_D2ds_v5": 844,
    "Standard_D4ds_v5": 1703,
    "Standard_D8ds_v5": 3422,
    "Standard_E2ds_v5": 1703,
    "Standard_E4ds_v5": 3422,
}
TIERS: dict[str, str] = {"B": "Burstable", "D": "GeneralPurpose", "E": "MemoryOptimized"}

# Kept free for `dtbase-migrate` (the admin), the deploy step that grants the app's role,
# and an operator's psql session.
ADMIN_RESERVE = 5

# DTBase's scale groups on Flex Consumption: HTTP, Durable, and its two timer functions
# (weather ingress, daily forecast). A new non-HTTP trigger adds one.
FLEX_SCALE_GROUPS = 4

# Flex Consumption's ceiling for maximumInstanceCount.
FLEX_MAX_INSTANCES = 1000
# Linux Consumption's ceiling for functionAppScaleLimit.
CONSUMPTION_MAX_INSTANCES = 200
# The most instances the program asks for by default, even on a large server.
DEFAULT_INSTANCE_CEILING = 100


def tier_of(sku_name: str) -> str:
    return TIERS[sku_name.removeprefix("Standard_")[0]]


def scale_groups(hosting_plan: str) -> int:
    return FLEX_SCALE_GROUPS if hosting_plan == "flex" else 1


def connection_budget(sku_name: str) -> int:
    """Connections the app's instances may hold together on this server size."""
    return USER_CONNECTIONS[sku_name] - ADMIN_RESERVE


def peak_connections(hosting_plan: str, max_instances: int, pool_size: int) -> int:
    return max_instances * scale_groups(hosting_plan) * pool_size


def largest_instance_count(sku_name: str, hosting_plan: str, pool_size: int) -> int:
    """The most instances (per scale group) whose pools fit on the server, capped at
    DEFAULT_INSTANCE_CEILING: the default for `functionMaxInstances`."""
    fitting = connection_budget(sku_name) // (scale_groups(hosting_plan) * pool_size)
    return min(fitting, DEFAULT_INSTANCE_CEILING)
