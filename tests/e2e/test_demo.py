"""The demo that must never fail, in a real browser: data, tokenization, prompting, fine-tuning, compare, attention, report.

Starts the real app (streamlit run) on 127.0.0.1 with an empty runs folder, drives headless Debian Chromium with
Playwright, blocks every request that is not to localhost, and fails on any exception, traceback or error box in a page.
Screenshots of each step go to artifacts/e2e/ (the README's come from here: docs/screenshots/)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.app_server import CHROMIUM, LOCAL_HOSTS, ROOT, serve_app

ARTIFACTS = ROOT / "artifacts" / "e2e"
README_SHOTS = ROOT / "docs" / "screenshots"
README_STEPS = {
    "01-data": "data.png",
    "02-tokenization": "tokenization.png",
    "04-prompt-few-shot": "prompting.png",
    "05-finetune-done": "finetune.png",
    "06-compare-verdict": "compare.png",
    "07-attention": "attention.png",
}
SLOW_STEP_MS = 420_000  # one prompt or fine-tune run on 2 shared CPUs, with model loading
EVAL_CAP = 20  # rows of the test split each prompt run scores (quick on 2 CPUs; Compare joins runs on these rows)
FINETUNE_SECONDS = 45  # the fine-tune's time bound

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)
expect = sync_api.expect


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The real app, started with `streamlit run` on a free localhost port and an empty runs folder; stopped afterwards."""
    runs = tmp_path_factory.mktemp("e2e-runs")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve_app(runs, ARTIFACTS / "server.log", PFT_MAX_JOBS="1") as url:
        yield url, runs


@pytest.fixture
def page(browser, app_url):
    """A fresh tab whose requests to anything but localhost are refused (and recorded, to fail the test)."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    blocked: list[str] = []

    def only_localhost(route):
        host = urlparse(route.request.url).hostname or ""
        if host in LOCAL_HOSTS or route.request.url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_localhost)
    tab = context.new_page()
    tab.blocked = blocked
    yield tab
    context.close()


class Demo:
    """What a person does and sees in the app, one step at a time, with a screenshot per step."""

    def __init__(self, page, url: str):
        self.page, self.url, self.step = page, url, 0

    def main(self):
        """The page's main area (not the sidebar)."""
        return self.page.locator("[data-testid='stMain']")

    def open(self) -> None:
        self.page.goto(self.url)
        expect(self.page.locator("h1").first).to_be_visible(timeout=90_000)

    def go(self, title: str) -> None:
        """Click a page in the sidebar navigation and wait for its title."""
        self.page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
        expect(self.main().locator("h1", has_text=title).first).to_be_visible(timeout=60_000)
        self.settle()

    def settle(self, timeout_ms: int = 180_000) -> None:
        """Wait until the script run and its spinners are done."""
        self.page.wait_for_timeout(500)
        self.page.wait_for_function(
            """() => !document.querySelector("[data-testid='stSpinner']")
                 && !document.querySelector("[data-testid='stStatusWidgetRunningIcon'], """
            """[data-testid='stStatusWidgetRunningManIcon']")""",
            timeout=timeout_ms,
            polling=250,
        )
        self.page.wait_for_timeout(300)

    def assert_healthy(self) -> None:
        """No exception, traceback or error box anywhere in the page."""
        text = self.page.locator("body").inner_text()
        assert self.page.locator("[data-testid='stException']").count() == 0, f"exception shown:\n{text[:3000]}"
        assert "Traceback" not in text, text[:3000]
        errors = self.page.locator("[data-testid='stAlertContentError']")
        assert errors.count() == 0, f"error shown: {errors.all_inner_texts()}"

    def shot(self, name: str) -> Path:
        """Check the page is healthy, then save a full-page screenshot of this step."""
        self.assert_healthy()
        self.step += 1
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def fill(self, label: str, value: str) -> None:
        """Type into a text or number input found by its label, and commit it (Enter), as a person would."""
        box = self.main().get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        self.settle()

    def click(self, name: str) -> None:
        """Click a button by its text."""
        self.main().get_by_role("button", name=name, exact=True).click()
        self.settle()

    def choose(self, label: str, option: re.Pattern | str) -> None:
        """Open a selectbox by its label and pick the option matching `option`."""
        select = self.main().locator("[data-testid='stSelectbox']").filter(has=self.page.get_by_text(label, exact=True)).first
        select.click()
        self.page.get_by_role("option", name=option).first.click()
        self.settle()

    def selected(self, label: str) -> str:
        """What a selectbox shows (its text, or its search input's value), found by its label."""
        select = self.main().locator("[data-testid='stSelectbox']").filter(has=self.page.get_by_text(label, exact=True)).first
        return select.evaluate("el => (el.querySelector('input') ? el.querySelector('input').value : '') + ' ' + el.innerText")

    def add_all_options(self, label: str) -> None:
        """Open a multiselect and pick every option it still offers."""
        select = self.main().locator("[data-testid='stMultiSelect']", has_text=label).first
        for _ in range(10):
            select.locator("input").click()
            options = self.page.get_by_role("option")
            if options.count() == 0 or "No results" in options.first.inner_text():
                break
            options.first.click()
            self.settle()
        self.page.keyboard.press("Escape")
        self.settle()

    def metric(self, label: str) -> float:
        """The value of an st.metric, by its label."""
        box = self.main().locator("[data-testid='stMetric']", has_text=label).first
        return float(box.locator("[data-testid='stMetricValue']").inner_text().replace(",", ""))

    def download(self, name: str, target: Path) -> Path:
        """Click a download button and keep the file."""
        with self.page.expect_download(timeout=60_000) as info:
            self.main().get_by_role("button", name=name, exact=True).click()
        info.value.save_as(str(target))
        return target

    def number(self, pattern: str) -> float:
        """The first number captured by pattern in the main area's text."""
        match = re.search(pattern, self.main().inner_text())
        assert match, f"no match for {pattern!r} in:\n{self.main().inner_text()[:2000]}"
        return float(match.group(1))


