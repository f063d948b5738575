"""In headless Chromium: the Continual page draws the accuracy heatmap, the per-task lines and the strategies chart
(Vega-Lite renders them in the browser only) for continual runs on disk."""

from __future__ import annotations

import pytest

from tests.test_page_continual import fake_continual_run

pytestmark = pytest.mark.browser


def test_continual_page_draws_its_charts(app_server, offline_page):
    url, runs = app_server
    fake_continual_run(runs, "cl-naive", "naive", [[0.9, 0.6], [0.5, 0.9]])
    fake_continual_run(runs, "cl-replay", "replay", [[0.9, 0.6], [0.8, 0.85]])
    page, blocked = offline_page
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("link", name="Continual").first.click()
    page.get_by_text("Strategies side by side").first.wait_for(timeout=240_000)
    page.get_by_text("Accuracy matrix of").first.click()  # open the expander with the picked run's matrix
    charts = page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg")
    charts.nth(2).wait_for(state="attached", timeout=60_000)
    assert charts.count() >= 3
    assert page.locator("[data-testid='stException']").count() == 0
    page.screenshot(path=str(runs / "continual.png"), full_page=True)
    assert blocked == []
