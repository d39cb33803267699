"""The app's own API address: DT_BACKEND_URL when set, else (on Azure) the default host name
the platform sets in WEBSITE_HOSTNAME, else the local host's."""

from __future__ import annotations

import pytest

from dtbase_core.config import get_settings, reset_settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DT_BACKEND_URL", raising=False)
    monkeypatch.delenv("WEBSITE_HOSTNAME", raising=False)
    reset_settings()
    yield monkeypatch
    reset_settings()


def test_on_azure_the_platform_host_name_is_used(env: pytest.MonkeyPatch) -> None:
    env.setenv("WEBSITE_HOSTNAME", "dtbase-dev-api-b4c3d2.uksouth-01.azurewebsites.net")
    assert get_settings().services.backend_url == (
        "https://dtbase-dev-api-b4c3d2.uksouth-01.azurewebsites.net/api"
    )


def test_an_explicit_setting_wins(env: pytest.MonkeyPatch) -> None:
    env.setenv("WEBSITE_HOSTNAME", "dtbase-dev-api.azurewebsites.net")
    env.setenv("DT_BACKEND_URL", "http://127.0.0.1:7071/api")
    assert get_settings().services.backend_url == "http://127.0.0.1:7071/api"


def test_locally_the_local_host(env: pytest.MonkeyPatch) -> None:
    assert get_settings().services.backend_url == "http://127.0.0.1:7071/api"
