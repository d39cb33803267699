"""Device telemetry: an IoT Hub whose device messages reach the Function App's
Event Hubs-triggered function (function_app/telemetry.py), with identities only.

The IoT Hub trigger cannot use an identity-based connection on IoT Hub's built-in
Event Hubs-compatible endpoint: that endpoint takes shared access keys only. Microsoft's
documented way to use managed identities end to end is to route the hub's device messages to
an event hub you control (Azure Functions docs, "Azure IoT Hub trigger", Connections). So:

    devices -> IoT Hub (its SKU a stack setting)
            -> message route, identity-based (the hub's user-assigned identity holds
               "Azure Event Hubs Data Sender" on the event hub)
            -> event hub `telemetry` in a namespace with local (SAS) auth switched off
            -> consumer group `dtbase-telemetry`, read by the function through
               DT_TELEMETRY_CONNECTION__fullyQualifiedNamespace with the app's identity
               ("Azure Event Hubs Data Receiver" on that event hub only).

Routed messages keep IoT Hub's system properties, so the function still reads each
message's `iothub-connection-device-id`. The hub's identity is user-assigned and granted
before the hub exists: Azure checks an identity-based endpoint when the hub is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import eventhub, iothub, managedidentity

from . import access
from .settings import StackSettings

EVENT_HUB = "telemetry"
CONSUMER_GROUP = "dtbase-telemetry"
ROUTE_ENDPOINT = "dtbase-telemetry"
# Partitions bound how many function instances read at once; 2 suits the smallest hubs.
PARTITIONS = 2
RETENTION_DAYS = 1  # what the function has not read by then is lost: alerts catch a stall


@dataclass
class Telemetry:
    hub: iothub.IotHubResource
    namespace: eventhub.Namespace
    event_hub: eventhub.EventHub
    consumer_group: eventhub.ConsumerGroup

    @property
    def fully_qualified_namespace(self) -> pulumi.Output[str]:
        return pulumi.Output.concat(self.namespace.name, ".servicebus.windows.net")


def create_telemetry(settings: StackSettings, resource_group: pulumi.Input[str]) -> Telemetry:
    namespace = eventhub.Namespace(
        "telemetry-namespace",
        namespace_name=settings.name("telemetry"),
        resource_group_name=resource_group,
        location=settings.location,
        # Standard: consumer groups of our own (Basic has $Default only).
        sku=eventhub.SkuArgs(name=eventhub.SkuName.STANDARD, tier=eventhub.SkuTier.STANDARD),
        disable_local_auth=True,  # identities only: no connection string exists
        minimum_tls_version=eventhub.TlsVersion.TLS_VERSION_1_2,
        tags=dict(settings.tags),
    )
    event_hub = eventhub.EventHub(
        "telemetry-event-hub",
        event_hub_name=EVENT_HUB,
        namespace_name=namespace.name,
        resource_group_name=resource_group,
        partition_count=PARTITIONS,
        message_retention_in_days=RETENTION_DAYS,
    )
    consumer_group = eventhub.ConsumerGroup(
        "telemetry-consumer-group",
        consumer_group_name=CONSUMER_GROUP,
        event_hub_name=event_hub.name,
        namespace_name=namespace.name,
        resource_group_name=resource_group,
    )
    hub_identity = managedidentity.UserAssignedIdentity(
        "iothub-identity",
        resource_name_=settings.name("iot-id"),
        resource_group_name=resource_group,
        location=settings.location,
        tags=dict(settings.tags),
    )
    sends = access.grant(
        "iothub-sends-telemetry",
        role=access.EVENT_HUBS_DATA_SENDER,
        scope=event_hub.id,
        principal_id=hub_identity.principal_id,
    )
    hub = iothub.IotHubResource(
        "iot-hub",
        resource_name_=settings.name("iot"),
        resource_group_name=resource_group,
        location=settings.location,
        sku=iothub.IotHubSkuInfoArgs(name=settings.iot_hub_sku, capacity=1),
        identity=iothub.ArmIdentityArgs(
            type=iothub.ResourceIdentityType.USER_ASSIGNED,
            user_assigned_identities=[hub_identity.id],
        ),
        properties=iothub.IotHubPropertiesArgs(
            min_tls_version="1.2",
            # Devices sign in with their own keys or certificates; the hub-wide shared
            # access policies are not usable (services use Entra ID).
            disable_local_auth=True,
            # Azure requires the built-in endpoint's entry; nothing is routed to it.
            event_hub_endpoints={
                "events": iothub.EventHubPropertiesArgs(
                    partition_count=PARTITIONS, retention_time_in_days=RETENTION_DAYS
                )
            },
            routing=iothub.RoutingPropertiesArgs(
                endpoints=iothub.RoutingEndpointsArgs(
                    event_hubs=[
                        iothub.RoutingEventHubPropertiesArgs(
                            name=ROUTE_ENDPOINT,
                            authentication_type=iothub.AuthenticationType.IDENTITY_BASED,
                            identity=iothub.ManagedIdentityArgs(
                                user_assigned_identity=hub_identity.id
                            ),
                            endpoint_uri=pulumi.Output.concat(
                                "sb://", namespace.name, ".servicebus.windows.net"
                            ),
                            entity_path=event_hub.name,
                        )
                    ]
                ),
                routes=[
                    iothub.RoutePropertiesArgs(
                        name="device-messages-to-dtbase",
                        source=iothub.RoutingSource.DEVICE_MESSAGES,
                        condition="true",
                        endpoint_names=[ROUTE_ENDPOINT],
                        is_enabled=True,
                    )
                ],
            ),
        ),
        tags=dict(settings.tags),
        opts=pulumi.ResourceOptions(depends_on=[sends]),
    )
    return Telemetry(
        hub=hub, namespace=namespace, event_hub=event_hub, consumer_group=consumer_group
    )
