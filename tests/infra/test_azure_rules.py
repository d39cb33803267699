"""Rules Azure enforces that mocks would not: each test encodes one, so that a program which
breaks it fails here rather than half-way through a first `pulumi up` (infra/README.md,
"What was checked, and against what")."""

from __future__ import annotations

import pytest
from pulumi_harness import HOST_SUFFIX, Recorded, run_program

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
    grants = set(flex_stack.names[ROLE])
    assert len(grants) == 4 and grants <= needs  # its identity's rights already granted
    assert "app-identity" in needs


def test_role_assignments_do_not_wait_for_the_app(flex_stack: Recorded):
    """They are granted to the user-assigned identity, which exists before the app; a
    system-assigned identity would make the app's first start race its own rights."""
    for grant in flex_stack.names[ROLE]:
        assert "function-app" not in flex_stack.depends[grant]
        assert "app-identity" in flex_stack.depends[grant]
    for assignment in flex_stack.all(ROLE):
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
    from dtbase_infra.settings import StackSettings

    fits = largest_instance_count(sku, "flex", 2)
    base = dict(
        prefix="dtbase-test",
        location="uksouth",
        db_admin_password="x",
        jwt_secret_key="y",
        default_user_password="z",
        db_app_password="w",
        db_sku_name=sku,
    )
    assert StackSettings(**base, function_max_instances=fits).max_instances == fits
    if fits < 100:  # below the default ceiling, the server is what limits
        with pytest.raises(ValueError, match="connections, more than"):
            StackSettings(**base, function_max_instances=fits + 1)


def test_b1ms_bound_is_explicit():
    """35 user connections, 5 kept for the admin: 3 instances x 4 scale groups x 2 = 24."""
    from dtbase_infra.settings import StackSettings

    settings = StackSettings(
        prefix="dtbase-test",
        location="uksouth",
        db_admin_password="x",
        jwt_secret_key="y",
        default_user_password="z",
        db_app_password="w",
    )
    assert (settings.db_sku_name, settings.max_instances, settings.db_pool_size) == (
        "Standard_B1ms",
        3,
        2,
    )
    with pytest.raises(ValueError, match="40 x 4 scale groups x dbPoolSize 2 = 320"):
        StackSettings(**{**settings.__dict__, "function_max_instances": 40})
    with pytest.raises(ValueError, match="not offered"):
        StackSettings(**{**settings.__dict__, "db_sku_name": "Standard_B1s"})


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
