"""Rules Azure enforces that mocks would not: each test encodes one, so that a program which
breaks it fails here rather than half-way through a first `pulumi up` (infra/README.md,
"What was checked, and against what")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pulumi_harness import HOST_SUFFIX, REPO, Recorded, run_program, stack_settings

WEB_APP = "azure-native:web:WebApp"
SECRET = "azure-native:keyvault:Secret"
ROLE = "azure-native:authorization:RoleAssignment"
SERVER = "azure-native:dbforpostgresql:Server"


def app_settings(stack: Recorded) -> dict[str, str]:
    return {p["name"]: p["value"] for p in stack.one(WEB_APP)["siteConfig"]["appSettings"]}


# --- 1. A Function App that Flex Consumption accepts ------------------------------------------


def test_the_sdk_adds_a_net_framework_version_by_itself():
    """Why a transform is needed: SiteConfigArgs fills in netFrameworkVersion on its own."""
    from pulumi_azure_native import web

    assert web.SiteConfigArgs().net_framework_version == "v4.6"


@pytest.mark.parametrize("stack_name", ["flex_stack", "private_stack"])
def test_flex_request_has_no_net_framework_version_nor_ftps_state(
    stack_name: str, request: pytest.FixtureRequest
):
    # "The following site configuration property (Site.SiteConfig.NetFrameworkVersion) for
    # Flex Consumption sites is invalid" (pulumi/pulumi-azure-native#4168); ftpsState alike.
    site = request.getfixturevalue(stack_name).one(WEB_APP)["siteConfig"]
    assert "netFrameworkVersion" not in site
    assert "ftpsState" not in site
    assert site["appSettings"] and site["cors"]  # the rest of siteConfig is still sent


def test_linux_consumption_keeps_ftp_off(consumption_stack: Recorded):
    site = consumption_stack.one(WEB_APP)["siteConfig"]
    assert site["ftpsState"] == "Disabled"


def test_app_starts_only_once_what_it_reads_exists(flex_stack: Recorded):
    needs = flex_stack.depends["function-app"]
    assert "package-container" in needs  # the Flex deployment container
    secrets = {f"secret-{s['secretName']}" for s in flex_stack.all(SECRET)}
    assert secrets and secrets <= needs  # the Key Vault references resolve at start
    grants = {name for name in flex_stack.names[ROLE] if name.startswith("app-")}
    # Its identity's rights already granted (the sixth: the Durable Task Scheduler's role).
    assert len(grants) == 6 and grants <= needs
    assert "durable-task-hub" in needs
    assert "app-identity" in needs
    assert "telemetry-consumer-group" in needs  # the trigger's listener reads it at start


def test_role_assignments_do_not_wait_for_the_app(flex_stack: Recorded):
    """They are granted to the user-assigned identity, which exists before the app; a
    system-assigned identity would make the app's first start race its own rights."""
    for grant, assignment in zip(flex_stack.names[ROLE], flex_stack.all(ROLE), strict=True):
        assert "function-app" not in flex_stack.depends[grant]
        if grant == "iothub-sends-telemetry":  # the IoT Hub's, rule 6 below
            continue
        assert "app-identity" in flex_stack.depends[grant]
        assert assignment["principalId"] == "principal-of-dtbase-test-api-id"


@pytest.mark.parametrize("stack_name", ["flex_stack", "consumption_stack"])
def test_server_operations_run_one_after_another(stack_name: str, request: pytest.FixtureRequest):
    # Parallel operations on one Flexible Server fail with ServerBusy.
    stack: Recorded = request.getfixturevalue(stack_name)
    assert "postgres" in stack.depends["database"]
    assert {"postgres", "database"} <= stack.depends["allow-azure-services"]


def test_private_server_waits_for_its_dns_zone_link(private_stack: Recorded):
    assert "database-dns-link" in private_stack.depends["postgres"]
    assert "database-dns" in private_stack.depends["postgres"]


# --- 2. The web app's tokens reach the API ----------------------------------------------------


def test_the_api_is_called_on_its_own_origin_with_cors_for_the_site_only(flex_stack: Recorded):
    assert not flex_stack.all("azure-native:web:StaticSiteLinkedBackend")
    site = "https://gentle-sky-0a1b2c3d4.5.azurestaticapps.net"
    assert flex_stack.one(WEB_APP)["siteConfig"]["cors"] == {"allowedOrigins": [site]}
    assert "supportCredentials" not in flex_stack.one(WEB_APP)["siteConfig"]["cors"]
    assert app_settings(flex_stack)["DT_CORS_ORIGINS"] == site
    # What the pipeline writes into the site's config.json: the app's real host name.
    assert flex_stack.outputs["api_url"] == f"https://dtbase-test-api{HOST_SUFFIX}/api"


def test_extra_cors_origins_are_added_after_the_site():
    stack = run_program({"cors_origins": ("https://dashboards.example",)})
    allowed = stack.one(WEB_APP)["siteConfig"]["cors"]["allowedOrigins"]
    assert allowed == [
        "https://gentle-sky-0a1b2c3d4.5.azurestaticapps.net",
        "https://dashboards.example",
    ]


