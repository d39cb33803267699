"""PostgreSQL Flexible Server (version 16) and the DTBase database; or, with
`postgresNodes` above 1, an elastic cluster (Citus, version 17) of that many nodes.

Reachable either from Azure-hosted callers only (the special 0.0.0.0-0.0.0.0 rule) or, with
`databaseAccess: private`, only from inside the VNet. TLS is enforced by the server default
(`require_secure_transport=on`), and clients verify the server: `sslmode=verify-full` against
the system's root certificates (`sslrootcert=system`, libpq 16+), which hold the roots
Azure's server certificates chain to (DigiCert Global Root G2, Microsoft RSA Root CA 2017).

Two URLs: the admin's, for migrations only (a stack output), and the app's least-privilege
role's, which the app reads from Key Vault. Operations on one Flexible Server run one at a
time (Azure answers ServerBusy otherwise), so each child resource waits for the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pulumi
from pulumi_azure_native import dbforpostgresql as pg

from .network import PrivateNetwork
from .settings import StackSettings

POSTGRES_VERSION = "16"
# Elastic clusters (Citus) run PostgreSQL 17 only ("Which PostgreSQL version is supported
# in elastic clusters? PostgreSQL 17", Microsoft's elastic cluster limitations).
CLUSTER_POSTGRES_VERSION = "17"
# Verify the server's certificate and name against the system's trusted roots.
TLS_QUERY = "sslmode=verify-full&sslrootcert=system"
# Azure's documented meaning of a 0.0.0.0-0.0.0.0 rule: "allow public access from any Azure
# service within Azure to this server". No other rule is ever created.
AZURE_SERVICES_RULE = "AllowAllAzureServicesAndResourcesWithinAzureIps"


@dataclass
class Database:
    server: pg.Server
    # None on an elastic cluster: its one database is created with it (cluster.defaultDatabaseName).
    database: pg.Database | None
    admin_url: pulumi.Output[str]  # migrations only
    app_url: pulumi.Output[str]  # the app's least-privilege role


def database_url(
    login: str, password: pulumi.Input[str], host: pulumi.Input[str], name: str
) -> pulumi.Output[str]:
    """The `DT_DATABASE_URL` form the app reads; marked secret because it holds the password."""
    return pulumi.Output.secret(
        pulumi.Output.all(password, host).apply(
            lambda v: (
                f"postgresql://{quote(login, safe='')}:{quote(v[0], safe='')}"
                f"@{v[1]}:5432/{name}?{TLS_QUERY}"
            )
        )
    )


def create_database(
    settings: StackSettings,
    resource_group: pulumi.Input[str],
    private_network: PrivateNetwork | None,
    tenant_id: pulumi.Input[str],
) -> Database:
    if private_network is not None:
        network_args = pg.NetworkArgs(
            delegated_subnet_resource_id=private_network.database_subnet.id,
            private_dns_zone_arm_resource_id=private_network.database_dns_zone.id,
            public_network_access=pg.ServerPublicNetworkAccessState.DISABLED,
        )
    else:
        network_args = pg.NetworkArgs(
            public_network_access=pg.ServerPublicNetworkAccessState.ENABLED
        )

    # An elastic cluster holds exactly one database, named at creation; CREATE DATABASE
    # fails there, so no Database resource is declared for it.
    cluster = (
        pg.ClusterArgs(cluster_size=settings.postgres_nodes, default_database_name=settings.db_name)
        if settings.elastic_cluster
        else None
    )
    server = pg.Server(
        "postgres",
        server_name=settings.name("pg"),
        resource_group_name=resource_group,
        location=settings.location,
        version=CLUSTER_POSTGRES_VERSION if cluster else POSTGRES_VERSION,
        cluster=cluster,
        sku=pg.SkuArgs(name=settings.db_sku_name, tier=settings.db_sku_tier),
        storage=pg.StorageArgs(storage_size_gb=settings.db_storage_gb, auto_grow="Enabled"),
        backup=pg.BackupArgs(
            backup_retention_days=settings.db_backup_retention_days,
            geo_redundant_backup=pg.GeographicallyRedundantBackup.DISABLED,
        ),
        high_availability=pg.HighAvailabilityArgs(mode="Disabled"),
        # Entra ID sign-in on, so a deployment can move the app to its managed identity
        # (infra/README.md); until then the app's role signs in with its own password.
        auth_config=pg.AuthConfigArgs(
            password_auth="Enabled", active_directory_auth="Enabled", tenant_id=tenant_id
        ),
        administrator_login=settings.db_admin_login,
        administrator_login_password=pulumi.Output.secret(settings.db_admin_password),
        network=network_args,
        create_mode="Default",
        tags=dict(settings.tags),
        # In private mode Azure needs the DNS zone linked to the VNet before the server.
        opts=pulumi.ResourceOptions(
            depends_on=[private_network.database_dns_link] if private_network else []
        ),
    )
    database = (
        None
        if cluster
        else pg.Database(
            "database",
            database_name=settings.db_name,
            server_name=server.name,
            resource_group_name=resource_group,
            charset="UTF8",
            collation="en_US.utf8",
        )
    )
    if private_network is None:
        pg.FirewallRule(
            "allow-azure-services",
            firewall_rule_name=AZURE_SERVICES_RULE,
            server_name=server.name,
            resource_group_name=resource_group,
            start_ip_address="0.0.0.0",
            end_ip_address="0.0.0.0",
            # One operation at a time on the server: after the database is created.
            opts=pulumi.ResourceOptions(depends_on=[database or server]),
        )
    host = server.fully_qualified_domain_name
    return Database(
        server=server,
        database=database,
        admin_url=database_url(
            settings.db_admin_login, settings.db_admin_password, host, settings.db_name
        ),
        app_url=database_url(
            settings.db_app_login, settings.db_app_password, host, settings.db_name
        ),
    )
