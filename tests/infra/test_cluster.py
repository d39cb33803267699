"""`postgresNodes`: one Flexible Server (the default) or an elastic cluster (Citus)."""

from __future__ import annotations

import pytest
from pulumi_harness import Recorded, run_program, stack_settings

SERVER = "azure-native:dbforpostgresql:Server"
DATABASE = "azure-native:dbforpostgresql:Database"
FIREWALL = "azure-native:dbforpostgresql:FirewallRule"
SECRET = "azure-native:keyvault:Secret"


@pytest.fixture(scope="module")
def cluster_stack() -> Recorded:
    return run_program({"postgres_nodes": 4, "db_sku_name": "Standard_D4ds_v5"})


def test_one_node_is_today_s_single_server(flex_stack: Recorded):
    server = flex_stack.one(SERVER)
    assert not server.get("cluster")  # the SDK's default: no cluster
    assert server["version"] == "16"
    assert flex_stack.one(DATABASE)["databaseName"] == "dtbase"


def test_more_nodes_declare_an_elastic_cluster_of_that_size(cluster_stack: Recorded):
    server = cluster_stack.one(SERVER)
    assert server["cluster"] == {"clusterSize": 4, "defaultDatabaseName": "dtbase"}
    # Every node has the size of dbSkuName.
    assert server["sku"] == {"name": "Standard_D4ds_v5", "tier": "GeneralPurpose"}


def test_a_cluster_runs_postgresql_17(cluster_stack: Recorded):
    assert cluster_stack.one(SERVER)["version"] == "17"


def test_a_cluster_gets_its_one_database_at_creation(cluster_stack: Recorded):
    """CREATE DATABASE fails on an elastic cluster: its database is named by the cluster."""
    assert cluster_stack.all(DATABASE) == []
    # The app's URL names that database.
    by_name = {s["secretName"]: s for s in cluster_stack.all(SECRET)}
    url = by_name["database-url"]["properties"]["value"]
    assert ".postgres.database.azure.com:5432/dtbase?" in url
    assert "postgres" in cluster_stack.depends["allow-azure-services"]
    rule = cluster_stack.one(FIREWALL)
    assert (rule["startIpAddress"], rule["endIpAddress"]) == ("0.0.0.0", "0.0.0.0")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"postgres_nodes": 0}, "postgresNodes"),
        ({"postgres_nodes": 2}, "Burstable"),  # the default B1ms
        ({"postgres_nodes": 2, "db_sku_name": "Standard_B2s"}, "Burstable"),
        (
            {
                "postgres_nodes": 2,
                "db_sku_name": "Standard_D2ds_v5",
                "database_access": "private",
            },
            "azureServices",
        ),
    ],
)
def test_invalid_cluster_settings_are_refused(overrides: dict, message: str):
    with pytest.raises(ValueError, match=message):
        stack_settings(**overrides)


def test_a_memory_optimized_cluster_is_accepted():
    settings = stack_settings(postgres_nodes=2, db_sku_name="Standard_E4ds_v5")
    assert settings.elastic_cluster and settings.db_sku_tier == "MemoryOptimized"


def test_the_setting_is_read_from_the_stack():
    import pulumi
    from dtbase_infra.settings import load_settings

    secrets = {
        "dtbase:dbAdminPassword": "a",
        "dtbase:dbAppPassword": "d",
        "dtbase:jwtSecretKey": "b",
        "dtbase:defaultUserPassword": "c",
    }
    pulumi.runtime.set_all_config(
        {
            "dtbase:prefix": "dtbase-dev",
            "dtbase:location": "uksouth",
            "dtbase:postgresNodes": "3",
            "dtbase:dbSkuName": "Standard_D2ds_v5",
            **secrets,
        },
        secret_keys=list(secrets),
    )
    try:
        settings = load_settings()
    finally:
        pulumi.runtime.set_all_config({})
    assert settings.postgres_nodes == 3 and settings.elastic_cluster
    assert settings.durable_storage == "scheduler"  # and the Durable default alongside
    assert settings.scheduler_sku == "Consumption"
