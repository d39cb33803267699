"""The Pulumi program, run offline under Pulumi's mocks: every resource and its key properties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pulumi_harness import (
    ACS_KEY,
    ACS_SENDER_DOMAIN,
    DB_APP_PASSWORD,
    DB_PASSWORD,
    DEFAULT_USER_PASSWORD,
    HOST_SUFFIX,
    INFRA,
    JWT_SECRET,
    OWM_KEY,
    REPO,
    Recorded,
    is_secret,
    run_program,
    stack_settings,
)

WEB_APP = "azure-native:web:WebApp"
PLAN = "azure-native:web:AppServicePlan"
STORAGE = "azure-native:storage:StorageAccount"
SERVER = "azure-native:dbforpostgresql:Server"
FIREWALL = "azure-native:dbforpostgresql:FirewallRule"
VAULT = "azure-native:keyvault:Vault"
SECRET = "azure-native:keyvault:Secret"
ROLE = "azure-native:authorization:RoleAssignment"

KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
STORAGE_DATA_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Storage Table Data Contributor
}
SECRET_SETTINGS = {
    "DT_DATABASE_URL",
    "DT_JWT_SECRET_KEY",
    "DT_DEFAULT_USER_PASS",
    "DT_OPENWEATHERMAP_APIKEY",
    "DT_ACS_ACCESS_KEY",
}
PLAIN_SECRETS = [DB_PASSWORD, DB_APP_PASSWORD, JWT_SECRET, DEFAULT_USER_PASSWORD, OWM_KEY, ACS_KEY]
ACS = "azure-native:communication:CommunicationService"
EMAIL_SERVICE = "azure-native:communication:EmailService"
EMAIL_DOMAIN = "azure-native:communication:Domain"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
PRINCIPAL = "principal-of-dtbase-test-api-id"


def app_settings(stack: Recorded) -> dict[str, str]:
    pairs = stack.one(WEB_APP)["siteConfig"]["appSettings"]
    settings = {pair["name"]: pair["value"] for pair in pairs}
    assert len(settings) == len(pairs), "an app setting is defined twice"
    return settings


def app_identity(stack: Recorded) -> str:
    """The Function App's identity (the IoT Hub has one of its own)."""
    return stack.ids[IDENTITY][stack.names[IDENTITY].index("app-identity")]


def role_id(assignment: dict) -> str:
    return assignment["roleDefinitionId"].rsplit("/", 1)[-1]


# --- inventory ---------------------------------------------------------------------------


def test_every_resource_of_the_issue_exists(flex_stack: Recorded):
    for type_token in [
        "azure-native:resources:ResourceGroup",
        "azure-native:operationalinsights:Workspace",
        "azure-native:applicationinsights:Component",
        STORAGE,
        SERVER,
        "azure-native:dbforpostgresql:Database",
        VAULT,
        PLAN,
        WEB_APP,
        "azure-native:web:StaticSite",
        IDENTITY,
        ACS,
        EMAIL_SERVICE,
        EMAIL_DOMAIN,
    ]:
        assert flex_stack.all(type_token), f"no {type_token}"
    # Five secrets: database URL, JWT secret, default user password, OpenWeatherMap key and
    # the Communication Service's access key.
    assert {s["secretName"] for s in flex_stack.all(SECRET)} == {
        "database-url",
        "jwt-secret-key",
        "default-user-pass",
        "openweathermap-apikey",
        "acs-access-key",
    }


def test_names_come_from_the_prefix(flex_stack: Recorded):
    assert (
        flex_stack.one("azure-native:resources:ResourceGroup")["resourceGroupName"]
        == "dtbase-test-rg"
    )
    assert flex_stack.one(WEB_APP)["name"] == "dtbase-test-api"
    assert flex_stack.one(SERVER)["serverName"] == "dtbase-test-pg"
    assert flex_stack.one(VAULT)["vaultName"] == "dtbase-test-kv"
    account = flex_stack.one(STORAGE)["accountName"]
    assert account == "dtbasetestfunc" and account.isalnum() and len(account) <= 24


