"""Runs the Pulumi program under Pulumi's mocks and records every resource it registers.

No database, no network, no Pulumi CLI. Per docs/architecture.md, Pitfalls worked
around, the program is imported only after `pulumi.runtime.set_mocks`.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
TENANT = "00000000-0000-0000-0000-000000000002"

# Recognisable plain-text secrets: a test fails if any of them shows up where it must not.
DB_PASSWORD = "db-P@ss:w/rd-5f1c"
JWT_SECRET = "jwt-secret-8a7b6c5d4e3f"
DEFAULT_USER_PASSWORD = "default-user-pass-77aa"
DB_APP_PASSWORD = "db-app-pass-9e8d7c"
# Azure may give a new app a default host name with a unique suffix: the program must read
# it, never guess `<name>.azurewebsites.net`.
HOST_SUFFIX = "-b4c3d2e1f0a9.uksouth-01.azurewebsites.net"
SITE_HOST = "gentle-sky-0a1b2c3d4.5.azurestaticapps.net"
OWM_KEY = "owm-api-key-1234abcd"
# What the Communication Service's key listing answers (base64, as Azure's keys are).
ACS_KEY = "YWNzLWFjY2Vzcy1rZXktNDJmMWUwZDljOGI3YTZmNQ=="
# The sender domain Azure gives an Azure-managed email domain.
ACS_SENDER_DOMAIN = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.azurecomm.net"


@dataclass
class Recorded:
    """Inputs of every resource the program registered, keyed by Pulumi type token."""

    resources: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    raw: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    names: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    ids: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    outputs: dict[str, Any] = field(default_factory=dict)
    # Logical name -> logical names of the resources it waits for (explicit and implicit),
    # as the engine receives them.
    depends: dict[str, set[str]] = field(default_factory=dict)

    def all(self, type_token: str) -> list[dict[str, Any]]:
        return self.resources.get(type_token, [])

    def one(self, type_token: str) -> dict[str, Any]:
        found = self.all(type_token)
        assert len(found) == 1, f"expected one {type_token}, found {len(found)}"
        return found[0]


SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_SIGNATURE in value


def _unwrap_secrets(value: Any) -> Any:
    """Recorded inputs wrap secret values in a signature dict (docs/architecture.md, Pitfalls
    worked around)."""
    if isinstance(value, dict):
        if SECRET_SIGNATURE in value:
            return _unwrap_secrets(value.get("value"))
        return {key: _unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(item) for item in value]
    return value


def _resource_id(type_token: str, name: str) -> str:
    _, module, kind = type_token.split(":")
    return (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/mock-rg/providers/"
        f"Microsoft.{module.capitalize()}/{kind}/{name}"
    )


# The input that holds each resource's explicit name; Azure echoes it back as `name`.
_NAME_INPUT = {
    "azure-native:resources:ResourceGroup": "resourceGroupName",
    "azure-native:storage:StorageAccount": "accountName",
    "azure-native:storage:BlobContainer": "containerName",
    "azure-native:keyvault:Vault": "vaultName",
    "azure-native:keyvault:Secret": "secretName",
    "azure-native:dbforpostgresql:Server": "serverName",
    "azure-native:dbforpostgresql:Database": "databaseName",
    "azure-native:operationalinsights:Workspace": "workspaceName",
    "azure-native:applicationinsights:Component": "resourceName",
    "azure-native:network:VirtualNetwork": "virtualNetworkName",
    "azure-native:network:Subnet": "subnetName",
    "azure-native:privatedns:PrivateZone": "privateZoneName",
    "azure-native:managedidentity:UserAssignedIdentity": "resourceName",
    "azure-native:communication:CommunicationService": "communicationServiceName",
    "azure-native:communication:EmailService": "emailServiceName",
    "azure-native:communication:Domain": "domainName",
    "azure-native:eventhub:Namespace": "namespaceName",
    "azure-native:eventhub:EventHub": "eventHubName",
    "azure-native:eventhub:ConsumerGroup": "consumerGroupName",
    "azure-native:iothub:IotHubResource": "resourceName",
    "azure-native:durabletask:Scheduler": "schedulerName",
    "azure-native:durabletask:TaskHub": "taskHubName",
}
# What Azure answers as a scheduler's endpoint (read, never built from the name).
SCHEDULER_ENDPOINT = "https://dtbase-test-dts-c0ffee.uksouth.durabletask.io"


def _computed_outputs(type_token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """What Azure would fill in after creation, for the outputs the program reads."""
    name = inputs.get(_NAME_INPUT.get(type_token, "name"))
    return {"name": name, **_type_outputs(type_token, name, inputs)}


def _type_outputs(type_token: str, name: str | None, inputs: dict[str, Any]) -> dict[str, Any]:
    match type_token:
        case "azure-native:iothub:IotHubResource":
            identity = inputs.get("identity", {})
            assigned = {key: {} for key in identity.get("userAssignedIdentities", [])}
            return {"identity": {**identity, "userAssignedIdentities": assigned}}
        case "azure-native:web:WebApp":
            identity = inputs.get("identity", {})
            # Azure answers the list of user-assigned identities as a map by resource id.
            assigned = {key: {} for key in identity.get("userAssignedIdentities", [])}
            return {
                "defaultHostName": f"{name}{HOST_SUFFIX}",
                "identity": {**identity, "userAssignedIdentities": assigned},
            }
        case "azure-native:managedidentity:UserAssignedIdentity":
            return {"principalId": f"principal-of-{name}", "clientId": f"client-of-{name}"}
        case "azure-native:web:StaticSite":
            # Azure names the site itself (not after the resource): read, never guessed.
            return {"defaultHostname": SITE_HOST}
        case "azure-native:keyvault:Vault":
            return {
                "properties": {
                    **inputs.get("properties", {}),
                    "vaultUri": f"https://{name}.vault.azure.net/",
                }
            }
        case "azure-native:storage:StorageAccount":
            return {"primaryEndpoints": {"blob": f"https://{name}.blob.core.windows.net/"}}
        case "azure-native:durabletask:Scheduler":
            return {"properties": {**inputs.get("properties", {}), "endpoint": SCHEDULER_ENDPOINT}}
        case "azure-native:dbforpostgresql:Server":
            return {"fullyQualifiedDomainName": f"{name}.postgres.database.azure.com"}
        case "azure-native:communication:CommunicationService":
            return {"hostName": f"{name}.europe.communication.azure.com"}
        case "azure-native:communication:Domain":
            return {
                "fromSenderDomain": ACS_SENDER_DOMAIN,
                "mailFromSenderDomain": ACS_SENDER_DOMAIN,
            }
        case "azure-native:applicationinsights:Component":
            return {
                "connectionString": "InstrumentationKey=00000000-aaaa;IngestionEndpoint=https://x/"
            }
    return {}


def stack_settings(**overrides: Any) -> Any:
    """StackSettings with the required settings filled in (placeholder secrets), and
    `overrides`; its validation errors raise, as a stack's would."""
    if str(INFRA) not in sys.path:
        sys.path.insert(0, str(INFRA))
    from dtbase_infra.settings import StackSettings

    required = {
        "prefix": "dtbase-test",
        "location": "uksouth",
        "db_admin_password": "x",
        "jwt_secret_key": "y",
        "default_user_password": "z",
        "db_app_password": "w",
    }
    return StackSettings(**{**required, **overrides})


