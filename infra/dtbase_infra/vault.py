"""Key Vault holding the app's secrets; the Function App reads them through Key Vault references.

The vault uses Azure RBAC (no access policies). Secrets are written through the management plane
by Pulumi, so the deploying identity needs no data-plane role; only the Function App's identity
gets "Key Vault Secrets User" (read secret values), scoped to this vault.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import authorization, keyvault

from .settings import StackSettings


@dataclass
class Vault:
    vault: keyvault.Vault
    secrets: dict[str, keyvault.Secret] = field(default_factory=dict)

    def reference(self, secret_name: str) -> pulumi.Output[str]:
        """An app-setting value that makes the platform fetch the secret's current version."""
        if secret_name not in self.secrets:
            raise KeyError(f"no secret {secret_name!r} in the vault")
        # Versionless URI: a rotated secret is picked up without touching the app settings.
        return pulumi.Output.concat(
            "@Microsoft.KeyVault(SecretUri=",
            self.vault.properties.vault_uri,
            f"secrets/{secret_name}/)",
        )


def create_vault(settings: StackSettings, resource_group: pulumi.Input[str]) -> Vault:
    tenant_id = authorization.get_client_config_output().tenant_id
    vault = keyvault.Vault(
        "vault",
        vault_name=settings.name("kv"),
        resource_group_name=resource_group,
        location=settings.location,
        properties=keyvault.VaultPropertiesArgs(
            tenant_id=tenant_id,
            sku=keyvault.SkuArgs(family=keyvault.SkuFamily.A, name=keyvault.SkuName.STANDARD),
            enable_rbac_authorization=True,
            enable_soft_delete=True,
            soft_delete_retention_in_days=7,
            public_network_access="Enabled",
        ),
        tags=dict(settings.tags),
    )
    return Vault(vault=vault)


def add_secret(
    vault: Vault, resource_group: pulumi.Input[str], secret_name: str, value: pulumi.Input[str]
) -> keyvault.Secret:
    secret = keyvault.Secret(
        f"secret-{secret_name}",
        secret_name=secret_name,
        vault_name=vault.vault.name,
        resource_group_name=resource_group,
        properties=keyvault.SecretPropertiesArgs(value=pulumi.Output.secret(value)),
    )
    vault.secrets[secret_name] = secret
    return secret
