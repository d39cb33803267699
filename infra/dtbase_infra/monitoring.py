"""Log Analytics workspace and the workspace-based Application Insights the Function App logs to."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import applicationinsights, operationalinsights

from .settings import StackSettings


@dataclass
class Monitoring:
    workspace: operationalinsights.Workspace
    insights: applicationinsights.Component


def create_monitoring(settings: StackSettings, resource_group: pulumi.Input[str]) -> Monitoring:
    workspace = operationalinsights.Workspace(
        "logs",
        workspace_name=settings.name("logs"),
        resource_group_name=resource_group,
        location=settings.location,
        sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
        retention_in_days=settings.log_retention_days,
        tags=dict(settings.tags),
    )
    insights = applicationinsights.Component(
        "insights",
        resource_name_=settings.name("insights"),
        resource_group_name=resource_group,
        location=settings.location,
        kind="web",
        application_type="web",
        workspace_resource_id=workspace.id,
        ingestion_mode="LogAnalytics",
        tags=dict(settings.tags),
    )
    return Monitoring(workspace=workspace, insights=insights)