# --- 3. Bounded connections -------------------------------------------------------------------


def offered_skus() -> list[str]:
    from dtbase_infra.connections import USER_CONNECTIONS

    return list(USER_CONNECTIONS)


def peak(stack: Recorded, plan: str) -> int:
    """The most connections the deployed app can open, from what is actually deployed."""
    from dtbase_infra import connections

    app = stack.one(WEB_APP)
    settings = app_settings(stack)
    assert settings["DT_DB_MAX_OVERFLOW"] == "0"
    if plan == "flex":
        instances = app["functionAppConfig"]["scaleAndConcurrency"]["maximumInstanceCount"]
    else:
        instances = app["siteConfig"]["functionAppScaleLimit"]
    return instances * connections.scale_groups(plan) * int(settings["DT_DB_POOL_SIZE"])


@pytest.mark.parametrize("plan", ["flex", "consumption"])
@pytest.mark.parametrize("sku", offered_skus())
def test_every_offered_server_size_holds_the_apps_connections(sku: str, plan: str):
    from dtbase_infra.connections import ADMIN_RESERVE, USER_CONNECTIONS

    stack = run_program({"db_sku_name": sku, "hosting_plan": plan})
    server = stack.one(SERVER)
    assert server["sku"]["name"] == sku
    assert peak(stack, plan) <= USER_CONNECTIONS[sku] - ADMIN_RESERVE


@pytest.mark.parametrize("sku", offered_skus())
def test_one_instance_more_than_fits_is_refused(sku: str):
    from dtbase_infra.connections import largest_instance_count

    fits = largest_instance_count(sku, "flex", 2)
    assert stack_settings(db_sku_name=sku, function_max_instances=fits).max_instances == fits
    if fits < 100:  # below the default ceiling, the server is what limits
        with pytest.raises(ValueError, match="connections, more than"):
            stack_settings(db_sku_name=sku, function_max_instances=fits + 1)


def test_b1ms_bound_is_explicit():
    """35 user connections, 5 kept for the admin: 3 instances x 4 scale groups x 2 = 24."""
    settings = stack_settings()
    assert (settings.db_sku_name, settings.max_instances, settings.db_pool_size) == (
        "Standard_B1ms",
        3,
        2,
    )
    with pytest.raises(ValueError, match="40 x 4 scale groups x dbPoolSize 2 = 320"):
        stack_settings(function_max_instances=40)
    with pytest.raises(ValueError, match="not offered"):
        stack_settings(db_sku_name="Standard_B1s")


# --- 4. Least privilege -----------------------------------------------------------------------


def test_app_signs_in_as_its_own_role_and_verifies_the_server(flex_stack: Recorded):
    by_name = {s["secretName"]: s for s in flex_stack.all(SECRET)}
    app_url = by_name["database-url"]["properties"]["value"]
    assert app_url.startswith("postgresql://dtbase_app:")
    assert app_url.endswith("?sslmode=verify-full&sslrootcert=system")
    # The admin's URL (and password) is nowhere the app can read it.
    for secret in flex_stack.all(SECRET):
        assert "dtbaseadmin" not in str(secret["properties"]["value"])
    assert flex_stack.outputs["database_url"].startswith("postgresql://dtbaseadmin:")


def test_server_accepts_entra_id_sign_in(flex_stack: Recorded):
    auth = flex_stack.one(SERVER)["authConfig"]
    assert auth["activeDirectoryAuth"] == "Enabled"
    assert auth["tenantId"] == "00000000-0000-0000-0000-000000000002"


def test_libpq_understands_the_system_root_store():
    """`sslrootcert=system` needs libpq 16 or newer; the app's psycopg brings its own."""
    import psycopg

    assert psycopg.pq.version() >= 160000
    info = psycopg.conninfo.conninfo_to_dict(
        "postgresql://dtbase_app:pw@x.postgres.database.azure.com:5432/dtbase"
        "?sslmode=verify-full&sslrootcert=system"
    )
    assert info["sslmode"] == "verify-full" and info["sslrootcert"] == "system"


# --- 6. Device telemetry: identities end to end -----------------------------------------------

IOT_HUB = "azure-native:iothub:IotHubResource"
EVENT_HUB = "azure-native:eventhub:EventHub"
NAMESPACE = "azure-native:eventhub:Namespace"
EVENT_HUBS_DATA_SENDER = "2b629674-e913-4c01-ae53-ef4638d8f975"
EVENT_HUBS_DATA_RECEIVER = "a638d3c7-ab3a-418d-83e6-5f17a39d4fde"


def _role(assignment: dict) -> str:
    return assignment["roleDefinitionId"].rsplit("/", 1)[-1]


