"""The whole deployment: builds every resource from the stack settings and returns the outputs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, resources

from .database import create_database
from .durable import create_scheduler
from .email import create_email
from .function_app import SECRET_SETTINGS, create_function_app
from .monitoring import create_monitoring
from .network import create_private_network
from .settings import StackSettings
from .static_site import create_static_site
from .storage import create_runtime_storage
from .telemetry import create_telemetry
from .vault import add_secret, create_vault


@dataclass
class StackOutputs:
    site_url: pulumi.Output[str]
    api_url: pulumi.Output[str]
    resource_group_name: pulumi.Output[str]
    function_app_name: pulumi.Output[str]
    static_site_name: pulumi.Output[str]
    database_server_name: pulumi.Output[str]
    database_url: pulumi.Output[str]  # the admin's: migrations only
    package_container_url: pulumi.Output[str]
    iot_hub_name: pulumi.Output[str]


def build(settings: StackSettings) -> StackOutputs:
    group = resources.ResourceGroup(
        "resource-group",
        resource_group_name=settings.name("rg"),
        location=settings.location,
        tags=dict(settings.tags),
    )
    rg = group.name

    monitoring = create_monitoring(settings, rg)
    storage = create_runtime_storage(settings, rg)
    private_network = (
        create_private_network(settings, rg) if settings.database_access == "private" else None
    )
    tenant_id = authorization.get_client_config_output().tenant_id
    database = create_database(settings, rg, private_network, tenant_id)

    vault = create_vault(settings, rg)
    secrets = {
        "DT_DATABASE_URL": database.app_url,  # the app's least-privilege role
        "DT_JWT_SECRET_KEY": settings.jwt_secret_key,
        "DT_DEFAULT_USER_PASS": settings.default_user_password,
        "DT_OPENWEATHERMAP_APIKEY": settings.openweathermap_api_key,
    }
    email = create_email(settings, rg) if settings.email_enabled else None
    if email is not None:
        secrets["DT_ACS_ACCESS_KEY"] = email.access_key
    for setting, value in secrets.items():
        if value is not None:
            add_secret(vault, rg, SECRET_SETTINGS[setting], value)

    site = create_static_site(settings, rg)
    site_url = pulumi.Output.concat("https://", site.default_hostname)
    cors_origins = site_url.apply(lambda url: [url, *settings.cors_origins])

    telemetry = create_telemetry(settings, rg)
    durable = create_scheduler(settings, rg) if settings.durable_storage == "scheduler" else None
    functions = create_function_app(
        settings,
        rg,
        storage=storage,
        telemetry=telemetry,
        monitoring=monitoring,
        vault=vault,
        private_network=private_network,
        cors_origins=cors_origins,
        email=email,
        durable=durable,
    )

    return StackOutputs(
        site_url=site_url,
        api_url=functions.api_url,
        resource_group_name=rg,
        function_app_name=functions.app.name,
        static_site_name=site.name,
        database_server_name=database.server.name,
        database_url=database.admin_url,
        package_container_url=storage.package_container_url,
        iot_hub_name=telemetry.hub.name,
    )
