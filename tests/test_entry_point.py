"""The Functions worker finds the app: a replay of its indexing (the entry script
named by PYTHON_SCRIPT_FILE_NAME exists, exposes exactly one app, lists every route)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.support import ROOT

INDEX_SCRIPT = r"""
import importlib.util, json, sys
import azure.functions as func
spec = importlib.util.spec_from_file_location(sys.argv[1][:-3], sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
apps = [v for v in vars(module).values() if isinstance(v, func.FunctionApp)]
functions = apps[0].get_functions() if len(apps) == 1 else []
out = []
for f in functions:
    t = f.get_trigger()
    methods = getattr(t, "methods", None) or []
    out.append({"name": f.get_function_name(), "type": t.get_binding_name(),
                "route": getattr(t, "route", None),
                "methods": [str(getattr(m, "value", m)) for m in methods]})
from function_app.http import ROUTES
declared = [[r.path, r.method] for r in ROUTES]
print(json.dumps({"apps": len(apps), "functions": out, "declared": declared,
                  "heavy": sorted(m for m in ("pandas", "statsmodels") if m in sys.modules)}))
"""


def _settings() -> dict[str, str]:
    return json.loads((ROOT / "local" / "local.settings.template.json").read_text())["Values"]


def _index(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = _settings()["PYTHON_SCRIPT_FILE_NAME"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env_extra}
    return subprocess.run(
        [sys.executable, "-c", INDEX_SCRIPT, script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_entry_script_exists_and_is_importable_by_name() -> None:
    script = _settings()["PYTHON_SCRIPT_FILE_NAME"]
    assert (ROOT / script).is_file()
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\.py", script)
    # A package of the same name would shadow the script: the worker would import it.
    assert not (ROOT / script[:-3]).exists()


def test_worker_indexing_finds_one_app_with_every_route() -> None:
    result = _index(
        {"DT_JWT_SECRET_KEY": "s" * 40, "DT_DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}
    )
    assert result.returncode == 0, result.stderr
    indexed = json.loads(result.stdout.strip().splitlines()[-1])
    assert indexed["apps"] == 1
    names = [f["name"] for f in indexed["functions"]]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", n) for n in names), names
    http = {
        (f["route"], tuple(f["methods"]))
        for f in indexed["functions"]
        if f["type"] == "httpTrigger"
    }
    assert len(indexed["declared"]) >= 50
    for path, method in indexed["declared"]:
        assert (path, (method,)) in http, path
    assert ("{*path}", ()) in http  # the catch-all: 404, 405 and 307 replies
    # Cold starts: the HTTP path never imports the heavy numeric libraries.
    assert indexed["heavy"] == []


def test_app_refuses_to_start_without_secrets_outside_local_mode() -> None:
    result = _index({})
    assert result.returncode != 0
    assert "DT_JWT_SECRET_KEY" in result.stderr and "DT_DATABASE_URL" in result.stderr


def test_app_refuses_a_short_jwt_secret_outside_local_mode() -> None:
    result = _index({"DT_JWT_SECRET_KEY": "s" * 31, "DT_DATABASE_URL": "postgresql://x@h/x"})
    assert result.returncode != 0
    assert "DT_JWT_SECRET_KEY must be at least 32 bytes" in result.stderr
    assert "(it has 31)" in result.stderr


def test_a_bad_forecast_config_stops_start_up_not_the_03_00_timer() -> None:
    good = {"DT_JWT_SECRET_KEY": "s" * 40, "DT_DATABASE_URL": "postgresql://x@h/x"}
    result = _index({**good, "DT_FORECAST_CONFIG": '{"arima": {"alpha": 2}}'})
    assert result.returncode != 0
    assert "DT_FORECAST_CONFIG (arima.alpha): Input should be less than 1" in result.stderr
    assert _index({**good, "DT_FORECAST_CONFIG": '{"arima": {"alpha": 0.1}}'}).returncode == 0


def test_importing_the_app_writes_nothing_to_the_environment() -> None:
    script = (
        "import json, os; before = dict(os.environ); import function_app; "
        "print(json.dumps(sorted(set(os.environ.items()) ^ set(before.items()))))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DT_JWT_SECRET_KEY": "s" * 40,
        "DT_DATABASE_URL": "postgresql://x@h/x",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