def test_the_trigger_reads_an_event_hub_of_ours_not_the_built_in_endpoint(flex_stack: Recorded):
    """ "Identity-based connections aren't supported by the IoT Hub trigger" on the built-in
    endpoint (Azure Functions docs, IoT Hub trigger, Connections): the hub routes device
    messages to an event hub in our namespace, which the app reads with its identity."""
    settings = app_settings(flex_stack)
    namespace = flex_stack.one(NAMESPACE)["namespaceName"]
    assert settings["DT_TELEMETRY_CONNECTION__fullyQualifiedNamespace"] == (
        f"{namespace}.servicebus.windows.net"
    )
    assert settings["DT_TELEMETRY_CONNECTION__credential"] == "managedidentity"
    # A user-assigned identity must be named, or the host looks for a system-assigned one.
    assert settings["DT_TELEMETRY_CONNECTION__clientId"] == "client-of-dtbase-test-api-id"
    assert "DT_TELEMETRY_CONNECTION" not in settings  # no connection string
    (endpoint,) = flex_stack.one(IOT_HUB)["properties"]["routing"]["endpoints"]["eventHubs"]
    assert endpoint["endpointUri"] == f"sb://{namespace}.servicebus.windows.net"
    assert endpoint["entityPath"] == settings["DT_TELEMETRY_EVENT_HUB"]


def test_the_hub_routes_with_an_identity_granted_before_the_hub_is_written(flex_stack: Recorded):
    """Azure checks an identity-based endpoint when the hub is created: its identity must
    exist and hold Event Hubs Data Sender by then (a system-assigned one cannot)."""
    hub = flex_stack.one(IOT_HUB)
    (endpoint,) = hub["properties"]["routing"]["endpoints"]["eventHubs"]
    assert endpoint["authenticationType"] == "identityBased"
    assert "connectionString" not in endpoint
    assert hub["identity"]["type"] == "UserAssigned"
    identity_id = endpoint["identity"]["userAssignedIdentity"]
    assert hub["identity"]["userAssignedIdentities"] == [identity_id]
    assert "iothub-sends-telemetry" in flex_stack.depends["iot-hub"]
    sender = flex_stack.all(ROLE)[flex_stack.names[ROLE].index("iothub-sends-telemetry")]
    assert _role(sender) == EVENT_HUBS_DATA_SENDER
    assert sender["principalId"] == "principal-of-dtbase-test-iot-id"


def test_each_identity_holds_one_event_hubs_role_on_that_event_hub_only(flex_stack: Recorded):
    event_hub_id = flex_stack.ids[EVENT_HUB][0]
    on_hub = {_role(a): a for a in flex_stack.all(ROLE) if "EventHub" in a["scope"]}
    assert set(on_hub) == {EVENT_HUBS_DATA_SENDER, EVENT_HUBS_DATA_RECEIVER}
    assert all(a["scope"] == event_hub_id for a in on_hub.values())
    assert on_hub[EVENT_HUBS_DATA_RECEIVER]["principalId"] == "principal-of-dtbase-test-api-id"


def test_the_namespace_takes_no_keys_and_has_consumer_groups(flex_stack: Recorded):
    namespace = flex_stack.one(NAMESPACE)
    assert namespace["disableLocalAuth"] is True
    assert namespace["minimumTlsVersion"] == "1.2"
    # Basic namespaces have $Default only; the function reads with a group of its own.
    assert namespace["sku"]["name"] == "Standard"
    group = flex_stack.one("azure-native:eventhub:ConsumerGroup")
    assert group["consumerGroupName"] == app_settings(flex_stack)["DT_TELEMETRY_CONSUMER_GROUP"]
    assert group["consumerGroupName"] != "$Default"


def test_the_hub_fits_its_tier(flex_stack: Recorded):
    """Azure requires the built-in endpoint's entry (`events`) in every write; a free hub
    takes one custom endpoint and five routes."""
    hub = flex_stack.one(IOT_HUB)
    assert hub["sku"] == {"name": "F1", "capacity": 1}
    properties = hub["properties"]
    assert set(properties["eventHubEndpoints"]) == {"events"}
    routing = properties["routing"]
    assert sum(len(v) for v in routing["endpoints"].values()) <= 1
    assert len(routing["routes"]) <= 5
    (route,) = routing["routes"]
    assert route["source"] == "DeviceMessages" and route["isEnabled"] is True
    assert properties["minTlsVersion"] == "1.2"
    assert properties["disableLocalAuth"] is True


def test_the_hub_tier_is_a_stack_setting():
    stack = run_program({"iot_hub_sku": "S1"})
    assert stack.one(IOT_HUB)["sku"]["name"] == "S1"
    with pytest.raises(ValueError, match="iotHubSku"):
        run_program({"iot_hub_sku": "X9"})


def test_every_binding_expression_of_the_app_has_an_app_setting(flex_stack: Recorded):
    """The Functions host fails indexing on a `%NAME%` no app setting defines. The app is
    indexed in a process of its own: its functions can be listed once per process."""
    script = (
        "import json, re\n"
        "from function_app import app\n"
        "print(json.dumps(sorted({n for f in app.get_functions() "
        "for n in re.findall(r'%([A-Za-z0-9_]+)%', f.get_function_json())})))\n"
    )
    indexed = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "DT_LOCAL_MODE": "1"},  # the app checks its secrets otherwise
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    named = set(json.loads(indexed.stdout.strip().splitlines()[-1]))
    assert {"DT_TELEMETRY_EVENT_HUB", "DT_TELEMETRY_CONSUMER_GROUP"} <= named
    assert named <= app_settings(flex_stack).keys()
