"""In headless Chromium: the Playground's class-probability charts, side by side in narrow columns, name every class."""

from __future__ import annotations

import pytest

from core.cli import main
from tests.app_server import serve_app

pytestmark = pytest.mark.browser
WAIT = 240_000


def visible_axis_labels(chart) -> list[str]:
    """The y axis's label texts that Vega draws (it hides overlapping labels with opacity 0, keeping them in the SVG)."""
    return chart.evaluate("""e => [...e.querySelectorAll('g[aria-label^="Y-axis"] .role-axis-label text')]
                                  .filter(t => t.getAttribute('opacity') !== '0').map(t => t.textContent)""")


def test_narrow_probability_charts_show_every_label(tmp_path, tmp_path_factory, monkeypatch, offline_page, tiny_bert_dir):
    runs = tmp_path / "runs"
    monkeypatch.setenv("PFT_RUNS_DIR", str(runs))
    for seed in ("0", "1"):
        assert (
            main(
                [
                    "finetune",
                    "--train",
                    "reviews",
                    "--eval",
                    "reviews",
                    "--model",
                    str(tiny_bert_dir),
                    "--method",
                    "logreg",
                    "--max-train-examples",
                    "48",
                    "--dev",
                    "none",
                    "--seed",
                    seed,
                    "--out",
                    f"lr{seed}",
                ]
            )
            == 0
        )
    page, blocked = offline_page
    with serve_app(runs, tmp_path / "server.log", PFT_MODEL_ROOTS=str(tmp_path_factory.getbasetemp())) as url:
        page.goto(f"{url}/playground", wait_until="domcontentloaded")
        main_area = page.locator('[data-testid="stMain"]')
        main_area.locator('[data-testid="stSelectbox"]').filter(has_text="Or pick an example").first.click(timeout=WAIT)
        page.get_by_role("option").nth(1).click()
        charts = main_area.locator('[data-testid="stVegaLiteChart"]').filter(has_text="probability")
        page.get_by_text("True label:").wait_for(timeout=WAIT)
        charts.nth(1).locator("svg").wait_for(timeout=WAIT)
        page.wait_for_timeout(1000)  # Vega lays the axis out after the SVG appears
        for i in range(2):  # two runs: two columns of half the page
            assert sorted(visible_axis_labels(charts.nth(i))) == ["negative", "neutral", "positive"]  # neutral was hidden
    assert blocked == []
