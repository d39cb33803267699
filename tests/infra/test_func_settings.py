"""`func start` support: host.json, the committed local.settings template and the Azurite script."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pulumi_harness import Recorded

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "local" / "local.settings.template.json"
AZURITE = REPO / "local" / "azurite.sh"
SECRET_SETTINGS = {
    "DT_DATABASE_URL",
    "DT_JWT_SECRET_KEY",
    "DT_DEFAULT_USER_PASS",
    "DT_OPENWEATHERMAP_APIKEY",
    "DT_ACS_ACCESS_KEY",
}


@pytest.fixture(scope="module")
def host() -> dict:
    return json.loads((REPO / "host.json").read_text())


@pytest.fixture(scope="module")
def template() -> dict:
    return json.loads(TEMPLATE.read_text())


def test_host_json_targets_functions_v4_with_the_api_prefix_and_hub(host: dict):
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    # Static Web Apps proxies <site>/api/... to the linked app unchanged: the prefix must stay.
    assert host["extensions"]["http"]["routePrefix"] == "api"
    assert host["extensions"]["durableTask"]["hubName"] == "DTBaseHub"
    # Task hub names: 3-45 letters and digits, starting with a letter.
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,44}", host["extensions"]["durableTask"]["hubName"])


def test_host_json_logging_is_sensible(host: dict):
    levels = host["logging"]["logLevel"]
    assert levels["default"] in {"Information", "Warning"}
    # The Durable storage provider is chatty at Information; keep it down.
    assert levels["DurableTask.AzureStorage"] in {"Warning", "Error"}
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    assert sampling["isEnabled"] is True
    assert "Request" in sampling["excludedTypes"]  # every API request stays visible


def _function_timeout(host: dict) -> int:
    hours, minutes, seconds = (int(part) for part in host["functionTimeout"].split(":"))
    return hours * 3600 + minutes * 60 + seconds


def test_host_json_timeout_fits_every_serverless_plan(host: dict):
    # Linux Consumption caps runs at 10 minutes; Flex Consumption allows more.
    assert 0 < _function_timeout(host) <= 600


def test_a_service_run_s_call_fits_the_function_timeout(
    host: dict, template: dict, flex_stack: Recorded
):
    """One activity of a service run may take all of DT_SERVICE_RUN_MAX_SECONDS: the
    Functions host must not cut it first."""
    from dtbase_core.config import ServicesSettings

    deployed = {
        pair["name"]: pair["value"]
        for pair in flex_stack.one("azure-native:web:WebApp")["siteConfig"]["appSettings"]
    }
    default = ServicesSettings.model_fields["service_run_max_seconds"].default
    for limit in (
        default,
        template["Values"]["DT_SERVICE_RUN_MAX_SECONDS"],
        deployed["DT_SERVICE_RUN_MAX_SECONDS"],
    ):
        assert 0 < float(limit) <= _function_timeout(host)


def test_template_is_a_core_tools_settings_file(template: dict):
    assert template["IsEncrypted"] is False
    values = template["Values"]
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["PYTHON_SCRIPT_FILE_NAME"] == "function_app_entry.py"
    assert (REPO / values["PYTHON_SCRIPT_FILE_NAME"]).is_file()
    # Core Tools only accepts strings in Values.
    assert all(isinstance(value, str) for value in values.values())
    assert template["Host"]["LocalHttpPort"] == 7071
    assert values["DT_BACKEND_URL"] == "http://127.0.0.1:7071/api"


def test_template_commits_no_secret(template: dict):
    values = template["Values"]
    for name in SECRET_SETTINGS:
        assert values[name] == "", f"{name} must be filled in the real, git-ignored file"


def test_template_and_azure_set_the_same_app_settings(template: dict, flex_stack: Recorded):
    deployed = {
        pair["name"]
        for pair in flex_stack.one("azure-native:web:WebApp")["siteConfig"]["appSettings"]
    }
    # Only locally: on Azure the app takes its address from the platform's WEBSITE_HOSTNAME.
    local = set(template["Values"]) - {"DT_BACKEND_URL"}
    # Only on Azure: the managed identity the telemetry trigger signs in with (locally, the
    # developer's own sign-in reads a real event hub).
    deployed -= {"DT_TELEMETRY_CONNECTION__credential", "DT_TELEMETRY_CONNECTION__clientId"}
    assert {n for n in local if n.startswith("DT_")} == {n for n in deployed if n.startswith("DT_")}
    assert template["Values"]["DT_INGRESS_SCHEDULE"] == "0 0 * * * *"
    assert template["Values"]["DT_FORECAST_SCHEDULE"] == "0 0 3 * * *"
    assert template["Values"]["DT_NOTIFY_SCHEDULE"] == "*/15 * * * * *"
    assert template["Values"]["DT_ALERT_SCHEDULE"] == "0 * * * * *"
    assert template["Values"]["DT_SCHEDULE_DISPATCH"] == "0 * * * * *"
    assert template["Values"]["DT_RETENTION_SCHEDULE"] == "0 30 2 * * *"


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_real_settings_file_is_git_ignored():
    for path in ("local.settings.json", ".dtbase-local/azurite/__azurite_db_blob__.json"):
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert result.returncode == 0, f"{path} is not git-ignored"


def test_azurite_script_is_pinned_local_and_quiet():
    script = AZURITE.read_text()
    assert AZURITE.stat().st_mode & 0o111, "azurite.sh must be executable"
    assert re.search(r"^AZURITE_VERSION=3\.35\.0$", script, re.M)
    assert '"azurite@$AZURITE_VERSION"' in script
    assert "--disableTelemetry" in script
    for service in ("blob", "queue", "table"):
        assert f"--{service}Host 127.0.0.1" in script
    assert 'data="$repo/.dtbase-local/azurite"' in script and '--location "$data"' in script
    assert 'tools="$repo/.dtbase-local/' in script  # npm install goes to a git-ignored folder
    subprocess.run(["bash", "-n", str(AZURITE)], check=True)
