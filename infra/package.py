"""Build the deployable packages: `python infra/package.py` writes

  dist/functionapp.zip   host.json, function_app_entry.py, requirements.txt,
                         function_app/, dtbase_core/
  dist/static_web.zip    the contents of static_web/, as served

Nothing else goes in: no tests, infra, local data or settings files (which may hold secrets).
Zips are reproducible (sorted entries, fixed timestamps), so an unchanged tree gives the same
bytes. Flex Consumption installs requirements.txt with a remote build; for the Linux Consumption
fallback, `--with-dependencies` vendors them into .python_packages/ as that plan requires.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

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


def build(out_dir: Path, *, repo: Path = REPO, with_dependencies: bool = False) -> list[Path]:
    files = function_app_files(repo)
    with tempfile.TemporaryDirectory() as scratch:
        if with_dependencies:
            files += vendored_dependencies(repo / "requirements.txt", Path(scratch))
        function_zip = write_zip(files, out_dir / "functionapp.zip")
    static_zip = write_zip(static_site_files(repo), out_dir / "static_web.zip")
    return [function_zip, static_zip]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output directory (dist/)")
    parser.add_argument(
        "--with-dependencies",
        action="store_true",
        help="vendor requirements into .python_packages/ (Linux Consumption has no remote build)",
    )
    args = parser.parse_args(argv)
    for path in build(args.out, with_dependencies=args.with_dependencies):
        with zipfile.ZipFile(path) as archive:
            count = len(archive.namelist())
        print(f"{path}  {count} files, {path.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
