"""The Static Web App serving `static_web/`.

No linked backend: linking the Function App would put it behind the site's proxy, which
replaces the `Authorization` header (Azure/static-web-apps#34, "by design"), so bearer
tokens would never reach the API, and Flex Consumption is not a plan the documentation lists
for linking. The pages call the API's own origin instead, named in their config.json at
packaging time (`infra/package.py --api-url`), with CORS on the Function App limited to this
site's origin. Without a linked backend the Free SKU is enough.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import web

from .settings import StackSettings

SKU = "Free"


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
