"""`dtbase-local` as a newcomer runs it: embedded PostgreSQL, generated secrets, Ctrl-C,
restart, and recovery after SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, free_port


def _postmaster_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


class Twin:
    """A `dtbase-local` process with only the environment a newcomer has."""

    def __init__(self, data_dir: Path, *, make: bool = False, cwd: Path = ROOT) -> None:
        self.port = free_port()
        # A server's shell: no DT_ settings, and no XDG_RUNTIME_DIR (the tests set one).
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DT_") and k != "XDG_RUNTIME_DIR"
        }
        env["PYTHONUNBUFFERED"] = "1"
        self.log = (cwd / data_dir).parent / f"twin-{self.port}.log"
        command = [sys.executable, "-m", "local.cli", "--port", str(self.port)]
        command += ["--data-dir", str(data_dir)]
        if make:
            # `make run` as the README gives it, with this interpreter's scripts and
            # without re-installing (-o: take the install stamp as done).
            bin_dir = Path(sys.executable).parent
            command = ["make", "--no-print-directory", "-o", ".venv/.run-installed", "run"]
            command += [f"BIN={bin_dir}", f"PORT={self.port}", "HOST=localhost"]
            command += [f"DATA_DIR={data_dir}"]
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=make,  # Ctrl-C reaches make and dtbase-local, as in a terminal
        )
        self.api = f"http://127.0.0.1:{self.port}/api"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.api + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError(self.log.read_text())

    def printed_password(self) -> str:
        match = re.search(r"password\s+(\S+)", self.log.read_text())
        assert match, self.log.read_text()
        return match.group(1)

    def token(self, email: str, password: str) -> str:
        reply = httpx.post(self.api + "/auth/login", json={"email": email, "password": password})
        assert reply.status_code == 200, reply.text
        return str(reply.json()["access_token"])

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.process.send_signal(sig)
        return self.process.wait(30)

    def interrupt_group(self) -> None:
        """Ctrl-C in a terminal: SIGINT to the whole process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(30)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="dtbase-twin-") as tmp:
        os.chmod(tmp, 0o755)
        yield Path(tmp) / "data"
        # Whatever a failed test left running on this data dir goes too.
        pid = _postmaster_pid(Path(tmp) / "data")
        if pid:
            os.kill(pid, signal.SIGTERM)


def test_first_start_restart_and_sigkill(data_dir: Path) -> None:
    twin = Twin(data_dir)
    password = twin.printed_password()
    secrets = (data_dir / "local-secrets.json").read_text()
    assert password in secrets and "DT_JWT_SECRET_KEY" in secrets
    token = twin.token("default_user@localhost", password)
    reply = httpx.post(
        twin.api + "/user/create-user",
        json={"email": "kept@example.com", "password": "pw"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.status_code == 201
    assert _postmaster_pid(data_dir) is not None

    # Ctrl-C stops the host and its database cleanly.
    assert twin.stop(signal.SIGINT) == 0
    assert _postmaster_pid(data_dir) is None

    # A second start finds the data and the same generated password.
    twin = Twin(data_dir)
    assert twin.printed_password() == password
    twin.token("kept@example.com", "pw")
    # A token from the first run still verifies: the JWT secret persisted too.
    assert (
        httpx.get(twin.api + "/user/me", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )

    # SIGKILL leaves the database running, orphaned; the next start must still work...
    twin.stop(signal.SIGKILL)
    assert _postmaster_pid(data_dir) is not None
    twin = Twin(data_dir)
    twin.token("kept@example.com", "pw")
    # ...and its clean stop must stop the database (the dead holder was pruned).
    assert twin.stop(signal.SIGTERM) == 0
    deadline = time.monotonic() + 15
    while _postmaster_pid(data_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _postmaster_pid(data_dir) is None


def test_the_default_relative_data_dir_starts_without_a_warning(data_dir: Path) -> None:
    """`.dtbase-local`, the default, is relative: the lock directory embedded PostgreSQL
    takes from XDG_RUNTIME_DIR must still be absolute, or platformdirs warns at start."""
    data_dir.parent.joinpath("data").mkdir()
    twin = Twin(Path("data"), cwd=data_dir.parent)
    try:
        assert "Warning" not in twin.log.read_text()
    finally:
        assert twin.stop() == 0


def test_make_run_passes_port_host_and_data_dir(data_dir: Path) -> None:
    twin = Twin(data_dir, make=True)
    log = twin.log.read_text()
    assert f'--port "{twin.port}" --host "localhost" --data-dir "{data_dir}"' in log
    assert f"web UI     http://localhost:{twin.port}/" in log
    assert f"embedded, in {data_dir}" in log
    assert (data_dir / "local-secrets.json").exists() and _postmaster_pid(data_dir)
    twin.token("default_user@localhost", twin.printed_password())
    twin.interrupt_group()
    deadline = time.monotonic() + 15
    while _postmaster_pid(data_dir) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _postmaster_pid(data_dir) is None
