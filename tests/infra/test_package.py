"""`python infra/package.py`: the zips hold exactly the deployable files of the real repo."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "infra" / "package.py"

TOP_LEVEL = {
    "host.json",
    "function_app_entry.py",
    "requirements.txt",
    "function_app/",
    "dtbase_core/",
}


def load_packager():
    spec = importlib.util.spec_from_file_location("dtbase_package", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def top_level(names: list[str]) -> set[str]:
    return {name.split("/")[0] + "/" if "/" in name else name for name in names}


def source_files(root: Path) -> set[str]:
    """Files a developer wrote (no caches), relative to the repo."""
    return {
        path.relative_to(REPO).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=True, cwd=REPO)
    return out


def test_function_app_zip_holds_exactly_the_app(built: Path):
    with zipfile.ZipFile(built / "functionapp.zip") as archive:
        names = archive.namelist()
        # The default stack's Durable provider (test_durable.py); the rest as committed.
        packaged = json.loads(archive.read("host.json"))
        committed = json.loads((REPO / "host.json").read_text())
        assert packaged["extensions"]["durableTask"]["storageProvider"]["type"] == "azureManaged"
        del packaged["extensions"]["durableTask"], committed["extensions"]["durableTask"]
        assert packaged == committed
        assert (
            archive.read("function_app_entry.py") == (REPO / "function_app_entry.py").read_bytes()
        )
    assert top_level(names) == TOP_LEVEL
    assert len(names) == len(set(names))
    expected = {"host.json", "function_app_entry.py", "requirements.txt"}
    expected |= {n for n in source_files(REPO / "function_app") if "/tests/" not in n}
    expected |= {n for n in source_files(REPO / "dtbase_core") if "/tests/" not in n}
    assert set(names) == expected
    for name in names:
        assert "__pycache__" not in name and not name.endswith(".pyc")
        assert not name.startswith(("tests/", "infra/", "local/", ".dtbase-local/", "static_web/"))
        assert Path(name).name not in {"local.settings.json", ".env"}


def test_static_site_zip_holds_the_site_as_served(built: Path):
    with zipfile.ZipFile(built / "static_web.zip") as archive:
        names = set(archive.namelist())
    site = REPO / "static_web"
    expected = {
        path.relative_to(site).as_posix()
        for path in site.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.name != ".DS_Store"
    }
    assert names == expected
    assert "index.html" in names  # the site root, not static_web/index.html


def test_zips_are_reproducible(built: Path, tmp_path: Path):
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], check=True, cwd=REPO)
    for name in ("functionapp.zip", "static_web.zip"):
        assert (tmp_path / name).read_bytes() == (built / name).read_bytes(), name


def test_tests_caches_and_local_settings_are_left_out(tmp_path: Path):
    """A tree with every kind of litter: only the deployable files survive."""
    repo = tmp_path / "repo"
    for name in ("host.json", "function_app_entry.py", "requirements.txt"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("{}" if name == "host.json" else name)
    for path in [
        "function_app/__init__.py",
        "function_app/__pycache__/__init__.cpython-311.pyc",
        "function_app/tests/test_x.py",
        "dtbase_core/db.py",
        "dtbase_core/stale.pyc",
        "dtbase_core/.mypy_cache/x.json",
        "dtbase_core/local.settings.json",
        "local.settings.json",
        "infra/__main__.py",
        "tests/test_api.py",
        ".dtbase-local/pgdata/PG_VERSION",
        "static_web/index.html",
        "static_web/js/app.js",
        "static_web/.DS_Store",
        "static_web/js/__pycache__/x.pyc",
    ]:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text("x")
    packager = load_packager()
    function_zip, static_zip = packager.build(tmp_path / "out", repo=repo)
    assert sorted(zipfile.ZipFile(function_zip).namelist()) == [
        "dtbase_core/db.py",
        "function_app/__init__.py",
        "function_app_entry.py",
        "host.json",
        "requirements.txt",
    ]
    assert sorted(zipfile.ZipFile(static_zip).namelist()) == ["index.html", "js/app.js"]


def test_a_missing_entry_script_stops_the_build(tmp_path: Path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "function_app", repo / "function_app")
    (repo / "dtbase_core").mkdir()
    (repo / "host.json").write_text("{}")
    (repo / "requirements.txt").write_text("")
    with pytest.raises(FileNotFoundError, match=r"function_app_entry\.py"):
        load_packager().build(tmp_path / "out", repo=repo)


def test_without_an_api_url_the_site_calls_its_own_origin(built: Path):
    with zipfile.ZipFile(built / "static_web.zip") as archive:
        assert json.loads(archive.read("config.json")) == {"apiBase": "/api"}
        platform = json.loads(archive.read("staticwebapp.config.json"))
    csp = platform["globalHeaders"]["Content-Security-Policy"]
    assert "connect-src 'self' https://login.microsoftonline.com;" in csp


def test_the_deployed_site_names_the_api_and_may_connect_to_it(tmp_path: Path):
    api = "https://dtbase-dev-api.azurewebsites.net/api"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--api-url", api],
        check=True,
        cwd=REPO,
    )
    with zipfile.ZipFile(tmp_path / "static_web.zip") as archive:
        names = archive.namelist()
        assert json.loads(archive.read("config.json")) == {"apiBase": api}
        platform = json.loads(archive.read("staticwebapp.config.json"))
    assert names.count("config.json") == 1 and names.count("staticwebapp.config.json") == 1
    directives = {
        d.split()[0]: d.split()[1:]
        for d in platform["globalHeaders"]["Content-Security-Policy"].split(";")
    }
    assert directives["connect-src"] == [
        "'self'",
        "https://login.microsoftonline.com",
        "https://dtbase-dev-api.azurewebsites.net",
    ]
    assert directives["default-src"] == ["'self'"]  # nothing else loosened
    # Everything else of the platform config is the committed one.
    committed = json.loads((REPO / "static_web" / "staticwebapp.config.json").read_text())
    del committed["globalHeaders"]["Content-Security-Policy"]
    del platform["globalHeaders"]["Content-Security-Policy"]
    assert platform == committed


@pytest.mark.parametrize(
    "api_url", ["http://dtbase-dev-api.azurewebsites.net/api", "dtbase-dev-api", "https://"]
)
def test_an_api_url_that_is_not_https_is_refused(api_url: str, tmp_path: Path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--api-url", api_url],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--api-url must be an https:// URL" in result.stderr
    assert not (tmp_path / "static_web.zip").exists()
