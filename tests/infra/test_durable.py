"""The Durable Functions backend: a Durable Task Scheduler by default, the runtime storage
account with `durableStorage: azureStorage`; and the host.json each one needs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from pulumi_harness import REPO, SCHEDULER_ENDPOINT, Recorded, run_program, stack_settings

WEB_APP = "azure-native:web:WebApp"
ROLE = "azure-native:authorization:RoleAssignment"
SCHEDULER = "azure-native:durabletask:Scheduler"
TASK_HUB = "azure-native:durabletask:TaskHub"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
DURABLE_TASK_DATA_CONTRIBUTOR = "0ad04412-c4d5-4796-b79c-f76d14c8d402"
SCRIPT = REPO / "infra" / "package.py"


def app_settings(stack: Recorded) -> dict[str, str]:
    return {p["name"]: p["value"] for p in stack.one(WEB_APP)["siteConfig"]["appSettings"]}


def scheduler_grants(stack: Recorded) -> list[dict]:
    return [a for a in stack.all(ROLE) if "durabletask" in a["scope"].lower()]


@pytest.fixture(scope="module")
def storage_stack() -> Recorded:
    return run_program({"durable_storage": "azureStorage"})


# --- the default: a Durable Task Scheduler --------------------------------------------------


def test_default_stack_declares_a_consumption_scheduler_and_its_task_hub(flex_stack: Recorded):
    scheduler = flex_stack.one(SCHEDULER)
    assert scheduler["schedulerName"] == "dtbase-test-dts"
    assert scheduler["location"] == "uksouth"
    # Consumption: billed per action, no capacity units to size.
    assert scheduler["properties"]["sku"] == {"name": "Consumption"}
    hub = flex_stack.one(TASK_HUB)
    assert hub["taskHubName"] == "DTBaseHub"
    assert hub["schedulerName"] == "dtbase-test-dts"
    assert "durable-scheduler" in flex_stack.depends["durable-task-hub"]


def test_the_app_identity_holds_durable_task_data_contributor_on_the_scheduler(
    flex_stack: Recorded,
):
    (grant,) = scheduler_grants(flex_stack)
    assert grant["scope"] == flex_stack.ids[SCHEDULER][0]
    assert grant["roleDefinitionId"].endswith(f"/roleDefinitions/{DURABLE_TASK_DATA_CONTRIBUTOR}")
    assert grant["principalId"] == "principal-of-dtbase-test-api-id"
    assert grant["principalType"] == "ServicePrincipal"
    # Granted before the app first starts, like its other rights.
    assert "app-uses-durable-scheduler" in flex_stack.depends["function-app"]


def test_app_settings_carry_the_identity_connection_string_and_no_secret(flex_stack: Recorded):
    settings = app_settings(flex_stack)
    assert settings["DURABLE_TASK_SCHEDULER_CONNECTION_STRING"] == (
        f"Endpoint={SCHEDULER_ENDPOINT};Authentication=ManagedIdentity;"
        "ClientID=client-of-dtbase-test-api-id"
    )
    assert settings["TASKHUB_NAME"] == "DTBaseHub"
    connection = settings["DURABLE_TASK_SCHEDULER_CONNECTION_STRING"]
    parts = dict(part.split("=", 1) for part in connection.split(";"))
    # A user-assigned identity must be named (ClientID), or the host looks for a
    # system-assigned one; nothing secret is in it.
    assert set(parts) == {"Endpoint", "Authentication", "ClientID"}
    for marker in ("AccountKey", "SharedAccessSignature", "Key=", "Secret"):
        assert marker not in connection
    # The host itself still needs its storage account, reached with the identity.
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"


def test_the_scheduler_admits_callers_by_identity_only(flex_stack: Recorded):
    """An empty allow list refuses every call (403 even with the role): the list is open
    and the data roles decide (the scheduler has no keys)."""
    assert flex_stack.one(SCHEDULER)["properties"]["ipAllowlist"] == ["0.0.0.0/0"]


@pytest.mark.parametrize("stack_name", ["flex_stack", "consumption_stack", "private_stack"])
def test_scheduler_and_task_hub_names_fit_azure_rules(
    stack_name: str, request: pytest.FixtureRequest
):
    stack: Recorded = request.getfixturevalue(stack_name)
    # Microsoft.DurableTask/schedulers: 3-64 letters, digits and hyphens.
    assert re.fullmatch(r"[a-zA-Z0-9-]{3,64}", stack.one(SCHEDULER)["schedulerName"])
    # The same hub name host.json gives Azure Storage (3-45 letters and digits).
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,44}", stack.one(TASK_HUB)["taskHubName"])


def test_the_longest_prefix_still_gives_a_valid_scheduler_name():
    from dtbase_infra.durable import SCHEDULER_NAME, scheduler_name

    settings = stack_settings(prefix="a" * 14)
    assert SCHEDULER_NAME.match(scheduler_name(settings))


def test_a_dedicated_scheduler_takes_its_capacity_units():
    stack = run_program({"scheduler_sku": "Dedicated", "scheduler_capacity": 3})
    assert stack.one(SCHEDULER)["properties"]["sku"] == {"name": "Dedicated", "capacity": 3}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"durable_storage": "netherite"}, "durableStorage"),
        ({"scheduler_sku": "Premium"}, "schedulerSku"),
        ({"scheduler_capacity": 4}, "schedulerCapacity"),  # Dedicated: up to 3 units
        ({"scheduler_capacity": 0}, "schedulerCapacity"),
        ({"durable_task_role_id": "Durable Task Data Contributor"}, "durableTaskRoleId"),
    ],
)
def test_invalid_durable_settings_are_refused(overrides: dict, message: str):
    with pytest.raises(ValueError, match=message):
        stack_settings(**overrides)


def test_the_role_id_is_a_stack_setting():
    other = "11111111-2222-3333-4444-555555555555"
    stack = run_program({"durable_task_role_id": other})
    (grant,) = scheduler_grants(stack)
    assert grant["roleDefinitionId"].endswith(f"/roleDefinitions/{other}")


# --- durableStorage: azureStorage -----------------------------------------------------------


def test_azure_storage_declares_no_scheduler_and_keeps_today_s_settings(
    storage_stack: Recorded, flex_stack: Recorded
):
    assert storage_stack.all(SCHEDULER) == storage_stack.all(TASK_HUB) == []
    assert scheduler_grants(storage_stack) == []
    settings = app_settings(storage_stack)
    assert "DURABLE_TASK_SCHEDULER_CONNECTION_STRING" not in settings
    assert "TASKHUB_NAME" not in settings
    # Exactly the default stack's settings less the scheduler's two.
    scheduler_settings = {"DURABLE_TASK_SCHEDULER_CONNECTION_STRING", "TASKHUB_NAME"}
    assert settings == {
        k: v for k, v in app_settings(flex_stack).items() if k not in scheduler_settings
    }
    # The storage roles the task hub needs in the account are there.
    assert len(storage_stack.all(ROLE)) == len(flex_stack.all(ROLE)) - 1


# --- host.json in the package ----------------------------------------------------------------


def package_host_json(tmp_path: Path, *args: str) -> dict:
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), *args], check=True, cwd=REPO
    )
    with zipfile.ZipFile(tmp_path / "functionapp.zip") as archive:
        return json.loads(archive.read("host.json"))


def test_the_scheduler_package_names_the_managed_provider(tmp_path: Path, flex_stack: Recorded):
    durable = package_host_json(tmp_path, "--durable-storage", "scheduler")["extensions"][
        "durableTask"
    ]
    provider = durable["storageProvider"]
    assert provider == {
        "type": "azureManaged",
        "connectionStringName": "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
    }
    # Every setting host.json names is deployed.
    settings = app_settings(flex_stack)
    assert provider["connectionStringName"] in settings
    hub_setting = re.fullmatch(r"%([A-Z_]+)%", durable["hubName"]).group(1)
    assert settings[hub_setting] == "DTBaseHub"


def test_the_azure_storage_package_keeps_the_committed_host_json(tmp_path: Path):
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--durable-storage", "azureStorage"],
        check=True,
        cwd=REPO,
    )
    with zipfile.ZipFile(tmp_path / "functionapp.zip") as archive:
        assert archive.read("host.json") == (REPO / "host.json").read_bytes()


def test_the_committed_host_json_stays_the_local_one():
    """`func start` (Azurite) and the local host read the repository's host.json: its hub is
    a literal name, with no provider."""
    durable = json.loads((REPO / "host.json").read_text())["extensions"]["durableTask"]
    assert durable == {"hubName": "DTBaseHub"}


def test_the_pipeline_packages_for_the_stack_s_backend():
    import yaml

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "deploy.yml").read_text())
    runs = "\n".join(step.get("run", "") for step in workflow["jobs"]["deploy"]["steps"])
    assert "durableStorage" in runs
    packaging = [line for line in runs.splitlines() if "infra/package.py" in line]
    assert packaging
    for index, line in enumerate(runs.splitlines()):
        if "infra/package.py" in line:
            tail = "\n".join(runs.splitlines()[index : index + 2])
            assert '--durable-storage "${{ steps.stack.outputs.durableStorage }}"' in tail
    assert 'pulumi.export("durableStorage"' in (REPO / "infra" / "__main__.py").read_text()


def test_the_pipeline_identity_may_grant_the_scheduler_role():
    """infra/README.md's condition lists every role the program grants: without this one,
    the pipeline's `pulumi up` could not create the app's grant on the scheduler."""
    readme = (REPO / "infra" / "README.md").read_text()
    (roles,) = re.findall(r'^roles="([^"]+)"', readme, re.M)
    assert DURABLE_TASK_DATA_CONTRIBUTOR in roles.split(", ")
