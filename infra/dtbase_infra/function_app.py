"""The Function App on a serverless plan, its identity's rights, and its app settings.

Secrets never appear in app settings: each one is a Key Vault reference that the platform
resolves with the app's system-assigned identity. The runtime storage is reached with that
identity as well (`AzureWebJobsStorage__accountName`), so no storage key exists anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import web

from . import access
from .monitoring import Monitoring
from .network import PrivateNetwork
from .settings import StackSettings
from .storage import PACKAGE_BLOB, RuntimeStorage
from .vault import Vault

ENTRY_SCRIPT = "function_app_entry.py"
PYTHON_VERSION = "3.11"

# App setting name -> Key Vault secret name. Only these settings carry secrets.
SECRET_SETTINGS = {
    "DT_DATABASE_URL": "database-url",
    "DT_JWT_SECRET_KEY": "jwt-secret-key",
    "DT_DEFAULT_USER_PASS": "default-user-pass",
    "DT_OPENWEATHERMAP_APIKEY": "openweathermap-apikey",
}


@dataclass
class FunctionApp:
    plan: web.AppServicePlan
    app: web.WebApp
    api_url: pulumi.Output[str]


def function_app_name(settings: StackSettings) -> str:
    return settings.name("api")


def create_plan(settings: StackSettings, resource_group: pulumi.Input[str]) -> web.AppServicePlan:
    if settings.hosting_plan == "flex":
        kind, sku = "functionapp", web.SkuDescriptionArgs(name="FC1", tier="FlexConsumption")
    else:
        kind, sku = "linux", web.SkuDescriptionArgs(name="Y1", tier="Dynamic")
    return web.AppServicePlan(
        "plan",
        name=settings.name("plan"),
        resource_group_name=resource_group,
        location=settings.location,
        kind=kind,
        sku=sku,
        reserved=True,  # Linux
        tags=dict(settings.tags),
    )


def app_settings(
    settings: StackSettings,
    *,
    host_name: str,
    cors_origins: pulumi.Input[list[str]],
    storage: RuntimeStorage,
    monitoring: Monitoring,
    vault: Vault,
) -> dict[str, pulumi.Input[str]]:
    values: dict[str, pulumi.Input[str]] = {
        "AzureWebJobsStorage__accountName": storage.account.name,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": monitoring.insights.connection_string,
        "PYTHON_SCRIPT_FILE_NAME": ENTRY_SCRIPT,
        "DT_BACKEND_URL": f"https://{host_name}/api",
        "DT_CORS_ORIGINS": pulumi.Output.from_input(cors_origins).apply(",".join),
        "DT_JWT_ACCESS_TOKEN_EXPIRES_SECONDS": "3600",
        "DT_JWT_REFRESH_TOKEN_GRACE_SECONDS": "3600",
        "DT_SERVICE_TIMEOUT_SECONDS": "30",
        "DT_DB_POOL_SIZE": "5",
        # Azure's front end appends the caller to X-Forwarded-For (sign-in throttling).
        "DT_TRUSTED_PROXY_HOPS": "1",
        "DT_INGRESS_SCHEDULE": settings.ingress_schedule,
        "DT_FORECAST_SCHEDULE": settings.forecast_schedule,
        "DT_OPENWEATHERMAP_LAT": settings.openweathermap_lat,
        "DT_OPENWEATHERMAP_LON": settings.openweathermap_lon,
    }
    for setting, secret_name in SECRET_SETTINGS.items():
        if secret_name in vault.secrets:
            values[setting] = vault.reference(secret_name)
    values |= entra_settings(settings)
    if settings.hosting_plan == "consumption":
        # Flex Consumption takes runtime and package from `function_app_config` instead.
        values |= {
            "FUNCTIONS_EXTENSION_VERSION": "~4",
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "WEBSITE_RUN_FROM_PACKAGE": storage.package_container_url.apply(
                lambda url: f"{url}/{PACKAGE_BLOB}"
            ),
            "WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID": "SystemAssigned",
        }
    return values


def entra_settings(settings: StackSettings) -> dict[str, pulumi.Input[str]]:
    """Sign-in with Entra ID: ids and names only, none of them secret (the API checks
    tokens with the tenant's public keys). Nothing at all when it is not configured."""
    if not settings.entra_tenant_id or not settings.entra_audience:
        return {}
    values: dict[str, pulumi.Input[str]] = {
        "DT_ENTRA_TENANT_ID": settings.entra_tenant_id,
        "DT_ENTRA_AUDIENCE": settings.entra_audience,
        "DT_ENTRA_ADMIN_ROLE": settings.entra_admin_role,
        "DT_ENTRA_AUTO_PROVISION": "1" if settings.entra_auto_provision else "0",
    }
    if settings.entra_spa_client_id:
        values["DT_ENTRA_SPA_CLIENT_ID"] = settings.entra_spa_client_id
    if settings.entra_scopes:
        values["DT_ENTRA_SCOPES"] = settings.entra_scopes
    return values


def flex_config(settings: StackSettings, storage: RuntimeStorage) -> web.FunctionAppConfigArgs:
    return web.FunctionAppConfigArgs(
        runtime=web.FunctionsRuntimeArgs(name=web.RuntimeName.PYTHON, version=PYTHON_VERSION),
        scale_and_concurrency=web.FunctionsScaleAndConcurrencyArgs(
            maximum_instance_count=settings.function_max_instances,
            instance_memory_mb=settings.function_instance_memory_mb,
        ),
        deployment=web.FunctionsDeploymentArgs(
            storage=web.FunctionsDeploymentStorageArgs(
                type=web.FunctionsDeploymentStorageType.BLOB_CONTAINER,
                value=storage.package_container_url,
                authentication=web.FunctionsDeploymentStorageAuthenticationArgs(
                    type=web.AuthenticationType.SYSTEM_ASSIGNED_IDENTITY
                ),
            )
        ),
    )


def create_function_app(
    settings: StackSettings,
    resource_group: pulumi.Input[str],
    *,
    storage: RuntimeStorage,
    monitoring: Monitoring,
    vault: Vault,
    private_network: PrivateNetwork | None,
    cors_origins: pulumi.Input[list[str]],
) -> FunctionApp:
    plan = create_plan(settings, resource_group)
    name = function_app_name(settings)
    # The classic default host name; fixed before creation, so DT_BACKEND_URL needs no
    # second settings resource (which the app resource would overwrite on its next update).
    host_name = f"{name}.azurewebsites.net"
    flex = settings.hosting_plan == "flex"

    app = web.WebApp(
        "function-app",
        name=name,
        resource_group_name=resource_group,
        location=settings.location,
        kind="functionapp,linux",
        server_farm_id=plan.id,
        reserved=True,
        https_only=True,
        identity=web.ManagedServiceIdentityArgs(
            type=web.ManagedServiceIdentityType.SYSTEM_ASSIGNED
        ),
        function_app_config=flex_config(settings, storage) if flex else None,
        virtual_network_subnet_id=private_network.functions_subnet.id if private_network else None,
        site_config=web.SiteConfigArgs(
            app_settings=[
                web.NameValuePairArgs(name=key, value=value)
                for key, value in app_settings(
                    settings,
                    host_name=host_name,
                    cors_origins=cors_origins,
                    storage=storage,
                    monitoring=monitoring,
                    vault=vault,
                ).items()
            ],
            linux_fx_version=None if flex else f"Python|{PYTHON_VERSION}",
            min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
            scm_min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
            ftps_state=web.FtpsState.DISABLED,
            http20_enabled=True,
            cors=web.CorsSettingsArgs(allowed_origins=cors_origins),
        ),
        tags=dict(settings.tags),
    )
    principal_id = app.identity.apply(lambda identity: identity.principal_id)

    # Exactly what the app needs: read secrets from this vault, and run the Functions host,
    # the Durable task hub (blobs, queues, tables) and the Flex deployment container.
    access.grant(
        "app-reads-vault-secrets",
        role=access.KEY_VAULT_SECRETS_USER,
        scope=vault.vault.id,
        principal_id=principal_id,
    )
    for role_name, role in (
        ("blob", access.STORAGE_BLOB_DATA_OWNER),
        ("queue", access.STORAGE_QUEUE_DATA_CONTRIBUTOR),
        ("table", access.STORAGE_TABLE_DATA_CONTRIBUTOR),
    ):
        access.grant(
            f"app-uses-storage-{role_name}",
            role=role,
            scope=storage.account.id,
            principal_id=principal_id,
        )
    return FunctionApp(
        plan=plan, app=app, api_url=pulumi.Output.from_input(f"https://{host_name}/api")
    )
