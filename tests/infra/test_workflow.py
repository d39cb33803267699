"""The deployment workflow: tests gate it, it deploys only from main, credentials are secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "deploy.yml"
INFRA = Path(__file__).resolve().parents[2] / "infra"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(job: dict) -> list[dict]:
    return job["steps"]


def scripts(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


def test_deploy_runs_after_tests_on_main_only(workflow: dict):
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "test"
    assert "github.ref == 'refs/heads/main'" in deploy["if"]
    assert "pull_request" in deploy["if"]  # ... and never for a pull request
    assert "./.ci/run" in scripts(workflow["jobs"]["test"])


def test_azure_login_is_oidc_from_secrets(workflow: dict):
    deploy = workflow["jobs"]["deploy"]
    assert deploy["permissions"]["id-token"] == "write"
    assert workflow["permissions"] == {"contents": "read"}
    login = next(s for s in steps(deploy) if s.get("uses", "").startswith("azure/login@"))
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}  # no client secret
    for value in login["with"].values():
        assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", value)
    for name, value in deploy["env"].items():
        if any(
            word in name for word in ("TOKEN", "PASSPHRASE", "CLIENT_ID", "TENANT", "SUBSCRIPTION")
        ):
            assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", value), name


def test_deploy_order_is_infra_migrations_packages(workflow: dict):
    deploy = steps(workflow["jobs"]["deploy"])
    uses = [s.get("uses", "") for s in deploy]
    runs = [s.get("run", "") for s in deploy]

    def index(predicate) -> int:
        return next(i for i, step in enumerate(deploy) if predicate(step))

    up = index(lambda s: s.get("with", {}).get("command") == "up")
    assert deploy[up]["uses"].startswith("pulumi/actions@")
    assert deploy[up]["with"]["work-dir"] == "infra"
    migrate = index(lambda s: "dtbase-migrate" in s.get("run", ""))
    package = index(lambda s: "python infra/package.py" in s.get("run", ""))
    functions = index(lambda s: s.get("uses", "").startswith("Azure/functions-action@"))
    site = index(lambda s: s.get("uses", "").startswith("Azure/static-web-apps-deploy@"))
    grant = index(lambda s: "sql/app_role.sql" in s.get("run", ""))
    assert up < migrate < grant < package < functions and package < site
    assert deploy[functions]["with"]["package"] == "dist/functionapp.zip"
    assert "dist/static_web.zip" in "\n".join(runs)
    assert any(u.startswith("Azure/static-web-apps-deploy@") for u in uses)


def test_runner_database_rule_is_always_removed(workflow: dict):
    deploy = steps(workflow["jobs"]["deploy"])
    opened = next(s for s in deploy if "firewall-rule create" in s.get("run", ""))
    closed = next(s for s in deploy if "firewall-rule delete" in s.get("run", ""))
    assert "always()" in closed["if"]
    # One address, never a range.
    assert '--start-ip-address "$ip" --end-ip-address "$ip"' in opened["run"]


def test_secrets_are_masked_in_logs(workflow: dict):
    text = scripts(workflow["jobs"]["deploy"])
    assert "::add-mask::$DT_DATABASE_URL" in text
    assert "::add-mask::$token" in text


def step(job: dict, name: str) -> dict:
    return next(s for s in steps(job) if s.get("name") == name)


def test_flex_deployment_names_its_sku(workflow: dict):
    deploy = workflow["jobs"]["deploy"]
    flex = next(s for s in steps(deploy) if s.get("uses", "").startswith("Azure/functions-action@"))
    # The action's value for Flex Consumption (it deploys through the blob container).
    assert flex["with"]["sku"] == "flexconsumption"
    assert flex["with"]["remote-build"] is True
    assert "hostingPlan == 'flex'" in flex["if"]


def test_every_required_stack_secret_is_checked_before_pulumi_up(workflow: dict):
    """`pulumi up` would stop on missing configuration; the check names what is missing and
    takes each secret from a GitHub secret when one is set."""
    settings = (INFRA / "dtbase_infra" / "settings.py").read_text()
    required = set(re.findall(r'require_secret\("(\w+)"\)', settings))
    assert required >= {"dbAdminPassword", "dbAppPassword", "jwtSecretKey", "defaultUserPassword"}
    deploy = workflow["jobs"]["deploy"]
    check = step(deploy, "Stack configuration")
    for key in required:
        assert f"{key}:DT_" in check["run"], key
    for variable in re.findall(r"(\w+):(DT_\w+)", check["run"]):
        assert check["env"][variable[1]] == f"${{{{ secrets.{variable[1]} }}}}"
    assert "pulumi config set --secret" in check["run"]
    assert "printf '%s' \"$value\" |" in check["run"]  # the value never on a command line
    names = [s.get("name") for s in steps(deploy)]
    assert names.index("Stack configuration") < names.index("pulumi up")


def test_self_managed_backend_settings_reach_the_cli(workflow: dict):
    env = workflow["jobs"]["deploy"]["env"]
    assert env["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert env["AZURE_STORAGE_ACCOUNT"] == "${{ vars.PULUMI_STATE_STORAGE_ACCOUNT }}"
    assert env["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"


def test_site_is_packaged_with_the_deployed_api_url(workflow: dict):
    build = step(workflow["jobs"]["deploy"], "Build packages")
    lines = [line for line in build["run"].splitlines() if "python infra/package.py" in line]
    assert len(lines) == 2
    for line in lines:
        assert '--api-url "${{ steps.stack.outputs.apiUrl }}"' in line


def test_app_role_is_granted_while_the_runner_may_reach_the_server(workflow: dict):
    deploy = workflow["jobs"]["deploy"]
    names = [s.get("name") for s in steps(deploy)]
    grant = step(deploy, "Grant the app's database role")
    assert "::add-mask::$app_password" in grant["run"]
    assert "databaseAppRole" in grant["run"]
    assert (
        names.index("Let this runner reach PostgreSQL")
        < names.index("Grant the app's database role")
        < names.index("Remove the runner's database rule")
    )


def test_smoke_test_checks_the_api_the_site_and_cors(workflow: dict):
    smoke = step(workflow["jobs"]["deploy"], "Smoke test")
    assert smoke["env"]["SITE"] == "${{ steps.stack.outputs.siteUrl }}"
    assert smoke["env"]["API"] == "${{ steps.stack.outputs.apiUrl }}"
    assert '"$API/health"' in smoke["run"]
    assert '"$SITE/config.json"' in smoke["run"]
    assert '-H "Origin: $SITE"' in smoke["run"] and "access-control-allow-origin" in smoke["run"]
