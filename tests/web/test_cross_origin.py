"""The web app and the API on two origins, as on Azure (a Static Web App and the Function
App's own host name, no linked backend): the site is packaged with `--api-url` exactly as
the deployment does it, served from one port, and the API from another with
DT_CORS_ORIGINS naming the site. The browser signs in, reads and writes with bearer tokens
sent cross-origin; a page of any other origin is refused by CORS."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect

from local.host import StaticSite
from tests.support import ROOT, LocalHost, TestDatabase, free_port, start_host
from tests.web.conftest import ConsoleLog, nav_to, sign_in


def load_packager() -> Any:
    spec = importlib.util.spec_from_file_location("dtbase_package", ROOT / "infra" / "package.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StaticServer:
    """A plain static file server for the packaged site (with its staticwebapp.config.json
    headers, CSP included, as Static Web Apps sends them); it serves no API."""

    def __init__(self, root: Path, port: int) -> None:
        site = StaticSite(root)

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                await site.serve(scope, send)

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> StaticServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "static server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class SplitDeployment:
    site: str
    stranger: str
    api: LocalHost


@pytest.fixture(scope="module")
def split(
    database: TestDatabase, host_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SplitDeployment]:
    site_port, stranger_port = free_port(), free_port()
    site = f"http://127.0.0.1:{site_port}"
    api = start_host(database.url, host_root / "split-api", {"DT_CORS_ORIGINS": site})
    try:
        out = tmp_path_factory.mktemp("split-dist")
        load_packager().build(out, api_url=api.api)
        root = out / "site"
        with zipfile.ZipFile(out / "static_web.zip") as archive:
            archive.extractall(root)
        assert json.loads((root / "config.json").read_text()) == {"apiBase": api.api}
        with StaticServer(root, site_port), StaticServer(root, stranger_port) as stranger:
            yield SplitDeployment(site=site, stranger=stranger.url, api=api)
    finally:
        api.stop()


def test_site_signs_in_reads_and_writes_against_the_api_origin(
    page: Page, split: SplitDeployment, clean_db: TestDatabase, console: ConsoleLog
) -> None:
    api_origin = split.api.url
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    # The site serves no API (only its pages): everything must go to the API's origin.
    assert "json" not in httpx.get(split.site + "/api/health").headers["content-type"]
    # Signing in shows the email read from GET /user/me with the bearer token.
    sign_in(page, split.site, split.api.admin_email, split.api.admin_password)

    nav_to(page, "Locations")
    form = page.locator("#add-schema-form")
    form.get_by_label("Schema name").fill("greenhouse")
    form.get_by_label("Description").fill("Written from another origin")
    row = form.locator(".measure-row").first
    row.get_by_label("Name").fill("bench")
    row.get_by_label("Units").fill("")
    row.get_by_label("Datatype").select_option("integer")
    form.get_by_role("button", name="Add schema").click()
    expect(form.locator(".form-status")).to_have_text("Schema “greenhouse” added.")
    expect(page.locator("#schema-list table")).to_contain_text("bench: integer")

    token = httpx.post(
        split.api.api + "/auth/login",
        json={"email": split.api.admin_email, "password": split.api.admin_password},
    ).json()["access_token"]
    schemas = httpx.get(
        split.api.api + "/location/list-location-schemas",
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert [s["name"] for s in schemas] == ["greenhouse"]

    api_calls = [url for url in requests if url.startswith(api_origin + "/api/")]
    assert any(url.endswith("/auth/login") for url in api_calls)
    assert any("/location/insert-location-schema" in url for url in api_calls)
    assert not [url for url in requests if url.startswith(split.site + "/api/")]


def test_a_page_of_another_origin_is_refused(browser: Browser, split: SplitDeployment) -> None:
    context = browser.new_context()
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    try:
        # The same packaged pages (their CSP allows the API), from an origin not in the list.
        page.goto(split.stranger + "/login.html")
        outcome = page.evaluate(
            """async ([api, email, password]) => {
                try {
                    const reply = await fetch(api + "/auth/login", {
                        method: "POST",
                        headers: { "Content-Type": "application/json" },
                        body: JSON.stringify({ email, password }),
                    });
                    return "read " + reply.status;
                } catch (error) {
                    return "refused: " + error.message;
                }
            }""",
            [split.api.api, split.api.admin_email, split.api.admin_password],
        )
        assert outcome.startswith("refused"), outcome
        expect(page.locator("#login-form")).to_be_visible()
        assert any("blocked by CORS policy" in text for text in messages), messages
    finally:
        context.close()
    # What the browser saw: the API answered the stranger's preflight with no CORS header.
    preflight = httpx.options(
        split.api.api + "/auth/login",
        headers={"Origin": split.stranger, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_the_packaged_site_may_connect_to_the_api_origin(split: SplitDeployment) -> None:
    csp = httpx.get(split.site + "/login.html").headers["content-security-policy"]
    connect = next(d for d in csp.split(";") if d.strip().startswith("connect-src")).split()
    assert split.api.url in connect and "'self'" in connect
