"""Build the deployable packages: `python infra/package.py` writes

  dist/functionapp.zip   host.json, function_app_entry.py, requirements.txt,
                         function_app/, dtbase_core/
  dist/static_web.zip    the contents of static_web/, as served

With `--api-url https://<app>.azurewebsites.net/api` (the stack's `apiUrl`), the site's
config.json names that API, and the Content-Security-Policy in staticwebapp.config.json lets
the pages connect to its origin: the web app calls the Function App directly (no linked
backend), so it must know where the API is and be allowed to reach it.

Nothing else goes in: no tests, infra, local data or settings files (which may hold secrets).
The Durable backend must match the stack's `durableStorage` (its output of that name): with
`--durable-storage scheduler` (the default, as in the stack) the package's host.json names
the Durable Task Scheduler provider; with `azureStorage` it is the repository's host.json,
unchanged (the one `func start` and the local host read).

Zips are reproducible (sorted entries, fixed timestamps), so an unchanged tree gives the same
bytes. Flex Consumption installs requirements.txt with a remote build; for the Linux Consumption
fallback, `--with-dependencies` vendors them into .python_packages/ as that plan requires.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]

FUNCTION_APP_FILES = ("host.json", "function_app_entry.py", "requirements.txt")
FUNCTION_APP_PACKAGES = ("function_app", "dtbase_core")
STATIC_SITE = "static_web"

# Caches and editor litter: never part of a package.
CACHE_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules"}
CACHE_SUFFIXES = (".pyc", ".pyo")
CACHE_FILES = {".DS_Store", "Thumbs.db"}
# Besides caches, code packages never ship tests or local settings.
CODE_EXCLUDED_DIRS = CACHE_DIRS | {"tests", ".dtbase-local"}
CODE_EXCLUDED_FILES = CACHE_FILES | {"local.settings.json", ".env"}

FIXED_TIME = (1980, 1, 1, 0, 0, 0)

# host.json's Durable provider per `durableStorage` (infra/dtbase_infra/durable.py names the
# app settings these read).
DURABLE_STORAGES = ("scheduler", "azureStorage")
SCHEDULER_PROVIDER = {
    "type": "azureManaged",
    "connectionStringName": "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
}


def _walk(root: Path, excluded_dirs: set[str], excluded_files: set[str]) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part in excluded_dirs for part in relative.parts):
            continue
        if (
            path.is_file()
            and path.name not in excluded_files
            and not path.name.endswith(CACHE_SUFFIXES)
        ):
            yield path


def _write(archive: zipfile.ZipFile, path: Path, name: str) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, path.read_bytes())


def function_app_files(repo: Path = REPO) -> list[tuple[Path, str]]:
    """(file, name in zip) for every file of the Function App package."""
    missing = [
        name for name in (*FUNCTION_APP_FILES, *FUNCTION_APP_PACKAGES) if not (repo / name).exists()
    ]
    if missing:
        raise FileNotFoundError(f"cannot package the Function App, missing: {', '.join(missing)}")
    files = [(repo / name, name) for name in FUNCTION_APP_FILES]
    for package in FUNCTION_APP_PACKAGES:
        for path in _walk(repo / package, CODE_EXCLUDED_DIRS, CODE_EXCLUDED_FILES):
            files.append((path, path.relative_to(repo).as_posix()))
    return files


def static_site_files(repo: Path = REPO) -> list[tuple[Path, str]]:
    root = repo / STATIC_SITE
    if not root.is_dir():
        raise FileNotFoundError(f"cannot package the static site, missing: {STATIC_SITE}/")
    return [
        (path, path.relative_to(root).as_posix()) for path in _walk(root, CACHE_DIRS, CACHE_FILES)
    ]


# The files of static_web/ that depend on where the API is.
SITE_CONFIG = "config.json"
SITE_PLATFORM_CONFIG = "staticwebapp.config.json"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}


def api_origin(api_url: str) -> str:
    """The origin of the API URL; https only, except on this machine (for tests)."""
    parts = urlsplit(api_url)
    local = parts.scheme == "http" and parts.hostname in {h.strip("[]") for h in LOOPBACK_HOSTS}
    if not parts.netloc or not (parts.scheme == "https" or local):
        raise ValueError(
            f"--api-url must be an https:// URL such as the stack's apiUrl: {api_url!r}"
        )
    return f"{parts.scheme}://{parts.netloc}"


def with_connect_src(policy: str, origin: str) -> str:
    """The Content-Security-Policy with `origin` added to its connect-src directive."""
    directives = [part.strip() for part in policy.split(";") if part.strip()]
    for index, directive in enumerate(directives):
        words = directive.split()
        if words[0] == "connect-src":
            if origin not in words:
                directives[index] = " ".join([*words, origin])
            break
    else:
        directives.append(f"connect-src 'self' {origin}")
    return "; ".join(directives)


def deployed_site_config(api_url: str, repo: Path = REPO) -> dict[str, bytes]:
    """config.json and staticwebapp.config.json for a site whose API is at `api_url`."""
    origin = api_origin(api_url)
    platform = json.loads((repo / STATIC_SITE / SITE_PLATFORM_CONFIG).read_text())
    headers = platform.setdefault("globalHeaders", {})
    headers["Content-Security-Policy"] = with_connect_src(
        headers.get("Content-Security-Policy", "default-src 'self'"), origin
    )
    return {
        SITE_CONFIG: json.dumps({"apiBase": api_url.rstrip("/")}, indent=2).encode() + b"\n",
        SITE_PLATFORM_CONFIG: json.dumps(platform, indent=2).encode() + b"\n",
    }


def host_json(durable_storage: str, repo: Path = REPO) -> bytes:
    """The package's host.json for this Durable backend."""
    if durable_storage not in DURABLE_STORAGES:
        raise ValueError(f"--durable-storage must be one of {', '.join(DURABLE_STORAGES)}")
    original = (repo / "host.json").read_bytes()
    if durable_storage == "azureStorage":
        return original
    config = json.loads(original)
    durable = config.setdefault("extensions", {}).setdefault("durableTask", {})
    durable["storageProvider"] = dict(SCHEDULER_PROVIDER)
    durable["hubName"] = "%TASKHUB_NAME%"
    return json.dumps(config, indent=2).encode() + b"\n"


