"""AppTest of the Prompting page, through the app's entry point, with the tiny Llama chosen as 'other' model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.cli import main
from tests.scoped import scoped

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def _page(open_page):
    """The Prompting page with a model folder typed as the 'other' model."""
    return lambda model_dir: open_page("app_pages/prompting.py", pr_model="other", pr_model_other=str(model_dir))


def test_page_previews_the_prompt_and_shows_finished_runs(tiny_llama_dir, runs_dir, _page):
    for seed in ("1", "2"):
        assert main(["prompt", "--train", "reviews", "--eval", "reviews", "--model", str(tiny_llama_dir), "--shots", "2",
                     "--seed", seed, "--max-eval-examples", "10", "--out", f"earlier-{seed}"]) == 0
    at = _page(tiny_llama_dir)
    assert not at.exception
    assert not at.error
    prompt = at.code[0].value
    assert prompt.startswith("Classify each text as one of: negative, neutral, positive.") and prompt.endswith("Category:")
    assert prompt.count("Category: ") == 4  # 4 demonstrations (the default shots), then the query
    assert any("tokens" in c.value and "shared prefix" in c.value for c in at.caption)
    assert at.selectbox(key=scoped(at, "pr_result_run_")).value.startswith("earlier-")
    assert [m.label for m in at.metric][:2] == ["Accuracy", "Macro-F1"]
    assert len(at.get("vega_lite_chart")) >= 2  # confusion matrix and the shots/seeds grid
    variance = at.dataframe[-2].value
    assert variance["seeds"].tolist() == [2]


def test_bad_template_is_answered_by_its_sentence(tiny_llama_dir, runs_dir, _page):
    at = _page(tiny_llama_dir)
    at.text_area(key=scoped(at, "pr_query")).set_value("Answer:").run()
    assert not at.exception
    assert "must contain {text}" in at.error[0].value
    at.text_area(key=scoped(at, "pr_query")).set_value("Q: {text}\nA:")
    at.text_input(key=scoped(at, "pr_shots")).set_value("2, x").run()
    assert "Shots must be whole numbers" in at.error[0].value


def test_run_button_launches_a_background_job_and_shows_its_result(tiny_llama_dir, runs_dir, _page):
    at = _page(tiny_llama_dir)
    assert "No finished prompting runs" in at.info[0].value
    at.text_input(key=scoped(at, "pr_shots")).set_value("0, 1")
    at.number_input(key=scoped(at, "pr_cap")).set_value(8).run()
    at.button(key=scoped(at, "pr_run")).click().run()
    assert not at.exception and not at.error
    names = at.session_state[scoped(at, "prompt_job")]
    assert len(names) == 2 and names[0].endswith("0shot-seed0")
    deadline = time.time() + 120
    while time.time() < deadline:
        states = [json.loads((runs_dir / n / "status.json").read_text()).get("state") if (runs_dir / n / "status.json").exists() else None
                  for n in names]
        if all(s in ("succeeded", "failed", "cancelled") for s in states):
            break
        time.sleep(1)
    assert states == ["succeeded", "succeeded"], (runs_dir / names[0] / "log.txt").read_text()[-2000:]
    at.run()
    assert not at.exception
    assert at.selectbox(key=scoped(at, f"pr_result_run_{names[0]}")).value == names[0]  # the box shows the job that just ended
    assert json.loads((runs_dir / names[1] / "config.json").read_text())["max_eval_examples"] == 8