def run_program(settings_overrides: dict[str, Any] | None = None) -> Recorded:
    """Run `dtbase_infra.stack.build` under mocks and return what it registered."""
    import pulumi
    from pulumi.runtime.mocks import MockMonitor

    recorded = Recorded()

    class RecordingMonitor(MockMonitor):
        def RegisterResource(self, request):
            recorded.depends[request.name] = {
                urn.rsplit("::", 1)[-1] for urn in request.dependencies
            }
            return super().RegisterResource(request)

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            # The engine runs a resource's transforms on its inputs before the provider
            # sees them; the mock monitor does not, so run them here.
            for transform in args.transforms:
                result = transform(
                    pulumi.ResourceTransformArgs(
                        custom=bool(args.custom),
                        type_=args.typ,
                        name=args.name,
                        props=args.inputs,
                        opts=pulumi.ResourceOptions(),
                    )
                )
                if result is not None:
                    args.inputs = result.props
            inputs = _unwrap_secrets(args.inputs)
            resource_id = _resource_id(args.typ, args.name)
            recorded.resources[args.typ].append(inputs)
            recorded.raw[args.typ].append(dict(args.inputs))
            recorded.names[args.typ].append(args.name)
            recorded.ids[args.typ].append(resource_id)
            outputs = {**args.inputs, **_computed_outputs(args.typ, inputs)}
            return resource_id, outputs

        def call(self, args: pulumi.runtime.MockCallArgs):
            if args.token == "azure-native:authorization:getClientConfig":
                return {
                    "subscriptionId": SUBSCRIPTION,
                    "tenantId": TENANT,
                    "clientId": "client",
                    "objectId": "deployer",
                }
            if args.token == "azure-native:communication:listCommunicationServiceKeys":
                assert args.args["communicationServiceName"] == "dtbase-test-acs"
                return {"primaryKey": ACS_KEY, "secondaryKey": "c2Vjb25kYXJ5"}
            raise AssertionError(f"unexpected invoke {args.token}")

    mocks = Mocks()
    pulumi.runtime.set_mocks(
        mocks,
        project="dtbase-azure",
        stack="test",
        preview=False,
        monitor=RecordingMonitor(mocks),
    )
    if str(INFRA) not in sys.path:
        sys.path.insert(0, str(INFRA))
    from dtbase_infra.settings import StackSettings
    from dtbase_infra.stack import build

    settings = StackSettings(
        **{
            "prefix": "dtbase-test",
            "location": "uksouth",
            "db_admin_password": DB_PASSWORD,
            "jwt_secret_key": JWT_SECRET,
            "default_user_password": DEFAULT_USER_PASSWORD,
            "db_app_password": DB_APP_PASSWORD,
            "openweathermap_api_key": OWM_KEY,
            **(settings_overrides or {}),
        }
    )

    @pulumi.runtime.test
    def program():
        outputs = build(settings)
        return pulumi.Output.all(
            site_url=outputs.site_url,
            api_url=outputs.api_url,
            database_url=outputs.database_url,
        ).apply(recorded.outputs.update)

    program()
    return recorded