def test_the_demo(page, app_url):
    url, runs = app_url
    demo = Demo(page, url)

    # 1. open the app: the reviews sample is loaded and the Data page shows it
    demo.open()
    demo.settle()
    sidebar = page.locator("[data-testid='stSidebar']")
    expect(sidebar).to_contain_text("reviews")
    expect(sidebar).to_contain_text("3 labels")
    expect(demo.main()).to_contain_text("labels: negative, neutral, positive")
    expect(demo.main().locator("[data-testid='stVegaLiteChart']").first).to_be_visible()
    expect(demo.main()).to_contain_text(re.compile(r"median \d+ tokens"), timeout=120_000)
    assert demo.number(r"(\d+) of \d+ rows") > 600
    assert demo.main().locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").count() >= 2
    demo.shot("01-data")

    # 2. Tokenization: the same text cut by WordPiece and by byte-level BPE, token statistics for the dataset
    demo.go("Tokenization")
    expect(demo.main()).to_contain_text("all-MiniLM-L6-v2")
    expect(demo.main()).to_contain_text("SmolLM2-135M-Instruct")
    expect(demo.main().locator(".token-chips").first).to_be_visible(timeout=120_000)
    assert demo.main().locator(".token-chips").count() == 2
    assert demo.main().locator(".token-chips").first.locator("span[title]").count() > 5
    counts = [int(n) for n in re.findall(r"(\d+) tokens \(\d+ special", demo.main().inner_text())]
    assert len(counts) == 2 and counts[0] != counts[1], counts
    expect(demo.main()).to_contain_text("tokens_per_word")
    expect(demo.main()).to_contain_text("<|im_start|>")
    demo.shot("02-tokenization")

    # 3-4. Prompting: a zero-shot and a 4-shot run of SmolLM2 on (a capped part of) the test split, as background jobs
    demo.go("Prompting")
    expect(demo.main()).to_contain_text("Preview", timeout=120_000)
    demo.fill("Evaluate at most (0 = all rows)", str(EVAL_CAP))
    for shots, step in ((0, "03-prompt-zero-shot"), (4, "04-prompt-few-shot")):
        demo.fill("Shots (several for a grid)", str(shots))
        expect(demo.main()).to_contain_text(f"1 run × {EVAL_CAP} examples")
        demo.click("Run")
        finished = re.compile(rf"prompt-{shots}shot-\S+ · succeeded")  # the shared job watcher (ui/jobs.py)
        expect(demo.main()).to_contain_text(finished, timeout=SLOW_STEP_MS)
        demo.settle()
        # the Results box switches to the run that just finished
        assert f"prompt-{shots}shot-" in demo.selected("Run")
        expect(demo.main()).to_contain_text(
            re.compile(r"zero-shot( \+\w+)?( \(auto\))? · model smollm2") if shots == 0 else f"{shots}-shot"
        )
        assert demo.metric("Examples") == EVAL_CAP
        assert 0.0 <= demo.metric("Accuracy") <= 1.0
        expect(demo.main().locator("[data-testid='stVegaLiteChart']").first).to_be_visible(timeout=60_000)  # the confusion matrix
        demo.shot(step)

    # 5. a time-bounded fine-tune with a live curve
    finetune_from_the_page(demo)

    # 6. Compare the three runs; pick an example the runs disagree on
    demo.go("Compare")
    expect(demo.main()).to_contain_text("Metrics", timeout=120_000)
    demo.add_all_options("Runs (same evaluation split)")
    chosen = demo.main().locator("[data-testid='stMultiSelect']").first.get_by_role("button", name=re.compile(r"^Remove "))
    assert chosen.count() == 3, chosen.all_inner_texts()
    for kind in ("prompt-0shot", "prompt-4shot", "finetune-"):
        expect(demo.main().locator("[data-testid='stMultiSelect']").first).to_contain_text(kind)
    table = demo.main().locator("[data-testid='stDataFrame']").first
    expect(table).to_be_visible()
    expect(demo.main()).to_contain_text(f"{EVAL_CAP} examples")
    assert demo.main().locator("[data-testid='stVegaLiteChart']").count() >= 3
    expect(demo.main()).to_contain_text("Verdict:")  # the answer opens the page (the README's picture)
    demo.page.locator("h1").first.scroll_into_view_if_needed()
    demo.settle()
    demo.shot("06-compare-verdict")
    # an error case: the first disagreement/error cell that holds examples (which one depends on the runs' luck)
    demo.main().get_by_text(re.compile(r"^(only A right|only B right|both wrong) \([1-9]\d*\)")).first.click()
    demo.settle()
    expect(demo.main()).to_contain_text("true label:")
    demo.shot("06-compare")

    # 7. export the HTML report (before leaving Compare, whose selections belong to its page)
    report = demo.download("HTML report (opens offline)", ARTIFACTS / "comparison.html")
    html = report.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:500].lower()
    assert "prompt-0shot" in html and "prompt-4shot" in html
    assert not re.search(r"<script[^>]+src=[\"']https?://", html), "the report loads scripts from the internet"

    # 8. the example's attention view, drawn (bertviz SVG inside the iframe, and the charts)
    demo.click("Open this example on the Attention page (models of runs A and B side by side)")
    expect(demo.main().locator("h1", has_text="Attention").first).to_be_visible(timeout=60_000)
    demo.settle(SLOW_STEP_MS)
    frame = demo.main().locator("[data-testid='stIFrame']").first
    expect(frame).to_be_visible(timeout=SLOW_STEP_MS)
    drawn = (
        page.frame_locator("[data-testid='stIFrame']").first.frame_locator("iframe").locator("svg *, canvas")
    )  # sandboxed inner frame
    expect(drawn.first).to_be_attached(timeout=60_000)
    assert drawn.count() > 10, "bertviz drew (almost) nothing"
    expect(demo.main()).to_contain_text(re.compile(r"\d+ layers × \d+ heads"))
    demo.shot("07-attention")
    copy_readme_shots()

    # offline demos: nothing may be fetched from outside this machine (checked last, so the walk above reports first)
    assert page.blocked == [], f"the app tried to reach the internet: {sorted(set(page.blocked))}"


