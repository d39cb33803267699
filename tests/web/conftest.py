"""Browser fixtures for the web tests: Debian's Chromium driven by Playwright (no browser
download), a page that records console errors, signing in, and screenshots.

Builds on the top-level fixtures: `live_host`, `clean_db`, `admin`, `host_factory`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("DT_TEST_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"

from playwright.sync_api import Page, expect  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def chromium_installed() -> None:
    """The web tests need Debian's Chromium (`make test` installs it); its absence is a
    failure, never a skip that would hide untested pages."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set DT_TEST_CHROMIUM)"
        )


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--disable-gpu",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    # Times on the pages are shown in the browser's zone: pin it so tests can read them.
    return {
        **browser_context_args,
        "viewport": {"width": 1280, "height": 900},
        "timezone_id": "UTC",
        "locale": "en-GB",
        "accept_downloads": True,
    }


@dataclass
class ConsoleLog:
    """Console messages and uncaught errors of a page."""

    messages: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)

    def errors(self) -> list[str]:
        return [m for m in self.messages if not any(a in m for a in self.allowed)]

    def allow(self, fragment: str) -> None:
        """Accept errors containing `fragment` (e.g. a 409 the test provokes on purpose)."""
        self.allowed.append(fragment)


@pytest.fixture
def console(page: Page) -> Iterator[ConsoleLog]:
    """Collect console errors and page errors; the test fails if any is left unexplained."""
    log = ConsoleLog()

    def on_console(message) -> None:
        if message.type == "error":
            url = (message.location or {}).get("url", "")
            log.messages.append(f"console error: {message.text} ({url})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: log.messages.append(f"page error: {error}"))
    yield log
    errors = log.errors()
    assert not errors, "errors in the browser console:\n" + "\n".join(errors)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def shoot(page: Page, screenshots: Path) -> Callable[[str], Path]:
    """Save a full-page screenshot as test-artifacts/screenshots/<name>.png."""

    def take(name: str, target: Page | None = None) -> Path:
        path = screenshots / f"{name}.png"
        (target or page).evaluate("() => window.scrollTo(0, 0)")
        (target or page).screenshot(path=str(path), full_page=True)
        return path

    return take


def sign_in(page: Page, base_url: str, email: str, password: str, start: str = "/") -> None:
    """Open `start` as a signed-out visitor, get sent to the login page, sign in."""
    page.goto(base_url + start)
    page.wait_for_url("**/login.html**")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login.html" not in url)
    expect(page.locator("#signed-in-email")).to_have_text(email)


def nav_to(page: Page, label: str) -> None:
    """Follow the header's link to `label`, opening the group of pages it is in first."""
    nav = page.get_by_role("navigation", name="Main")
    # Links in a closed group are hidden, which roles ignore unless told.
    link = nav.get_by_role("link", name=label, exact=True, include_hidden=True)
    if not link.is_visible():
        link.locator("xpath=ancestor::li[contains(@class, 'nav-group')]/button").click()
    link.click()


@pytest.fixture
def signed_in(page: Page, live_host, admin, console: ConsoleLog) -> Page:
    """A page signed in as the default (admin) user, on empty tables."""
    sign_in(page, live_host.url, live_host.admin_email, live_host.admin_password)
    return page


def copy_for_readme(name: str) -> None:
    """Copy a screenshot into docs/screenshots/ (the README shows two of them) when
    DT_UPDATE_README_SCREENSHOTS=1, so ordinary runs leave the committed images alone."""
    if os.environ.get("DT_UPDATE_README_SCREENSHOTS") != "1":
        return
    target = ROOT / "docs" / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SCREENSHOTS / f"{name}.png", target / f"{name}.png")


def canvas_ink(
    page: Page,
    chart_title: str,
    rgb: tuple[int, int, int],
    tolerance: int = 40,
    alpha: tuple[int, int] = (200, 255),
) -> int:
    """How many pixels of a chart's canvas are close to colour `rgb` with an opacity in
    `alpha` (0-255): a series' stroke is opaque, a shaded band translucent."""
    return page.evaluate(
        """([title, rgb, tol, alpha]) => {
            const card = [...document.querySelectorAll('figure.chart-card')]
                .find(f => f.dataset.chart === title);
            if (!card) return -1;
            const canvas = card.querySelector('canvas');
            const ctx = canvas.getContext('2d');
            const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            let n = 0;
            for (let i = 0; i < data.length; i += 4) {
                const opaque = data[i + 3] >= alpha[0] && data[i + 3] <= alpha[1];
                const near = Math.abs(data[i] - rgb[0]) <= tol
                    && Math.abs(data[i + 1] - rgb[1]) <= tol
                    && Math.abs(data[i + 2] - rgb[2]) <= tol;
                if (opaque && near) n++;
            }
            return n;
        }""",
        [chart_title, list(rgb), tolerance, list(alpha)],
    )
