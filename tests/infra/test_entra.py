"""Sign-in with Entra ID in the Pulumi program: optional, from configuration, plain app settings."""

from __future__ import annotations

import pytest
from pulumi_harness import Recorded, run_program

WEB_APP = "azure-native:web:WebApp"
TENANT = "72f988bf-0000-4000-8000-00000000d7ba"
API = "a1b2c3d4-0000-4000-8000-000000000a91"
SPA = "a1b2c3d4-0000-4000-8000-0000000005a0"


def app_settings(stack: Recorded) -> dict[str, str]:
    pairs = stack.one(WEB_APP)["siteConfig"]["appSettings"]
    return {pair["name"]: pair["value"] for pair in pairs}


@pytest.fixture(scope="module")
def entra_stack() -> Recorded:
    return run_program(
        {
            "entra_tenant_id": TENANT,
            "entra_audience": f"{API},api://dtbase-api",
            "entra_spa_client_id": SPA,
            "entra_auto_provision": True,
        }
    )


def test_entra_settings_reach_the_function_app(entra_stack: Recorded) -> None:
    settings = app_settings(entra_stack)
    assert settings["DT_ENTRA_TENANT_ID"] == TENANT
    assert settings["DT_ENTRA_AUDIENCE"] == f"{API},api://dtbase-api"
    assert settings["DT_ENTRA_SPA_CLIENT_ID"] == SPA
    assert settings["DT_ENTRA_ADMIN_ROLE"] == "DTBase.Admin"
    assert settings["DT_ENTRA_AUTO_PROVISION"] == "1"
    assert "DT_ENTRA_SCOPES" not in settings  # the API derives api://.../user_impersonation
    # Nothing Entra-related is a secret: no client secret is deployed for the API.
    assert not any("SECRET" in name for name in settings if name.startswith("DT_ENTRA_"))
    # Built-in sign-in keeps its settings.
    assert settings["DT_JWT_ACCESS_TOKEN_EXPIRES_SECONDS"] == "3600"


def test_entra_is_off_unless_configured(flex_stack: Recorded) -> None:
    assert not [name for name in app_settings(flex_stack) if name.startswith("DT_ENTRA_")]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"entra_tenant_id": TENANT}, "entraAudience"),
        ({"entra_audience": API}, "entraTenantId"),
        ({"entra_spa_client_id": SPA}, "entraSpaClientId"),
        ({"entra_tenant_id": "common", "entra_audience": API}, "one tenant"),
    ],
)
def test_incomplete_entra_settings_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_program(overrides)


def test_entra_keys_are_read_from_the_stack_configuration(flex_stack: Recorded) -> None:
    import pulumi
    from dtbase_infra.settings import load_settings

    secrets = {
        "dtbase:dbAdminPassword": "a",
        "dtbase:dbAppPassword": "d",
        "dtbase:jwtSecretKey": "b",
        "dtbase:defaultUserPassword": "c",
    }
    config = {
        "dtbase:prefix": "dtbase-dev",
        "dtbase:location": "uksouth",
        "dtbase:entraTenantId": TENANT,
        "dtbase:entraAudience": API,
        "dtbase:entraSpaClientId": SPA,
        "dtbase:entraAutoProvision": "true",
        "dtbase:entraAdminRole": "Twin.Admin",
    }
    pulumi.runtime.set_all_config({**config, **secrets}, secret_keys=list(secrets))
    try:
        settings = load_settings()
    finally:
        pulumi.runtime.set_all_config({})
    assert (settings.entra_tenant_id, settings.entra_audience) == (TENANT, API)
    assert settings.entra_spa_client_id == SPA and settings.entra_auto_provision is True
    assert settings.entra_admin_role == "Twin.Admin" and settings.entra_scopes is None