def test_outputs_are_the_site_and_api_urls(flex_stack: Recorded):
    assert flex_stack.outputs["site_url"] == "https://gentle-sky-0a1b2c3d4.5.azurestaticapps.net"
    # The app's real default host name, read back from Azure (it may carry a unique suffix).
    assert flex_stack.outputs["api_url"] == f"https://dtbase-test-api{HOST_SUFFIX}/api"


# --- the Function App ----------------------------------------------------------------------


def test_plan_is_flex_consumption(flex_stack: Recorded):
    plan = flex_stack.one(PLAN)
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["reserved"] is True


def test_fallback_plan_is_linux_consumption(consumption_stack: Recorded):
    plan = consumption_stack.one(PLAN)
    assert plan["sku"] == {"name": "Y1", "tier": "Dynamic"}
    assert plan["reserved"] is True and plan["kind"] == "linux"


def test_function_app_is_https_only_linux_python_311_with_its_identity(flex_stack: Recorded):
    app = flex_stack.one(WEB_APP)
    identity_id = app_identity(flex_stack)
    assert app["kind"] == "functionapp,linux"
    assert app["httpsOnly"] is True
    assert app["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity_id]}
    assert app["keyVaultReferenceIdentity"] == identity_id
    assert app["serverFarmId"] == flex_stack.ids[PLAN][0]
    site = app["siteConfig"]
    assert site["minTlsVersion"] == "1.2" and site["scmMinTlsVersion"] == "1.2"
    config = app["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    # B1ms with the default pool of 2: 3 instances per scale group (connections.py).
    assert config["scaleAndConcurrency"] == {"maximumInstanceCount": 3, "instanceMemoryMB": 2048}
    deployment = config["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": identity_id,
    }
    assert deployment["value"] == "https://dtbasetestfunc.blob.core.windows.net/app-package"


def test_consumption_app_declares_its_runtime_in_settings(consumption_stack: Recorded):
    app = consumption_stack.one(WEB_APP)
    assert "functionAppConfig" not in app
    assert app["siteConfig"]["linuxFxVersion"] == "Python|3.11"
    settings = app_settings(consumption_stack)
    assert settings["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert settings["FUNCTIONS_EXTENSION_VERSION"] == "~4"
    assert settings["WEBSITE_RUN_FROM_PACKAGE"].endswith("/app-package/functionapp.zip")
    assert settings["WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID"] == app_identity(
        consumption_stack
    )
    assert app["siteConfig"]["ftpsState"] == "Disabled"
    # The optional OpenWeatherMap key was not configured: no secret, no setting.
    assert "DT_OPENWEATHERMAP_APIKEY" not in settings
    assert "openweathermap-apikey" not in {s["secretName"] for s in consumption_stack.all(SECRET)}


def test_app_settings_hold_the_app_configuration(flex_stack: Recorded):
    settings = app_settings(flex_stack)
    assert settings["PYTHON_SCRIPT_FILE_NAME"] == "function_app_entry.py"
    assert settings["DT_INGRESS_SCHEDULE"] == "0 0 * * * *"
    assert settings["DT_FORECAST_SCHEDULE"] == "0 0 3 * * *"
    assert settings["DT_NOTIFY_SCHEDULE"] == "*/15 * * * * *"
    assert settings["DT_ALERT_SCHEDULE"] == "0 * * * * *"
    assert settings["DT_SCHEDULE_DISPATCH"] == "0 * * * * *"
    assert settings["DT_RETENTION_SCHEDULE"] == "0 30 2 * * *"
    # No guessed host name: the app reads its own from the platform's WEBSITE_HOSTNAME.
    assert "DT_BACKEND_URL" not in settings
    assert settings["DT_CORS_ORIGINS"] == "https://gentle-sky-0a1b2c3d4.5.azurestaticapps.net"
    assert settings["DT_JWT_ACCESS_TOKEN_EXPIRES_SECONDS"] == "3600"
    assert settings["DT_JWT_REFRESH_TOKEN_GRACE_SECONDS"] == "3600"
    assert settings["DT_SERVICE_TIMEOUT_SECONDS"] == "30"
    assert settings["DT_SERVICE_RUN_MAX_SECONDS"] == "600"
    assert settings["DT_DB_POOL_SIZE"] == "2" and settings["DT_DB_MAX_OVERFLOW"] == "0"
    assert settings["DT_TRUSTED_PROXY_HOPS"] == "1"
    assert settings["DT_OPENWEATHERMAP_LAT"] and settings["DT_OPENWEATHERMAP_LON"]
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"].startswith("InstrumentationKey=")
    # Flex Consumption takes the runtime from functionAppConfig; these settings are rejected there.
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings
    assert "FUNCTIONS_EXTENSION_VERSION" not in settings
    # Host storage through the identity, never a connection string.
    assert settings["AzureWebJobsStorage__accountName"] == "dtbasetestfunc"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "client-of-dtbase-test-api-id"
    assert "AzureWebJobsStorage" not in settings
    allowed = flex_stack.one(WEB_APP)["siteConfig"]["cors"]["allowedOrigins"]
    assert allowed == ["https://gentle-sky-0a1b2c3d4.5.azurestaticapps.net"]


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack_name", ["flex_stack", "private_stack", "consumption_stack"])
def test_no_secret_in_plain_app_settings(stack_name: str, request: pytest.FixtureRequest):
    stack: Recorded = request.getfixturevalue(stack_name)
    settings = app_settings(stack)
    vault_uri = "https://dtbase-test-kv.vault.azure.net/"
    for name in SECRET_SETTINGS & settings.keys():
        assert settings[name].startswith(f"@Microsoft.KeyVault(SecretUri={vault_uri}secrets/"), name
        assert settings[name].endswith("/)"), name
    assert {"DT_DATABASE_URL", "DT_JWT_SECRET_KEY", "DT_DEFAULT_USER_PASS"} <= settings.keys()
    everything = json.dumps(stack.one(WEB_APP))
    for plain in PLAIN_SECRETS:
        assert plain not in everything
        assert plain.replace("@", "%40") not in everything
    for marker in ("AccountKey=", "postgresql://", "SharedAccessSignature", "sig="):
        assert marker not in everything


def test_vault_secrets_hold_the_values_and_are_marked_secret(flex_stack: Recorded):
    by_name = {s["secretName"]: s for s in flex_stack.all(SECRET)}
    for raw in flex_stack.raw[SECRET]:
        assert is_secret(raw["properties"]) or is_secret(raw["properties"]["value"])
    assert by_name["jwt-secret-key"]["properties"]["value"] == JWT_SECRET
    assert by_name["default-user-pass"]["properties"]["value"] == DEFAULT_USER_PASSWORD
    assert by_name["openweathermap-apikey"]["properties"]["value"] == OWM_KEY
    assert by_name["acs-access-key"]["properties"]["value"] == ACS_KEY
    # The app's URL names its least-privilege role; the admin's is a stack output only.
    url = by_name["database-url"]["properties"]["value"]
    assert url == (
        "postgresql://dtbase_app:db-app-pass-9e8d7c@dtbase-test-pg.postgres.database.azure.com"
        ":5432/dtbase?sslmode=verify-full&sslrootcert=system"
    )
    assert flex_stack.outputs["database_url"] == (
        "postgresql://dtbaseadmin:db-P%40ss%3Aw%2Frd-5f1c"
        "@dtbase-test-pg.postgres.database.azure.com:5432/dtbase"
        "?sslmode=verify-full&sslrootcert=system"
    )


def test_vault_uses_rbac_and_soft_delete(flex_stack: Recorded):
    properties = flex_stack.one(VAULT)["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert not properties.get("accessPolicies")
    assert properties["tenantId"] == "00000000-0000-0000-0000-000000000002"


# --- identity and rights ----------------------------------------------------------------------


def test_identity_may_only_read_secrets_of_this_vault(flex_stack: Recorded):
    vault_id = flex_stack.ids[VAULT][0]
    principal = PRINCIPAL
    assignments = flex_stack.all(ROLE)
    on_vault = [a for a in assignments if a["scope"] == vault_id]
    assert len(on_vault) == 1
    assert role_id(on_vault[0]) == KEY_VAULT_SECRETS_USER
    assert on_vault[0]["principalId"] == principal
    assert on_vault[0]["principalType"] == "ServicePrincipal"
    # Key Vault Secrets User is granted nowhere else, and nothing is granted above resource level.
    assert [a for a in assignments if role_id(a) == KEY_VAULT_SECRETS_USER] == on_vault
    for assignment in assignments:
        assert "/providers/" in assignment["scope"], f"role at group/subscription: {assignment}"
    # Every role is the app's but one: the IoT Hub's, to send to the telemetry event hub.
    (other,) = [a for a in assignments if a["principalId"] != principal]
    assert role_id(other) == "2b629674-e913-4c01-ae53-ef4638d8f975"  # Event Hubs Data Sender


def test_identity_uses_storage_with_data_roles_on_that_account_only(flex_stack: Recorded):
    account_id = flex_stack.ids[STORAGE][0]
    on_storage = [a for a in flex_stack.all(ROLE) if a["scope"] == account_id]
    assert {role_id(a) for a in on_storage} == STORAGE_DATA_ROLES
    # And one each for telemetry: the app receives, the IoT Hub sends (test_azure_rules.py),
    # and the app's on the Durable Task Scheduler (test_durable.py).
    assert len(flex_stack.all(ROLE)) == 1 + len(STORAGE_DATA_ROLES) + 2 + 1


# --- storage ----------------------------------------------------------------------------------


def test_storage_is_https_only_tls12_and_private(flex_stack: Recorded):
    account = flex_stack.one(STORAGE)
    assert account["enableHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False
    assert account["kind"] == "StorageV2"
    container = flex_stack.one("azure-native:storage:BlobContainer")
    assert container["containerName"] == "app-package"
    assert container["publicAccess"] == "None"


# --- PostgreSQL -------------------------------------------------------------------------------


def test_postgres_is_16_burstable_b1ms_with_backups(flex_stack: Recorded):
    server = flex_stack.one(SERVER)
    assert server["version"] == "16"
    assert server["sku"] == {"name": "Standard_B1ms", "tier": "Burstable"}
    assert server["storage"]["storageSizeGB"] == 32
    assert server["backup"]["backupRetentionDays"] >= 7
    assert server["administratorLogin"] == "dtbaseadmin"
    assert server["administratorLoginPassword"] == DB_PASSWORD
    assert is_secret(flex_stack.raw[SERVER][0]["administratorLoginPassword"])
    database = flex_stack.one("azure-native:dbforpostgresql:Database")
    assert database["databaseName"] == "dtbase" and database["charset"] == "UTF8"


def test_postgres_size_is_configurable(consumption_stack: Recorded):
    server = consumption_stack.one(SERVER)
    assert server["sku"] == {"name": "Standard_B2s", "tier": "Burstable"}
    assert server["storage"]["storageSizeGB"] == 64
    assert server["backup"]["backupRetentionDays"] == 14


@pytest.mark.parametrize("stack_name", ["flex_stack", "private_stack", "consumption_stack"])
def test_firewall_never_opens_a_range(stack_name: str, request: pytest.FixtureRequest):
    stack: Recorded = request.getfixturevalue(stack_name)
    for rule in stack.all(FIREWALL):
        # Only Azure's special "allow Azure services" rule, never an internet range.
        assert (rule["startIpAddress"], rule["endIpAddress"]) == ("0.0.0.0", "0.0.0.0"), rule


def test_public_mode_admits_azure_services_only(flex_stack: Recorded):
    assert flex_stack.one(SERVER)["network"] == {"publicNetworkAccess": "Enabled"}
    rule = flex_stack.one(FIREWALL)
    assert rule["firewallRuleName"] == "AllowAllAzureServicesAndResourcesWithinAzureIps"


def test_private_mode_has_no_public_endpoint(private_stack: Recorded):
    assert not private_stack.all(FIREWALL)
    network = private_stack.one(SERVER)["network"]
    assert network["publicNetworkAccess"] == "Disabled"
    subnets = dict(
        zip(
            private_stack.names["azure-native:network:Subnet"],
            private_stack.ids["azure-native:network:Subnet"],
            strict=True,
        )
    )
    assert network["delegatedSubnetResourceId"] == subnets["database-subnet"]
    assert (
        network["privateDnsZoneArmResourceId"]
        == private_stack.ids["azure-native:privatedns:PrivateZone"][0]
    )
    zone = private_stack.one("azure-native:privatedns:PrivateZone")
    assert zone["privateZoneName"].endswith(".postgres.database.azure.com")
    link = private_stack.one("azure-native:privatedns:VirtualNetworkLink")
    assert (
        link["virtualNetwork"]["id"] == private_stack.ids["azure-native:network:VirtualNetwork"][0]
    )
    delegations = {
        name: subnet["delegations"][0]["serviceName"]
        for name, subnet in zip(
            private_stack.names["azure-native:network:Subnet"],
            private_stack.all("azure-native:network:Subnet"),
            strict=True,
        )
    }
    assert delegations == {
        "functions-subnet": "Microsoft.App/environments",
        "database-subnet": "Microsoft.DBforPostgreSQL/flexibleServers",
    }
    assert private_stack.one(WEB_APP)["virtualNetworkSubnetId"] == subnets["functions-subnet"]


# --- monitoring and the static site -----------------------------------------------------------


def test_insights_is_workspace_based(flex_stack: Recorded):
    insights = flex_stack.one("azure-native:applicationinsights:Component")
    assert (
        insights["workspaceResourceId"]
        == flex_stack.ids["azure-native:operationalinsights:Workspace"][0]
    )
    workspace = flex_stack.one("azure-native:operationalinsights:Workspace")
    assert workspace["sku"] == {"name": "PerGB2018"} and workspace["retentionInDays"] == 30


def test_static_site_is_free_and_not_linked_to_the_api(flex_stack: Recorded):
    site = flex_stack.one("azure-native:web:StaticSite")
    assert site["sku"] == {"name": "Free", "tier": "Free"}
    # A linked backend puts the API behind the site's proxy, which replaces the
    # Authorization header (Azure/static-web-apps#34): the bearer tokens would never arrive.
    assert not flex_stack.all("azure-native:web:StaticSiteLinkedBackend")


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"prefix": "DTBase"}, "prefix"),
        ({"prefix": "a-prefix-far-too-long"}, "prefix"),
        ({"hosting_plan": "premium"}, "hostingPlan"),
        ({"database_access": "public"}, "databaseAccess"),
        ({"database_access": "private", "hosting_plan": "consumption"}, "flex"),
        ({"function_instance_memory_mb": 1024}, "Memory"),
        ({"cors_origins": ("https://dashboards.example/",)}, "corsOrigins"),
        ({"cors_origins": ("*",)}, "corsOrigins"),
        ({"cors_origins": ("https://dashboards.example/app",)}, "corsOrigins"),
    ],
)
def test_invalid_settings_are_refused(flex_stack: Recorded, overrides: dict, message: str):
    with pytest.raises(ValueError, match=message):
        stack_settings(**overrides)


def test_example_stack_file_loads_and_holds_no_plain_secret(flex_stack: Recorded):
    import pulumi
    import yaml
    from dtbase_infra.settings import load_settings

    config = yaml.safe_load((INFRA / "Pulumi.dev.yaml").read_text())["config"]
    for key in (
        "dtbase:dbAdminPassword",
        "dtbase:dbAppPassword",
        "dtbase:jwtSecretKey",
        "dtbase:defaultUserPassword",
        "dtbase:openWeatherMapApiKey",
    ):
        assert key not in config or set(config[key]) == {"secure"}, key
    secrets = {
        "dtbase:dbAdminPassword": "a",
        "dtbase:dbAppPassword": "d",
        "dtbase:jwtSecretKey": "b",
        "dtbase:defaultUserPassword": "c",
    }
    flat = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()
    }
    pulumi.runtime.set_all_config({**flat, **secrets}, secret_keys=list(secrets))
    try:
        settings = load_settings()
    finally:
        pulumi.runtime.set_all_config({})
    assert settings.prefix == "dtbase-dev" and settings.location == "uksouth"
    assert settings.hosting_plan == "flex" and settings.database_access == "azureServices"
    assert settings.db_sku_name == "Standard_B1ms" and settings.db_storage_gb == 32
    assert settings.db_pool_size == 2 and settings.max_instances == 3
    assert settings.ingress_schedule == "0 0 * * * *"
    assert dict(settings.tags) == {"project": "dtbase", "stack": "dev"}
    assert (settings.durable_storage, settings.scheduler_sku) == ("scheduler", "Consumption")
    assert settings.postgres_nodes == 1 and not settings.elastic_cluster
    assert isinstance(settings.db_admin_password, pulumi.Output)  # stays secret


