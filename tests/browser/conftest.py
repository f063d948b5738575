"""Browser-test fixtures: the real app on a free localhost port, and a headless Chromium page that may only reach localhost."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.app_server import CHROMIUM, LOCAL_HOSTS, serve_app


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """(url, runs folder): `streamlit run` on a free port with an empty runs folder; stopped afterwards."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    runs = tmp_path_factory.mktemp("browser-runs")
    with serve_app(runs, tmp_path_factory.mktemp("browser-log") / "server.log") as url:
        yield url, runs


@pytest.fixture
def offline_page():
    """(page, blocked): a Chromium page whose non-localhost requests are aborted and recorded in blocked."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    blocked: list[str] = []

    def guard(route):
        parsed = urlparse(route.request.url)
        if parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname not in LOCAL_HOSTS:
            blocked.append(route.request.url)
            return route.abort()
        return route.continue_()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(viewport={"width": 1500, "height": 1100})
        context.route("**/*", guard)
        page = context.new_page()
        try:
            yield page, blocked
        finally:
            context.close()
            browser.close()
