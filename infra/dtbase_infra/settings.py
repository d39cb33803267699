"""Every stack setting, read from Pulumi config (`Pulumi.<stack>.yaml`) in this one place.

Names of the Azure resources are derived from `prefix`, so two stacks with different prefixes
never collide. Several names (storage, Key Vault, PostgreSQL, Function App) are global DNS
names, which is why the prefix is short and must be unique to you.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pulumi

from . import connections

HostingPlan = Literal["flex", "consumption"]
# F1: free, one per subscription, 8,000 messages a day; B*: no cloud-to-device; S*: all.
IOT_HUB_SKUS = ("F1", "B1", "B2", "B3", "S1", "S2", "S3")
DatabaseAccess = Literal["azureServices", "private"]
# The Durable Functions backend: Durable Task Scheduler (Microsoft's recommendation) or the
# runtime storage account (durable.py).
DurableStorage = Literal["scheduler", "azureStorage"]
# Consumption: billed per dispatched action, no idle cost; Dedicated: 1-3 capacity units
# (3 for high availability), billed monthly whatever the load.
SCHEDULER_SKUS = ("Consumption", "Dedicated")
SCHEDULER_CAPACITY = range(1, 4)
# The built-in role "Durable Task Data Contributor" (the same id in every tenant); a stack
# setting so that a deployment can correct it without a code change (infra/README.md).
DURABLE_TASK_DATA_CONTRIBUTOR = "0ad04412-c4d5-4796-b79c-f76d14c8d402"
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

_PREFIX = re.compile(r"^[a-z][a-z0-9-]{1,12}[a-z0-9]$")
_ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$")


@dataclass(frozen=True)
class StackSettings:
    prefix: str
    location: str
    db_admin_password: pulumi.Input[str]
    jwt_secret_key: pulumi.Input[str]
    default_user_password: pulumi.Input[str]
    # The least-privilege PostgreSQL role the app signs in as (rows only, no DDL); the
    # admin is used by migrations alone (infra/sql/app_role.sql creates and grants it).
    db_app_password: pulumi.Input[str]
    openweathermap_api_key: pulumi.Input[str] | None = None
    openweathermap_lat: str = "51.5"
    openweathermap_lon: str = "-0.12"
    # Flex Consumption is the serverless plan; "consumption" (Linux Y1) is only for regions
    # without Flex, and is retiring in September 2028.
    hosting_plan: HostingPlan = "flex"
    # Instances per scale group; unset: the most whose connection pools fit on the server
    # (connections.py). Set, it must fit too.
    function_max_instances: int | None = None
    function_instance_memory_mb: int = 2048
    # "azureServices": public endpoint, firewall admits Azure-hosted callers only (0.0.0.0-0.0.0.0).
    # "private": server inside a VNet with no public endpoint; the Function App joins the VNet.
    database_access: DatabaseAccess = "azureServices"
    db_sku_name: str = "Standard_B1ms"
    # Connections each app instance may hold (DT_DB_POOL_SIZE, with no overflow).
    db_pool_size: int = 2
    db_storage_gb: int = 32
    db_backup_retention_days: int = 7
    db_admin_login: str = "dtbaseadmin"
    db_app_login: str = "dtbase_app"
    db_name: str = "dtbase"
    ingress_schedule: str = "0 0 * * * *"
    forecast_schedule: str = "0 0 3 * * *"
    # The notification outbox's drainer (DT_NOTIFY_SCHEDULE).
    notify_schedule: str = "*/15 * * * * *"
    # Email notifications through Azure Communication Services (email.py); the data
    # location of its resources: "Europe", "UK", "United States"...
    email_enabled: bool = True
    email_data_location: str = "Europe"
    alert_schedule: str = "0 * * * * *"
    # How often the dispatcher of user schedules runs (DT_SCHEDULE_DISPATCH).
    schedule_dispatch: str = "0 * * * * *"
    # The daily retention timer: expired readings, old audit/notification rows
    # (DT_RETENTION_SCHEDULE).
    retention_schedule: str = "0 30 2 * * *"
    # Extra browser origins allowed to call the API; the Static Web App's own is always added.
    cors_origins: tuple[str, ...] = ()
    log_retention_days: int = 30
    # Static Web Apps run in a few regions only; the content is served globally anyway.
    static_site_location: str = "westeurope"
    tags: tuple[tuple[str, str], ...] = ()
    # Sign-in with Microsoft Entra ID (off unless entraTenantId is set). The app registrations
    # are made once in the Entra admin centre (infra/README.md) and named here: the API's
    # client id (its `api://...` URI may follow, comma-separated) and the web app's.
    entra_tenant_id: str | None = None
    entra_audience: str | None = None
    entra_spa_client_id: str | None = None
    entra_scopes: str | None = None
    entra_admin_role: str = "DTBase.Admin"
    entra_auto_provision: bool = False
    # Device telemetry's IoT Hub tier (telemetry.py).
    iot_hub_sku: str = "F1"
    # PostgreSQL nodes: 1 is one Flexible Server; more is an elastic cluster (Citus) of that
    # many nodes, each of size dbSkuName (database.py).
    postgres_nodes: int = 1
    durable_storage: DurableStorage = "scheduler"
    scheduler_sku: str = "Consumption"
    scheduler_capacity: int = 1  # Dedicated only
    durable_task_role_id: str = DURABLE_TASK_DATA_CONTRIBUTOR

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(
                f"prefix {self.prefix!r} must be 3-14 characters of lowercase letters, digits and "
                "hyphens, starting with a letter (it becomes part of global DNS names)"
            )
        if self.hosting_plan not in ("flex", "consumption"):
            raise ValueError(
                f"hostingPlan must be 'flex' or 'consumption', not {self.hosting_plan!r}"
            )
        if self.database_access not in ("azureServices", "private"):
            raise ValueError(
                f"databaseAccess must be 'azureServices' or 'private', not {self.database_access!r}"
            )
        if self.database_access == "private" and self.hosting_plan != "flex":
            raise ValueError("databaseAccess 'private' needs hostingPlan 'flex' (VNet integration)")
        if self.function_instance_memory_mb not in (512, 2048, 4096):
            raise ValueError("functionInstanceMemoryMb must be 512, 2048 or 4096")
        for origin in self.cors_origins:
            # The app refuses to start on anything else in DT_CORS_ORIGINS (and Azure's CORS
            # compares origins exactly: no path, no trailing slash).
            if not _ORIGIN.match(origin):
                raise ValueError(
                    f"corsOrigins entry {origin!r} must be an origin such as "
                    "https://dashboards.example (scheme and host, no path or trailing slash)"
                )
        if self.iot_hub_sku not in IOT_HUB_SKUS:
            raise ValueError(
                f"iotHubSku must be one of {', '.join(IOT_HUB_SKUS)}, not {self.iot_hub_sku!r}"
            )
        self._check_durable()
        self._check_cluster()
        self._check_connection_bound()
        if bool(self.entra_tenant_id) != bool(self.entra_audience):
            raise ValueError("entraTenantId and entraAudience are set together, or neither")
        if self.entra_spa_client_id and not self.entra_tenant_id:
            raise ValueError("entraSpaClientId needs entraTenantId and entraAudience")
        if (self.entra_tenant_id or "").lower() in ("common", "organizations", "consumers"):
            raise ValueError("entraTenantId must name one tenant (its id or domain)")

    def _check_cluster(self) -> None:
        if self.postgres_nodes < 1:
            raise ValueError("postgresNodes must be 1 (one server) or more (an elastic cluster)")
        if self.postgres_nodes > 1 and self.db_sku_tier == "Burstable":
            raise ValueError(
                f"postgresNodes {self.postgres_nodes} needs a GeneralPurpose or MemoryOptimized "
                f"dbSkuName (Standard_D*/E*), not {self.db_sku_name}: elastic clusters are not "
                "offered on Burstable sizes (infra/README.md, Elastic cluster)"
            )
        if self.postgres_nodes > 1 and self.database_access == "private":
            raise ValueError(
                "postgresNodes above 1 takes databaseAccess 'azureServices': an elastic "
                "cluster inside a VNet is not supported by this program (infra/README.md)"
            )

    @property
    def elastic_cluster(self) -> bool:
        return self.postgres_nodes > 1

    def _check_durable(self) -> None:
        if self.durable_storage not in ("scheduler", "azureStorage"):
            raise ValueError(
                "durableStorage must be 'scheduler' or 'azureStorage', "
                f"not {self.durable_storage!r}"
            )
        if self.scheduler_sku not in SCHEDULER_SKUS:
            raise ValueError(
                f"schedulerSku must be one of {', '.join(SCHEDULER_SKUS)}, "
                f"not {self.scheduler_sku!r}"
            )
        if self.scheduler_capacity not in SCHEDULER_CAPACITY:
            raise ValueError("schedulerCapacity must be 1, 2 or 3 (Dedicated capacity units)")
        if not _GUID.match(self.durable_task_role_id):
            raise ValueError(
                f"durableTaskRoleId must be a role definition id (a GUID), "
                f"not {self.durable_task_role_id!r}"
            )

    def _check_connection_bound(self) -> None:
        if self.db_sku_name not in connections.USER_CONNECTIONS:
            offered = ", ".join(connections.USER_CONNECTIONS)
            raise ValueError(
                f"dbSkuName {self.db_sku_name!r} is not offered; choose one of {offered}"
            )
        if self.db_pool_size < 1:
            raise ValueError("dbPoolSize must be at least 1")
        ceiling = (
            connections.FLEX_MAX_INSTANCES
            if self.hosting_plan == "flex"
            else connections.CONSUMPTION_MAX_INSTANCES
        )
        instances = self.max_instances
        if not 1 <= instances <= ceiling:
            fits = connections.largest_instance_count(
                self.db_sku_name, self.hosting_plan, self.db_pool_size
            )
            raise ValueError(
                f"functionMaxInstances must be between 1 and {ceiling}, not {instances} "
                f"(with dbPoolSize {self.db_pool_size}, {self.db_sku_name} fits {fits})"
            )
        peak = connections.peak_connections(self.hosting_plan, instances, self.db_pool_size)
        budget = connections.connection_budget(self.db_sku_name)
        if peak > budget:
            raise ValueError(
                f"functionMaxInstances {instances} x {connections.scale_groups(self.hosting_plan)} "
                f"scale groups x dbPoolSize {self.db_pool_size} = {peak} connections, more than "
                f"{self.db_sku_name} allows the app ({budget}); lower them or choose a bigger "
                "dbSkuName (infra/README.md, Bounded connections)"
            )

    @property
    def max_instances(self) -> int:
        if self.function_max_instances is not None:
            return self.function_max_instances
        return connections.largest_instance_count(
            self.db_sku_name, self.hosting_plan, self.db_pool_size
        )

    @property
    def db_sku_tier(self) -> str:
        return connections.tier_of(self.db_sku_name)

    @property
    def compact_prefix(self) -> str:
        """The prefix without hyphens, for names that allow only letters and digits."""
        return self.prefix.replace("-", "")

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"


def load_settings() -> StackSettings:
    """Read the current stack's configuration (namespace `dtbase`)."""
    config = pulumi.Config("dtbase")

    def text(key: str, default: str) -> str:
        return config.get(key) or default

    def number(key: str, default: int) -> int:
        return config.get_int(key) or default

    defaults = StackSettings.__dataclass_fields__
    return StackSettings(
        prefix=config.require("prefix"),
        location=config.require("location"),
        db_admin_password=config.require_secret("dbAdminPassword"),
        jwt_secret_key=config.require_secret("jwtSecretKey"),
        default_user_password=config.require_secret("defaultUserPassword"),
        db_app_password=config.require_secret("dbAppPassword"),
        openweathermap_api_key=config.get_secret("openWeatherMapApiKey"),
        openweathermap_lat=text("openWeatherMapLat", str(defaults["openweathermap_lat"].default)),
        openweathermap_lon=text("openWeatherMapLon", str(defaults["openweathermap_lon"].default)),
        hosting_plan=text("hostingPlan", "flex"),  # type: ignore[arg-type]
        function_max_instances=config.get_int("functionMaxInstances"),
        function_instance_memory_mb=number("functionInstanceMemoryMb", 2048),
        database_access=text("databaseAccess", "azureServices"),  # type: ignore[arg-type]
        db_sku_name=text("dbSkuName", "Standard_B1ms"),
        db_pool_size=number("dbPoolSize", 2),
        db_storage_gb=number("dbStorageGb", 32),
        db_backup_retention_days=number("dbBackupRetentionDays", 7),
        ingress_schedule=text("ingressSchedule", str(defaults["ingress_schedule"].default)),
        forecast_schedule=text("forecastSchedule", str(defaults["forecast_schedule"].default)),
        notify_schedule=text("notifySchedule", str(defaults["notify_schedule"].default)),
        email_enabled=config.get_bool("emailEnabled") is not False,
        email_data_location=text("emailDataLocation", str(defaults["email_data_location"].default)),
        alert_schedule=text("alertSchedule", str(defaults["alert_schedule"].default)),
        schedule_dispatch=text("scheduleDispatch", str(defaults["schedule_dispatch"].default)),
        retention_schedule=text("retentionSchedule", str(defaults["retention_schedule"].default)),
        cors_origins=tuple(config.get_object("corsOrigins") or ()),
        log_retention_days=number("logRetentionDays", 30),
        static_site_location=text("staticSiteLocation", "westeurope"),
        tags=tuple(sorted((config.get_object("tags") or {}).items())),
        entra_tenant_id=config.get("entraTenantId"),
        entra_audience=config.get("entraAudience"),
        entra_spa_client_id=config.get("entraSpaClientId"),
        entra_scopes=config.get("entraScopes"),
        entra_admin_role=text("entraAdminRole", "DTBase.Admin"),
        entra_auto_provision=config.get_bool("entraAutoProvision") or False,
        iot_hub_sku=text("iotHubSku", str(defaults["iot_hub_sku"].default)),
        postgres_nodes=number("postgresNodes", 1),
        durable_storage=text("durableStorage", "scheduler"),  # type: ignore[arg-type]
        scheduler_sku=text("schedulerSku", str(defaults["scheduler_sku"].default)),
        scheduler_capacity=number("schedulerCapacity", 1),
        durable_task_role_id=text("durableTaskRoleId", DURABLE_TASK_DATA_CONTRIBUTOR),
    )
