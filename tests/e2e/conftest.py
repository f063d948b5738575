"""The browser for end-to-end tests: headless Debian Chromium driven by Playwright (no browser download)."""

import pytest

from tests.app_server import CHROMIUM


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium; the tests skip when it or Playwright is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
        )
        yield b
        b.close()