def test_program_entry_point_exports_both_urls():
    source = (INFRA / "__main__.py").read_text()
    assert 'pulumi.export("siteUrl"' in source and 'pulumi.export("apiUrl"' in source
    assert Path(INFRA / "Pulumi.yaml").read_text().startswith("name: dtbase-azure")


# --- email (Azure Communication Services) ------------------------------------------------


def test_email_is_a_communication_service_linked_to_an_azure_managed_domain(flex_stack: Recorded):
    email_service = flex_stack.one(EMAIL_SERVICE)
    assert email_service["emailServiceName"] == "dtbase-test-email"
    assert (email_service["location"], email_service["dataLocation"]) == ("global", "Europe")
    domain = flex_stack.one(EMAIL_DOMAIN)
    assert domain["domainName"] == "AzureManagedDomain"
    assert domain["domainManagement"] == "AzureManaged"
    assert domain["emailServiceName"] == "dtbase-test-email"
    assert domain["userEngagementTracking"] == "Disabled"  # no tracking pixels in alerts
    service = flex_stack.one(ACS)
    assert service["communicationServiceName"] == "dtbase-test-acs"
    assert (service["location"], service["dataLocation"]) == ("global", "Europe")
    assert service["linkedDomains"] == flex_stack.ids[EMAIL_DOMAIN]