def finetune_from_the_page(demo: Demo) -> None:
    """Start a time-bounded fine-tune on the Fine-tune page, watch its step count and curve grow, let it finish."""
    demo.go("Fine-tune")
    demo.fill("Time budget (s, 0 = none)", str(FINETUNE_SECONDS))
    demo.click("Start fine-tuning")
    steps = re.compile(r"step (\d+) of (\d+)")
    expect(demo.main()).to_contain_text(steps, timeout=SLOW_STEP_MS)
    first = int(steps.search(demo.main().inner_text()).group(1))
    curve = demo.main().locator("[data-testid='stVegaLiteChart']")
    expect(curve.first).to_be_visible(timeout=SLOW_STEP_MS)  # the live curve, drawn once steps are logged
    later = first
    deadline = time.time() + FINETUNE_SECONDS * 3
    while later <= first and time.time() < deadline:  # the page polls the job: the step count moves on while we watch
        demo.page.wait_for_timeout(1000)
        found = steps.search(demo.main().inner_text())
        later = int(found.group(1)) if found else later
    assert later > first or "succeeded" in demo.main().inner_text(), "the progress did not move"
    curve.first.scroll_into_view_if_needed()
    demo.shot("05-finetune-running")
    expect(demo.main()).to_contain_text(re.compile(r"finetune-\S+ · succeeded"), timeout=SLOW_STEP_MS)
    demo.settle()
    assert 0.0 <= demo.metric("accuracy") <= 1.0
    expect(demo.main()).to_contain_text("Stopped by:")
    expect(curve.first).to_be_visible(timeout=60_000)  # the page reruns once when the job ends: wait for it, not a snapshot
    demo.shot("05-finetune-done")


def copy_readme_shots() -> None:
    """Copy the key screenshots to docs/screenshots/ for the README."""
    README_SHOTS.mkdir(parents=True, exist_ok=True)
    for step, target in README_STEPS.items():
        if (ARTIFACTS / f"{step}.png").exists():
            shutil.copyfile(ARTIFACTS / f"{step}.png", README_SHOTS / target)
