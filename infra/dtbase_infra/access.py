"""Role assignments for the Function App's identity: each one built-in role on one resource."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import authorization

# Built-in role definition ids (the same in every tenant).
EVENT_HUBS_DATA_RECEIVER = "a638d3c7-ab3a-418d-83e6-5f17a39d4fde"
EVENT_HUBS_DATA_SENDER = "2b629674-e913-4c01-ae53-ef4638d8f975"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"


def role_definition_id(role: str) -> pulumi.Output[str]:
    subscription = authorization.get_client_config_output().subscription_id
    return subscription.apply(
        lambda sub: f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    )


def grant(
    name: str,
    *,
    role: str,
    scope: pulumi.Input[str],
    principal_id: pulumi.Input[str],
    opts: pulumi.ResourceOptions | None = None,
) -> authorization.RoleAssignment:
    """Give a service principal (a managed identity) one role on one resource."""
    return authorization.RoleAssignment(
        name,
        role_definition_id=role_definition_id(role),
        scope=scope,
        principal_id=principal_id,
        principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
        opts=opts,
    )
