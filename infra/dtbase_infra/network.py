"""The private network used when `databaseAccess: private`.

PostgreSQL gets a delegated subnet and no public endpoint; the Function App (Flex Consumption)
joins a second delegated subnet and resolves the server through a private DNS zone.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import network, privatedns

from .settings import StackSettings

ADDRESS_SPACE = "10.20.0.0/16"
FUNCTIONS_SUBNET = "10.20.1.0/24"
DATABASE_SUBNET = "10.20.2.0/24"


@dataclass
class PrivateNetwork:
    vnet: network.VirtualNetwork
    functions_subnet: network.Subnet
    database_subnet: network.Subnet
    database_dns_zone: privatedns.PrivateZone
    # The server is created only once its zone is linked to the VNet (Azure requires it).
    database_dns_link: privatedns.VirtualNetworkLink


def create_private_network(
    settings: StackSettings, resource_group: pulumi.Input[str]
) -> PrivateNetwork:
    vnet = network.VirtualNetwork(
        "vnet",
        virtual_network_name=settings.name("vnet"),
        resource_group_name=resource_group,
        location=settings.location,
        address_space=network.AddressSpaceArgs(address_prefixes=[ADDRESS_SPACE]),
        tags=dict(settings.tags),
    )
    functions_subnet = network.Subnet(
        "functions-subnet",
        subnet_name="functions",
        virtual_network_name=vnet.name,
        resource_group_name=resource_group,
        address_prefix=FUNCTIONS_SUBNET,
        # Flex Consumption VNet integration needs this delegation.
        delegations=[
            network.DelegationArgs(name="flex", service_name="Microsoft.App/environments")
        ],
    )
    database_subnet = network.Subnet(
        "database-subnet",
        subnet_name="database",
        virtual_network_name=vnet.name,
        resource_group_name=resource_group,
        address_prefix=DATABASE_SUBNET,
        delegations=[
            network.DelegationArgs(
                name="postgres", service_name="Microsoft.DBforPostgreSQL/flexibleServers"
            )
        ],
        # Azure rejects two concurrent writes to subnets of one VNet.
        opts=pulumi.ResourceOptions(depends_on=[functions_subnet]),
    )
    zone = privatedns.PrivateZone(
        "database-dns",
        private_zone_name=f"{settings.prefix}.private.postgres.database.azure.com",
        resource_group_name=resource_group,
        location="global",
        tags=dict(settings.tags),
    )
    link = privatedns.VirtualNetworkLink(
        "database-dns-link",
        virtual_network_link_name=settings.name("vnet-link"),
        private_zone_name=zone.name,
        resource_group_name=resource_group,
        location="global",
        virtual_network=privatedns.SubResourceArgs(id=vnet.id),
        registration_enabled=False,
    )
    return PrivateNetwork(
        vnet=vnet,
        functions_subnet=functions_subnet,
        database_subnet=database_subnet,
        database_dns_zone=zone,
        database_dns_link=link,
    )
