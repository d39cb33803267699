"""Pulumi entry point: `pulumi up` in this directory deploys DTBase for the selected stack."""

import pulumi
from dtbase_infra.settings import load_settings
from dtbase_infra.stack import build

settings = load_settings()
outputs = build(settings)

pulumi.export("siteUrl", outputs.site_url)
pulumi.export("apiUrl", outputs.api_url)
pulumi.export("resourceGroupName", outputs.resource_group_name)
pulumi.export("functionAppName", outputs.function_app_name)
pulumi.export("staticSiteName", outputs.static_site_name)
pulumi.export("databaseServerName", outputs.database_server_name)
pulumi.export("databaseAccess", settings.database_access)
pulumi.export("hostingPlan", settings.hosting_plan)
# The Durable backend: the pipeline passes it to `infra/package.py --durable-storage`, which
# writes the matching storage provider into the package's host.json.
pulumi.export("durableStorage", settings.durable_storage)
pulumi.export("packageContainerUrl", outputs.package_container_url)
# Devices are registered in this hub and send to it (docs/api.md, Device telemetry).
pulumi.export("iotHubName", outputs.iot_hub_name)
# The app's least-privilege role, created and granted by infra/sql/app_role.sql after each
# migration (its password is the stack secret dbAppPassword).
pulumi.export("databaseName", settings.db_name)
pulumi.export("databaseAppRole", settings.db_app_login)
# Secret, the admin's URL: read by the pipeline (`pulumi stack output databaseUrl
# --show-secrets`) to migrate and to grant the app's role; the app never sees it.
pulumi.export("databaseUrl", outputs.database_url)
