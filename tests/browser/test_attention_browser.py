"""In headless Chromium with the network blocked: bertviz draws attention lines on the Attention page, and the exported
HTML report renders its charts from a file:// URL."""

from __future__ import annotations

import pytest

from core.comparison import evaluate, report
from tests.compare_fixtures import make_run

pytestmark = pytest.mark.browser


def test_attention_page_draws_bertviz_lines_offline(app_server, offline_page):
    url, _ = app_server
    page, blocked = offline_page
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("link", name="Attention").first.click()  # through the app's navigation, as a user would
    page.get_by_text("bertviz head view, drawn offline").first.wait_for(timeout=240_000)
    frame_el = page.locator("iframe").first
    frame_el.wait_for(timeout=60_000)
    frame = frame_el.content_frame.frame_locator("iframe")  # bertviz runs in a sandboxed frame inside st.iframe's
    frame.locator("svg line").first.wait_for(state="attached", timeout=60_000)
    lines = frame.locator("svg line")
    assert lines.count() > 20
    # lines are drawn with an opacity proportional to the attention weight: some must be visible
    visible = frame.locator("svg line").evaluate_all(
        "els => els.filter(e => parseFloat(e.getAttribute('stroke-opacity') || e.style.strokeOpacity || '0') > 0.05).length"
    )
    assert visible > 0
    page.screenshot(path=str(app_server[1] / "attention.png"), full_page=True)
    assert blocked == []


def test_exported_report_renders_its_charts_from_a_file(tmp_path, offline_page, monkeypatch):
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("PFT_RUNS_DIR", str(runs))
    paths = [
        make_run(runs, "prompt-4", 0.6, seed=1, n_train_examples=4),
        make_run(runs, "ft-64", 0.8, kind="finetune", seed=2, n_train_examples=64),
        make_run(runs, "ft-256", 0.9, kind="finetune", seed=3, n_train_examples=256),
    ]
    cmp = evaluate.compare_runs(paths[:2], n_resamples=200)
    html_path = report.write_report(tmp_path / "report.html", report.build_report(cmp, evaluate.efficiency_frame(paths)))
    page, blocked = offline_page
    page.goto(html_path.as_uri())
    charts = page.locator("svg.chart")
    assert charts.count() == 4  # intervals, confusions, reliability, efficiency
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100
        assert charts.nth(i).locator("[class*='mark-']").count() > 0  # Vega's marks, drawn
    assert page.locator("table").count() >= 4
    assert blocked == []
