"""The deployment workflow: tests gate it, it deploys only from main, credentials are secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "deploy.yml"


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

    up = index(lambda s: s.get("uses", "").startswith("pulumi/actions@"))
    assert deploy[up]["with"]["command"] == "up"
    assert deploy[up]["with"]["work-dir"] == "infra"
    migrate = index(lambda s: "dtbase-migrate" in s.get("run", ""))
    package = index(lambda s: "python infra/package.py" in s.get("run", ""))
    functions = index(lambda s: s.get("uses", "").startswith("Azure/functions-action@"))
    site = index(lambda s: s.get("uses", "").startswith("Azure/static-web-apps-deploy@"))
    assert up < migrate < package < functions and package < site
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
