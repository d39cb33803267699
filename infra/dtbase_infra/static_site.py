"""The Static Web App serving `static_web/`, with the Function App linked as its `/api` backend.

Linking a backend needs the Standard SKU; requests to `<site>/api/...` are then proxied to
the Function App, whose host.json keeps the `api` route prefix that the proxy expects.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import web

from .settings import StackSettings

SKU = "Standard"


def create_static_site(
    settings: StackSettings, resource_group: pulumi.Input[str]
) -> web.StaticSite:
    return web.StaticSite(
        "static-site",
        name=settings.name("web"),
        resource_group_name=resource_group,
        location=settings.static_site_location,
        sku=web.SkuDescriptionArgs(name=SKU, tier=SKU),
        # Content is uploaded by the pipeline, not built from a linked repository.
        allow_config_file_updates=True,
        tags=dict(settings.tags),
    )


def link_api_backend(
    settings: StackSettings,
    resource_group: pulumi.Input[str],
    site: web.StaticSite,
    app: web.WebApp,
) -> web.StaticSiteLinkedBackend:
    return web.StaticSiteLinkedBackend(
        "static-site-api",
        name=site.name,
        resource_group_name=resource_group,
        linked_backend_name="api",
        backend_resource_id=app.id,
        region=settings.location,
    )
