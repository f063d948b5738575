"""In headless Chromium: a box dragged on the Explore runs page's embedding map filters the table of examples under it."""

from __future__ import annotations

import re

import pytest

from tests.compare_fixtures import make_run

pytestmark = pytest.mark.browser


def test_a_box_dragged_on_the_map_lists_only_its_examples(app_server, offline_page, tmp_path):
    url, runs = app_server
    make_run(runs, "prompt-a", 0.7, seed=1)
    make_run(runs, "ft-b", 0.8, kind="finetune", seed=2)
    page, blocked = offline_page
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("link", name="Explore runs").first.click()
    page.get_by_role("tab", name="Embedding map").click(timeout=240_000)
    page.get_by_text("60 of 60 examples.").wait_for(timeout=240_000)
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    box = chart.bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + box["width"] * 0.35, y0 + box["height"] * 0.45, steps=10)
    page.mouse.up()
    caption = page.get_by_text(re.compile(r"^\d+ of 60 examples inside the box\.$"))
    caption.wait_for(timeout=60_000)
    page.screenshot(path=str(tmp_path / "explore.png"))
    assert int(caption.text_content().split()[0]) < 60
    assert blocked == []
