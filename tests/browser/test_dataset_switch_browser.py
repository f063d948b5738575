"""In headless Chromium: switching the sidebar's dataset and uploading a file never carry a page's values over, and
Compare's run selection survives a visit to another page."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core import data
from tests.compare_fixtures import make_run

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("PFT_SHOTS_DIR", "")) if os.environ.get("PFT_SHOTS_DIR") else None
WAIT = 240_000


def shot(page, name: str) -> None:
    """A screenshot for people to look at, when PFT_SHOTS_DIR names a folder."""
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def settle(page) -> None:
    """Wait until the app has finished its rerun (the status widget gone)."""
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=WAIT)


def choose(page, container, label: str, option: str) -> None:
    """Pick option in the selectbox labelled label."""
    container.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def go(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).first.click()
    settle(page)


def test_switching_and_uploading_keep_no_old_values(app_server, offline_page, tmp_path):
    url, runs = app_server
    support = data.load_sample("support_intents")
    for name in ("rev-a", "rev-b", "rev-c"):
        make_run(runs, name, 0.7, seed=len(name))
    for name in ("sup-a", "sup-b"):
        make_run(runs, name, 0.7, eval_sha256=support.fingerprint("test"), labels=support.label_names)
    page, blocked = offline_page
    sidebar = page.locator('[data-testid="stSidebar"]')
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_text("660 of 660 rows").wait_for(timeout=WAIT)

    # Data: the Labels filter follows the dataset (it showed "0 of 679 rows")
    choose(page, sidebar, "Sample dataset", "support_intents")
    page.get_by_text("679 of 679 rows").wait_for(timeout=WAIT)
    assert sidebar.get_by_text("support_intents · 7 labels").count() == 1
    shot(page, "data-after-switch")

    # Prompting: the label words are the new labels' (they kept negative/neutral/positive); the preview lists the words it scores
    from playwright.sync_api import expect

    go(page, "Prompting")
    main = page.locator("[data-testid='stMain']")
    main.get_by_text("scored continuations:").wait_for(timeout=WAIT)
    settle(page)
    expect(main).to_contain_text("' account'")
    assert "' negative'" not in main.inner_text()
    shot(page, "prompting-after-switch")

    # Compare: this dataset's runs only; a chosen selection outlives a visit to another page
    go(page, "Compare")
    runs_box = page.locator('[data-testid="stMultiSelect"]').first
    runs_box.wait_for(timeout=WAIT)
    assert runs_box.get_by_text("sup-a").count() == 1 and runs_box.get_by_text("rev-a").count() == 0
    choose(page, sidebar, "Sample dataset", "reviews")
    runs_box = page.locator('[data-testid="stMultiSelect"]').first
    runs_box.get_by_text("rev-b").wait_for(timeout=WAIT)  # the two newest runs on the split by default
    assert runs_box.get_by_text("rev-a").count() == 0
    runs_box.locator("input").click()
    runs_box.locator("input").fill("rev-a")
    page.keyboard.press("Enter")  # all three chosen now
    page.keyboard.press("Escape")
    runs_box.get_by_text("rev-a").wait_for(timeout=WAIT)
    settle(page)
    go(page, "Data")
    go(page, "Compare")
    runs_box = page.locator('[data-testid="stMultiSelect"]').first
    runs_box.get_by_text("rev-b").wait_for(timeout=WAIT)
    shot(page, "compare-after-coming-back")
    assert all(runs_box.get_by_text(n).count() == 1 for n in ("rev-a", "rev-b", "rev-c"))  # was back to the default two

    # an upload: every row of the file, and the sidebar names the file
    go(page, "Data")
    sidebar.get_by_text("File", exact=True).click()
    page.get_by_text("Choose a dataset in the sidebar first").wait_for(timeout=WAIT)
    settle(page)
    csv = tmp_path / "pets.csv"
    csv.write_text(
        "text,label\n"
        + "\n".join(f"text number {i} about {'cats' if i % 2 else 'dogs'},{'cat' if i % 2 else 'dog'}" for i in range(40)),
        encoding="utf-8",
    )
    sidebar.locator('input[type="file"]').set_input_files(str(csv))
    page.get_by_text("40 of 40 rows").wait_for(timeout=WAIT)
    assert sidebar.get_by_text("pets.csv · 2 labels").count() == 1 and sidebar.get_by_text("reviews").count() == 0
    shot(page, "data-after-upload")
    assert blocked == []