def vendored_dependencies(requirements: Path, target: Path) -> list[tuple[Path, str]]:
    """Install Linux wheels for Python 3.11 into .python_packages/lib/site-packages."""
    site_packages = target / ".python_packages" / "lib" / "site-packages"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "--only-binary=:all:",
            "--platform",
            "manylinux2014_x86_64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--target",
            str(site_packages),
            "-r",
            str(requirements),
        ],
        check=True,
    )
    return [
        (path, path.relative_to(target).as_posix())
        for path in _walk(target, CACHE_DIRS, CACHE_FILES)
    ]


def write_zip(files: list[tuple[Path, str]], destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w") as archive:
        for path, name in sorted(files, key=lambda item: item[1]):
            _write(archive, path, name)
    return destination


def build(
    out_dir: Path,
    *,
    repo: Path = REPO,
    with_dependencies: bool = False,
    api_url: str | None = None,
    durable_storage: str = "scheduler",
) -> list[Path]:
    files = function_app_files(repo)
    site_files = static_site_files(repo)
    with tempfile.TemporaryDirectory() as scratch:
        host = Path(scratch) / "host" / "host.json"
        host.parent.mkdir()
        host.write_bytes(host_json(durable_storage, repo))
        files = [(host, name) if name == "host.json" else (path, name) for path, name in files]
        if with_dependencies:
            files += vendored_dependencies(repo / "requirements.txt", Path(scratch))
        function_zip = write_zip(files, out_dir / "functionapp.zip")
        if api_url is not None:
            generated = deployed_site_config(api_url, repo)
            site_files = [item for item in site_files if item[1] not in generated]
            for name, content in generated.items():
                path = Path(scratch) / "site" / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
                site_files.append((path, name))
        static_zip = write_zip(site_files, out_dir / "static_web.zip")
    return [function_zip, static_zip]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output directory (dist/)")
    parser.add_argument(
        "--with-dependencies",
        action="store_true",
        help="vendor requirements into .python_packages/ (Linux Consumption has no remote build)",
    )
    parser.add_argument(
        "--api-url",
        help="the deployed API's base URL (the stack's apiUrl): written into the site's "
        "config.json and its Content-Security-Policy; default: the same origin's /api",
    )
    parser.add_argument(
        "--durable-storage",
        choices=DURABLE_STORAGES,
        default="scheduler",
        help="the stack's durableStorage output: the Durable provider host.json names",
    )
    args = parser.parse_args(argv)
    if args.api_url is not None:
        try:
            api_origin(args.api_url)
        except ValueError as exc:
            parser.error(str(exc))
    built = build(
        args.out,
        with_dependencies=args.with_dependencies,
        api_url=args.api_url,
        durable_storage=args.durable_storage,
    )
    for path in built:
        with zipfile.ZipFile(path) as archive:
            count = len(archive.namelist())
        print(f"{path}  {count} files, {path.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
