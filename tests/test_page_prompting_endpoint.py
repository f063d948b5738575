"""AppTest of the Prompting page with an endpoint model: the form (base URL, model name, the key's variable name,
concurrency, prices) becomes the job's config, the preview shows the prompt the server gets, and a finished endpoint
run shows its scoring mode, tokens, cost, latency and unparsed answers, and which views its mode cannot give."""

from __future__ import annotations

import json
import time

import pytest

from core.cli import main
from tests.endpoint_server import free_port
from tests.scoped import scoped


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PFT_ENDPOINT_CACHE", str(tmp_path / "endpoint-cache.sqlite"))


def _endpoint_page(open_page, url: str, model: str = "smollm2", **state):
    return open_page("app_pages/prompting.py", pr_source="Endpoint", pr_ep_url=url, pr_ep_model=model, **state)


def _wait(runs_dir, name: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = runs_dir / name / "status.json"
        status = json.loads(path.read_text()) if path.exists() else {}
        if status.get("state") in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(1)
    raise AssertionError(f"{name} did not finish in {timeout} s")


def test_the_endpoint_form_becomes_the_jobs_config_and_a_dead_server_is_one_sentence(open_page, runs_dir, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    monkeypatch.delenv("PFT_PAGE_KEY", raising=False)
    at = _endpoint_page(
        open_page,
        url,
        pr_ep_key_env="PFT_PAGE_KEY",
        pr_ep_concurrency=3,
        pr_ep_price_in=0.25,
        pr_shots="0",
        pr_calibration="none",
        pr_cap=4,
    )
    assert not at.exception and not at.error
    assert at.code[0].value.startswith("Classify each text as one of: negative, neutral, positive.")
    assert any("PFT_PAGE_KEY is not set in the app's environment" in w.value for w in at.warning)
    monkeypatch.setenv("PFT_PAGE_KEY", "sk-page-secret-42")  # the job inherits the app's environment
    at.button(key=scoped(at, "pr_run")).click().run()
    assert not at.exception and not at.error
    name = at.session_state[scoped(at, "prompt_job")][0]
    job = json.loads((runs_dir / name / "job.json").read_text())
    assert job["model"] == f"openai:smollm2@{url}" and job["api_key_env"] == "PFT_PAGE_KEY"
    assert (
        job["concurrency"] == 3 and job["price_input"] == 0.25 and job["price_output"] is None and job["scoring_mode"] == "auto"
    )
    status = _wait(runs_dir, name)
    assert status["state"] == "failed" and status["error"].startswith(f"Nothing answered at {url}")
    assert not [p for p in (runs_dir / name).rglob("*") if p.is_file() and b"sk-page-secret-42" in p.read_bytes()]


def test_an_empty_model_name_asks_for_one(open_page, runs_dir):
    at = _endpoint_page(open_page, "http://127.0.0.1:8000/v1", model="")
    assert not at.exception and not at.error
    assert "Give the model name" in at.info[0].value


@pytest.mark.slow
def test_a_finished_generate_run_shows_its_cost_and_what_it_cannot_show(open_page, runs_dir, llama_server):
    assert (
        main(
            [
                "prompt",
                "--train",
                "reviews",
                "--eval",
                "reviews",
                "--model",
                llama_server.spec(),
                "--scoring-mode",
                "generate",
                "--calibrate",
                "none",
                "--max-eval-examples",
                "6",
                "--price-input",
                "1",
                "--price-output",
                "2",
                "--out",
                "gen",
            ]
        )
        == 0
    )
    at = _endpoint_page(open_page, llama_server.base_url)
    assert not at.exception and not at.error
    shown = {m.label: m.value for m in at.metric}
    metrics = json.loads((runs_dir / "gen" / "metrics.json").read_text())
    assert shown["Scoring mode"] == "generate" and shown["Unparsed answers"] == str(metrics["unparsed"])
    assert shown["Cost"] == f"${metrics['cost_usd']:.4f}" and shown["Median latency"].endswith(" ms")
    assert any("Not shown for this run: label probabilities" in i.value for i in at.info)
