"""The Function App on a serverless plan, its identity's rights, and its app settings.

Secrets never appear in app settings: each one is a Key Vault reference that the platform
resolves with the app's identity. The runtime storage is reached with that identity as well
(`AzureWebJobsStorage__*`), so no storage key exists anywhere.

The identity is user-assigned, created before the app, so that its role assignments exist
when the app first starts: the app waits for them, for the deployment container and for the
Key Vault secrets (a system-assigned identity exists only once the app does, so its first
start would always race its own rights).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi.runtime import rpc
from pulumi_azure_native import managedidentity, web

from . import access
from .durable import DurableScheduler
from .email import Email
from .monitoring import Monitoring
from .network import PrivateNetwork
from .settings import StackSettings
from .storage import PACKAGE_BLOB, RuntimeStorage
from .telemetry import CONSUMER_GROUP, EVENT_HUB, Telemetry
from .vault import Vault

ENTRY_SCRIPT = "function_app_entry.py"
PYTHON_VERSION = "3.11"

# App setting name -> Key Vault secret name. Only these settings carry secrets.
SECRET_SETTINGS = {
    "DT_DATABASE_URL": "database-url",
    "DT_JWT_SECRET_KEY": "jwt-secret-key",
    "DT_DEFAULT_USER_PASS": "default-user-pass",
    "DT_OPENWEATHERMAP_APIKEY": "openweathermap-apikey",
    "DT_ACS_ACCESS_KEY": "acs-access-key",
}


# Site configuration Flex Consumption refuses ("...property (Site.SiteConfig.NetFrameworkVersion)
# for Flex Consumption sites is invalid", pulumi/pulumi-azure-native#4168). The SDK's
# SiteConfigArgs fills in netFrameworkVersion="v4.6" by itself, so a transform strips them from
# the request whatever the SDK adds.
FLEX_REFUSED_SITE_CONFIG = ("netFrameworkVersion", "ftpsState")


@dataclass
class FunctionApp:
    plan: web.AppServicePlan
    app: web.WebApp
    identity: managedidentity.UserAssignedIdentity
    api_url: pulumi.Output[str]


def without_flex_refused_site_config(
    args: pulumi.ResourceTransformArgs,
) -> pulumi.ResourceTransformResult | None:
    """A resource transform: the request's siteConfig without FLEX_REFUSED_SITE_CONFIG."""
    site = args.props.get("siteConfig")
    if site is None:
        return None
    secret = rpc.is_rpc_secret(site)
    plain = {
        key: value
        for key, value in rpc.unwrap_rpc_secret(site).items()
        if key not in FLEX_REFUSED_SITE_CONFIG
    }
    site_config = rpc.wrap_rpc_secret(plain) if secret else plain
    return pulumi.ResourceTransformResult({**args.props, "siteConfig": site_config}, args.opts)


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
    identity: managedidentity.UserAssignedIdentity,
    cors_origins: pulumi.Input[list[str]],
    storage: RuntimeStorage,
    monitoring: Monitoring,
    vault: Vault,
    telemetry: Telemetry,
    email: Email | None = None,
    durable: DurableScheduler | None = None,
) -> dict[str, pulumi.Input[str]]:
    # No DT_BACKEND_URL: the app takes its own address from the platform's WEBSITE_HOSTNAME
    # (its real default host name, which may carry a unique suffix nobody can predict here).
    values: dict[str, pulumi.Input[str]] = {
        "AzureWebJobsStorage__accountName": storage.account.name,
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": identity.client_id,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": monitoring.insights.connection_string,
        "PYTHON_SCRIPT_FILE_NAME": ENTRY_SCRIPT,
        # Informational on Azure (the platform answers CORS from siteConfig.cors); the same
        # list the local host enforces.
        "DT_CORS_ORIGINS": pulumi.Output.from_input(cors_origins).apply(",".join),
        "DT_JWT_ACCESS_TOKEN_EXPIRES_SECONDS": "3600",
        "DT_JWT_REFRESH_TOKEN_GRACE_SECONDS": "3600",
        "DT_SERVICE_TIMEOUT_SECONDS": "30",
        # A service run's bound: one call may take all of it, so it must fit host.json's
        # functionTimeout (10 minutes, the most Linux Consumption allows).
        "DT_SERVICE_RUN_MAX_SECONDS": "600",
        # A hard bound per instance (connections.py): the pool and no overflow.
        "DT_DB_POOL_SIZE": str(settings.db_pool_size),
        "DT_DB_MAX_OVERFLOW": "0",
        # Azure's front end appends the caller to X-Forwarded-For (sign-in throttling).
        "DT_TRUSTED_PROXY_HOPS": "1",
        "DT_INGRESS_SCHEDULE": settings.ingress_schedule,
        "DT_FORECAST_SCHEDULE": settings.forecast_schedule,
        "DT_NOTIFY_SCHEDULE": settings.notify_schedule,
        "DT_ALERT_SCHEDULE": settings.alert_schedule,
        "DT_SCHEDULE_DISPATCH": settings.schedule_dispatch,
        "DT_RETENTION_SCHEDULE": settings.retention_schedule,
        "DT_OPENWEATHERMAP_LAT": settings.openweathermap_lat,
        "DT_OPENWEATHERMAP_LON": settings.openweathermap_lon,
        # The telemetry trigger's event hub, read with the app's identity (telemetry.py);
        # its binding names these, and indexing fails without them.
        "DT_TELEMETRY_CONNECTION__fullyQualifiedNamespace": telemetry.fully_qualified_namespace,
        "DT_TELEMETRY_CONNECTION__credential": "managedidentity",
        "DT_TELEMETRY_CONNECTION__clientId": identity.client_id,
        "DT_TELEMETRY_EVENT_HUB": EVENT_HUB,
        "DT_TELEMETRY_CONSUMER_GROUP": CONSUMER_GROUP,
    }
    for setting, secret_name in SECRET_SETTINGS.items():
        if secret_name in vault.secrets:
            values[setting] = vault.reference(secret_name)
    values |= entra_settings(settings)
    if durable is not None:
        values |= durable.app_settings(identity.client_id)
    if email is not None:
        # The access key is a Key Vault reference (SECRET_SETTINGS); these two are not secret.
        values["DT_ACS_ENDPOINT"] = email.endpoint
        values["DT_ACS_SENDER_ADDRESS"] = email.sender_address
    if settings.hosting_plan == "consumption":
        # Flex Consumption takes runtime and package from `function_app_config` instead.
        values |= {
            "FUNCTIONS_EXTENSION_VERSION": "~4",
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "WEBSITE_RUN_FROM_PACKAGE": storage.package_container_url.apply(
                lambda url: f"{url}/{PACKAGE_BLOB}"
            ),
            "WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID": identity.id,
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


def flex_config(
    settings: StackSettings,
    storage: RuntimeStorage,
    identity: managedidentity.UserAssignedIdentity,
) -> web.FunctionAppConfigArgs:
    return web.FunctionAppConfigArgs(
        runtime=web.FunctionsRuntimeArgs(name=web.RuntimeName.PYTHON, version=PYTHON_VERSION),
        scale_and_concurrency=web.FunctionsScaleAndConcurrencyArgs(
            maximum_instance_count=settings.max_instances,
            instance_memory_mb=settings.function_instance_memory_mb,
        ),
        deployment=web.FunctionsDeploymentArgs(
            storage=web.FunctionsDeploymentStorageArgs(
                type=web.FunctionsDeploymentStorageType.BLOB_CONTAINER,
                value=storage.package_container_url,
                authentication=web.FunctionsDeploymentStorageAuthenticationArgs(
                    type=web.AuthenticationType.USER_ASSIGNED_IDENTITY,
                    user_assigned_identity_resource_id=identity.id,
                ),
            )
        ),
    )


def create_identity(
    settings: StackSettings,
    resource_group: pulumi.Input[str],
    *,
    storage: RuntimeStorage,
    vault: Vault,
    telemetry: Telemetry,
    durable: DurableScheduler | None = None,
) -> tuple[managedidentity.UserAssignedIdentity, list[pulumi.Resource]]:
    """The app's identity and its role assignments: exactly what the app needs, each on one
    resource: read secrets from this vault, run the Functions host, the Durable task hub
    (blobs, queues, tables) and the Flex deployment container on this storage account, and
    read device telemetry from its event hub. With a Durable Task Scheduler, its data roles
    on that scheduler (the storage roles stay: the host keeps its state in the account, and
    which of them it could do without is not verified here)."""
    identity = managedidentity.UserAssignedIdentity(
        "app-identity",
        resource_name_=settings.name("api-id"),
        resource_group_name=resource_group,
        location=settings.location,
        tags=dict(settings.tags),
    )
    grants: list[pulumi.Resource] = [
        access.grant(
            "app-reads-vault-secrets",
            role=access.KEY_VAULT_SECRETS_USER,
            scope=vault.vault.id,
            principal_id=identity.principal_id,
        )
    ]
    for role_name, role in (
        ("blob", access.STORAGE_BLOB_DATA_OWNER),
        ("queue", access.STORAGE_QUEUE_DATA_CONTRIBUTOR),
        ("table", access.STORAGE_TABLE_DATA_CONTRIBUTOR),
    ):
        grants.append(
            access.grant(
                f"app-uses-storage-{role_name}",
                role=role,
                scope=storage.account.id,
                principal_id=identity.principal_id,
            )
        )
    grants.append(
        access.grant(
            "app-receives-telemetry",
            role=access.EVENT_HUBS_DATA_RECEIVER,
            scope=telemetry.event_hub.id,
            principal_id=identity.principal_id,
        )
    )
    if durable is not None:
        grants.append(
            access.grant(
                "app-uses-durable-scheduler",
                role=settings.durable_task_role_id,
                scope=durable.scheduler.id,
                principal_id=identity.principal_id,
            )
        )
    return identity, grants


def create_function_app(
    settings: StackSettings,
    resource_group: pulumi.Input[str],
    *,
    storage: RuntimeStorage,
    monitoring: Monitoring,
    vault: Vault,
    private_network: PrivateNetwork | None,
    cors_origins: pulumi.Input[list[str]],
    telemetry: Telemetry,
    email: Email | None = None,
    durable: DurableScheduler | None = None,
) -> FunctionApp:
    plan = create_plan(settings, resource_group)
    identity, grants = create_identity(
        settings, resource_group, storage=storage, vault=vault, telemetry=telemetry, durable=durable
    )
    flex = settings.hosting_plan == "flex"
    # What the app reads at its first start must exist by then.
    first_start_needs: list[pulumi.Resource] = [
        storage.package_container,
        telemetry.consumer_group,
        *vault.secrets.values(),
        *grants,
        *([durable.task_hub] if durable is not None else []),
    ]

    app = web.WebApp(
        "function-app",
        name=function_app_name(settings),
        resource_group_name=resource_group,
        location=settings.location,
        kind="functionapp,linux",
        server_farm_id=plan.id,
        reserved=True,
        https_only=True,
        identity=web.ManagedServiceIdentityArgs(
            type=web.ManagedServiceIdentityType.USER_ASSIGNED,
            user_assigned_identities=[identity.id],
        ),
        key_vault_reference_identity=identity.id,
        function_app_config=flex_config(settings, storage, identity) if flex else None,
        virtual_network_subnet_id=private_network.functions_subnet.id if private_network else None,
        site_config=web.SiteConfigArgs(
            app_settings=[
                web.NameValuePairArgs(name=key, value=value)
                for key, value in app_settings(
                    settings,
                    identity=identity,
                    cors_origins=cors_origins,
                    storage=storage,
                    monitoring=monitoring,
                    vault=vault,
                    email=email,
                    telemetry=telemetry,
                    durable=durable,
                ).items()
            ],
            linux_fx_version=None if flex else f"Python|{PYTHON_VERSION}",
            min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
            scm_min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
            # Flex has no FTP and refuses the setting; Linux Consumption gets it switched off.
            ftps_state=None if flex else web.FtpsState.DISABLED,
            # Linux Consumption's scale-out bound (Flex's is maximumInstanceCount).
            function_app_scale_limit=None if flex else settings.max_instances,
            http20_enabled=True,
            cors=web.CorsSettingsArgs(allowed_origins=cors_origins),
        ),
        tags=dict(settings.tags),
        opts=pulumi.ResourceOptions(
            depends_on=first_start_needs,
            transforms=[without_flex_refused_site_config] if flex else None,
        ),
    )
    api_url = app.default_host_name.apply(lambda host: f"https://{host}/api")
    return FunctionApp(plan=plan, app=app, identity=identity, api_url=api_url)
