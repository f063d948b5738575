"""In headless Chromium: the Compare page opens with the verdict, and the metrics table shows its cost columns without
scrolling sideways on a 1280-pixel-wide laptop screen."""

from __future__ import annotations

import pytest

from tests.compare_fixtures import make_run

pytestmark = pytest.mark.browser

COST_COLUMNS = ["train s", "examples/s", "trainable params", "peak MB"]


def test_compare_opens_with_the_verdict_and_shows_costs_without_scrolling(app_server, offline_page, tmp_path):
    url, runs = app_server
    make_run(runs, "prompt-smollm2-0shot", 0.0, seed=1, n=240)
    make_run(
        runs,
        "finetune-full-minilm",
        0.85,
        kind="finetune",
        seed=2,
        n=240,
        config_extra={"epochs": 3.0},
        metrics_extra={"stopped_by": "max_train_seconds", "epochs_done": 1.6, "train_seconds": 120.0},
    )
    page, blocked = offline_page
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("link", name="Compare").first.click()
    verdict = page.get_by_text("Verdict:").first
    verdict.wait_for(timeout=240_000)
    table = page.locator('[data-testid="stDataFrame"]').first
    table.wait_for(timeout=60_000)
    page.wait_for_timeout(2000)  # the grid draws its visible columns after layout
    page.screenshot(path=str(tmp_path / "compare.png"))
    assert verdict.bounding_box()["y"] < table.bounding_box()["y"]
    assert page.get_by_text("was stopped by its time budget after 1.6 of 3 epochs").count() == 1
    # the grid keeps an accessible header row of the columns it draws in view; hidden (scrolled-off) columns are absent
    shown = table.evaluate("e => Array.from(e.querySelectorAll('[role=columnheader]')).map(h => h.textContent)")
    assert ["run", "warnings", "macro_f1", *COST_COLUMNS] == shown[:7], shown
    assert blocked == []
