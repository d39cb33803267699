"""requirements.txt (what Azure installs) stays identical to pyproject's dependencies."""

from __future__ import annotations

import tomllib

from tests.support import ROOT


def test_requirements_match_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [
        line.strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == project["dependencies"]
    assert all("==" in line for line in lines), "every runtime dependency is pinned"
