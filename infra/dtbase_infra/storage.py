"""The storage account behind the Functions runtime and the Durable task hub (DTBaseHub).

Nothing in it is public and no key is ever handed out: the Function App reaches it with its
managed identity (`AzureWebJobsStorage__accountName`), so shared-key access is switched off.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import storage

from .settings import StackSettings

# Flex Consumption pulls the deployment package from this container; the Linux Consumption
# fallback runs from a zip blob in it.
PACKAGE_CONTAINER = "app-package"
PACKAGE_BLOB = "functionapp.zip"


@dataclass
class RuntimeStorage:
    account: storage.StorageAccount
    package_container: storage.BlobContainer

    @property
    def package_container_url(self) -> pulumi.Output[str]:
        return self.account.primary_endpoints.apply(lambda e: f"{e.blob}{PACKAGE_CONTAINER}")


def create_runtime_storage(
    settings: StackSettings, resource_group: pulumi.Input[str]
) -> RuntimeStorage:
    account = storage.StorageAccount(
        "runtime-storage",
        account_name=f"{settings.compact_prefix}func"[:24],
        resource_group_name=resource_group,
        location=settings.location,
        kind=storage.Kind.STORAGE_V2,
        sku=storage.SkuArgs(name=storage.SkuName.STANDARD_LRS),
        enable_https_traffic_only=True,
        minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
        allow_blob_public_access=False,
        allow_shared_key_access=False,
        default_to_o_auth_authentication=True,
        tags=dict(settings.tags),
    )
    container = storage.BlobContainer(
        "package-container",
        container_name=PACKAGE_CONTAINER,
        account_name=account.name,
        resource_group_name=resource_group,
        public_access=storage.PublicAccess.NONE,
    )
    return RuntimeStorage(account=account, package_container=container)