def test_the_app_is_configured_to_send_email(flex_stack: Recorded):
    settings = app_settings(flex_stack)
    assert settings["DT_ACS_ENDPOINT"] == "https://dtbase-test-acs.europe.communication.azure.com"
    assert settings["DT_ACS_SENDER_ADDRESS"] == f"DoNotReply@{ACS_SENDER_DOMAIN}"
    # The key is read from the vault, which holds the one the key listing answered.
    assert settings["DT_ACS_ACCESS_KEY"] == (
        "@Microsoft.KeyVault(SecretUri=https://dtbase-test-kv.vault.azure.net/secrets/"
        "acs-access-key/)"
    )
    assert "secret-acs-access-key" in flex_stack.depends["function-app"]


def test_email_can_be_left_out():
    stack = run_program({"email_enabled": False, "email_data_location": "UK"})
    assert stack.all(ACS) == stack.all(EMAIL_SERVICE) == stack.all(EMAIL_DOMAIN) == []
    settings = app_settings(stack)
    assert not {k for k in settings if k.startswith("DT_ACS_")}
    assert "acs-access-key" not in {s["secretName"] for s in stack.all(SECRET)}
    # The outbox still drains (webhooks).
    assert settings["DT_NOTIFY_SCHEDULE"] == "*/15 * * * * *"


def test_every_timer_setting_the_app_names_is_deployed_with_its_default(flex_stack: Recorded):
    """The Functions host will not index a timer whose `%SETTING%` is unset: every setting
    the app's timers name is an app setting, deployed with SCHEDULE_DEFAULTS' value."""
    import re

    from dtbase_core.config import SCHEDULE_DEFAULTS

    # Read from the blueprints' source (as the decorators declare them): importing the app
    # here would register its functions a second time in a full run.
    named = set()
    for source in (REPO / "function_app").glob("*.py"):
        for schedule in re.findall(r'timer_trigger\(\s*schedule="([^"]*)"', source.read_text()):
            named |= set(re.findall(r"%([^%]+)%", schedule))
    assert "DT_SCHEDULE_DISPATCH" in named
    assert named == set(SCHEDULE_DEFAULTS)
    settings = app_settings(flex_stack)
    assert {name: settings[name] for name in named} == SCHEDULE_DEFAULTS
