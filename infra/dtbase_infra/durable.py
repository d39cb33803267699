"""The Durable Functions backend: a Durable Task Scheduler (the default, Microsoft's
recommended provider) or, with `durableStorage: azureStorage`, the runtime storage account.

With the scheduler, the app reaches it with its user-assigned identity (the scheduler takes
no keys): the connection string names the endpoint, `Authentication=ManagedIdentity` and the
identity's client id, and the identity holds Durable Task Data Contributor on the scheduler.
host.json must name the provider too: `infra/package.py --durable-storage` writes it into the
package (the repository's host.json stays the Azure Storage one, which `func start` with
Azurite and the local host use).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import durabletask

from .settings import StackSettings

# The task hub, the same name host.json gives the Azure Storage provider.
TASK_HUB = "DTBaseHub"
# The app settings host.json's azureManaged provider reads (infra/package.py).
CONNECTION_SETTING = "DURABLE_TASK_SCHEDULER_CONNECTION_STRING"
TASK_HUB_SETTING = "TASKHUB_NAME"
# Scheduler names: 3-64 letters, digits and hyphens (Microsoft.DurableTask/schedulers).
SCHEDULER_NAME = re.compile(r"^[a-zA-Z0-9-]{3,64}$")
# An empty allow list refuses every caller; access is by Entra identity and role alone.
ALLOW_ALL = "0.0.0.0/0"


@dataclass
class DurableScheduler:
    scheduler: durabletask.Scheduler
    task_hub: durabletask.TaskHub

    def app_settings(self, client_id: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
        """No secret: the identity's client id and the scheduler's endpoint."""
        endpoint = self.scheduler.properties.apply(lambda p: p.endpoint)
        return {
            CONNECTION_SETTING: pulumi.Output.concat(
                "Endpoint=", endpoint, ";Authentication=ManagedIdentity;ClientID=", client_id
            ),
            TASK_HUB_SETTING: self.task_hub.name,
        }


def scheduler_name(settings: StackSettings) -> str:
    return settings.name("dts")


def create_scheduler(
    settings: StackSettings, resource_group: pulumi.Input[str]
) -> DurableScheduler:
    sku = durabletask.SchedulerSkuArgs(
        name=settings.scheduler_sku,
        # Capacity units exist on Dedicated only; Consumption is billed per action.
        capacity=settings.scheduler_capacity if settings.scheduler_sku == "Dedicated" else None,
    )
    scheduler = durabletask.Scheduler(
        "durable-scheduler",
        scheduler_name=scheduler_name(settings),
        resource_group_name=resource_group,
        location=settings.location,
        properties=durabletask.SchedulerPropertiesArgs(ip_allowlist=[ALLOW_ALL], sku=sku),
        tags=dict(settings.tags),
    )
    task_hub = durabletask.TaskHub(
        "durable-task-hub",
        task_hub_name=TASK_HUB,
        scheduler_name=scheduler.name,
        resource_group_name=resource_group,
    )
    return DurableScheduler(scheduler=scheduler, task_hub=task_hub)
