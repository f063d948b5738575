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
        assert (
            main(
                [
                    "prompt",
                    "--train",
                    "reviews",
                    "--eval",
                    "reviews",
                    "--model",
                    str(tiny_llama_dir),
                    "--shots",
                    "2",
                    "--seed",
                    seed,
                    "--max-eval-examples",
                    "10",
                    "--out",
                    f"earlier-{seed}",
                ]
            )
            == 0
        )
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
        states = [
            json.loads((runs_dir / n / "status.json").read_text()).get("state")
            if (runs_dir / n / "status.json").exists()
            else None
            for n in names
        ]
        if all(s in ("succeeded", "failed", "cancelled") for s in states):
            break
        time.sleep(1)
    assert states == ["succeeded", "succeeded"], (runs_dir / names[0] / "log.txt").read_text()[-2000:]
    at.run()
    assert not at.exception
    assert at.selectbox(key=scoped(at, f"pr_result_run_{names[0]}")).value == names[0]  # the box shows the job that just ended
    assert json.loads((runs_dir / names[1] / "config.json").read_text())["max_eval_examples"] == 8


def test_run_saves_the_whole_form_as_the_jobs_config_file(tiny_llama_dir, runs_dir, _page, monkeypatch):
    """The job starts from job.json in the grid's first reserved run folder; read back by `prompt --config`, every cell
    of the grid has exactly the settings on the form (chat, batch size, device, precision and scoring engine included)."""
    import dataclasses
    import os
    import types

    from core import endpoints, jobs, prompting
    from core.cli import parse_args
    from core.cli import prompt as cli_prompt

    started = []
    monkeypatch.setattr(endpoints, "local_options", lambda config, device: {})  # as on a CUDA machine with vllm installed
    monkeypatch.setattr(
        jobs.subprocess, "Popen", lambda argv, **kw: started.append(argv) or types.SimpleNamespace(pid=os.getpid())
    )
    at = _page(tiny_llama_dir)
    at.text_area(key=scoped(at, "pr_instruction")).set_value("Pick one of {labels}.")
    at.text_area(key=scoped(at, "pr_query")).set_value("Q: {text}\nA:")
    at.checkbox(key=scoped(at, "pr_chat")).check()
    at.text_input(key=scoped(at, "pr_shots")).set_value("0 2")
    at.text_input(key=scoped(at, "pr_seeds")).set_value("3")
    for key, value in {
        "pr_selection": "random",
        "pr_calibration": "pmi",
        "pr_scoring": "mean",
        "pr_precision": "bf16",
        "pr_backend": "vllm",
    }.items():
        at.selectbox(key=scoped(at, key)).set_value(value)
    at.number_input(key=scoped(at, "pr_cap")).set_value(9)
    at.number_input(key=scoped(at, "pr_batch")).set_value(4)
    at.text_input(key=scoped(at, "pr_device")).set_value("cpu").run()
    at.button(key=scoped(at, "pr_run")).click().run()
    assert not at.exception and not at.error
    names = at.session_state[scoped(at, "prompt_job")]
    job = runs_dir / names[0] / "job.json"
    assert started[0][-5:] == ["prompt", "--config", str(job), "--out", names[0].removesuffix("-0shot-seed3")]
    args = parse_args(["prompt", "--config", str(job)])
    assert (args.train, args.eval, args.shots, args.seed) == ("reviews:train", "reviews:test", [0, 2], [3])
    expected = prompting.PromptConfig(
        model=str(tiny_llama_dir),
        instruction="Pick one of {labels}.",
        query_template="Q: {text}\nA:",
        use_chat_template=True,
        shots=2,
        selection="random",
        calibration="pmi",
        scoring="mean",
        seed=3,
        batch_size=4,
        max_eval_examples=9,
        device="cpu",
        precision="bf16",
        backend="vllm",
    )
    saved = cli_prompt.build_config(args, 2, 3)
    assert {k: v for k, v in dataclasses.asdict(saved).items() if v != dataclasses.asdict(expected)[k]} == {}


def test_gpu_options_on_a_cpu_are_answered_by_their_sentence(tiny_llama_dir, runs_dir, _page):
    at = _page(tiny_llama_dir)
    at.selectbox(key=scoped(at, "pr_precision")).set_value("bf16").run()
    assert not at.exception
    assert at.error[0].value.endswith(
        "--precision bf16 is for a CUDA GPU; on cpu the model runs in fp32 (leave --precision auto)."
    )
    at.selectbox(key=scoped(at, "pr_precision")).set_value("auto")
    at.selectbox(key=scoped(at, "pr_quantize")).set_value("4bit").run()
    assert at.error[0].value.endswith("--quantize 4bit needs a CUDA GPU (bitsandbytes kernels); this machine scores on cpu.")
    at.selectbox(key=scoped(at, "pr_backend")).set_value("vllm").run()
    assert at.error[0].value.endswith("vLLM loads quantized checkpoints (AWQ, GPTQ) by their model name.")
    at.selectbox(key=scoped(at, "pr_quantize")).set_value(None).run()
    assert "--backend vllm needs" in at.error[0].value and len(at.error) == 1


def _dataset(labels: list[str], per_label: int = 4):
    """A small Dataset with the given labels, split 70/15/15."""
    import pandas as pd

    from core import data

    rows = [(f"example text {i} for {lab}", lab) for lab in labels for i in range(per_label)]
    return data.from_frame(pd.DataFrame(rows, columns=["text", "label"]), "custom.csv", "custom.csv")


def _open_with(open_page, model_dir, ds):
    """The Prompting page on ds (the Hugging Face source leaves a dataset in the session as it is)."""
    return open_page(
        "app_pages/prompting.py", pr_model="other", pr_model_other=str(model_dir), ds_kind="Hugging Face", dataset=ds
    )


def test_numeric_labels_get_one_warning_and_a_label_word_editor(tiny_llama_dir, runs_dir, open_page):
    at = _open_with(open_page, tiny_llama_dir, _dataset(["0", "1"], per_label=10))
    assert not at.exception and not at.error
    assert len(at.warning) == 1 and "2 of 2 label words are numbers or codes" in at.warning[0].value
    editors = [e for e in at.dataframe if list(e.value.columns) == ["label", "word"]]
    assert len(editors) == 1 and editors[0].value["word"].tolist() == ["0", "1"]
    notices = [e for e in at.expander if "Label words that need attention" in e.label]
    assert len(notices) == 1 and "Label word '0' (0) is a number or code" in notices[0].text[0].value


def test_seventy_seven_labels_give_one_notice_and_the_run_button(tiny_llama_dir, runs_dir, open_page):
    intents = [f"intent_{chr(97 + i // 26)}{chr(97 + i % 26)}_request" for i in range(77)]
    at = _open_with(open_page, tiny_llama_dir, _dataset(intents))
    assert not at.exception and not at.error
    assert len(at.warning) == 0  # the words mean something ("intent aa request"): no opaque warning
    editors = [e for e in at.dataframe if list(e.value.columns) == ["label", "word"]]
    assert editors[0].value["word"].tolist()[:2] == ["intent aa request", "intent ab request"]  # underscores as spaces
    notices = [e for e in at.expander if "Label words that need attention" in e.label]
    assert len(notices) == 1 and len(notices[0].text[0].value.splitlines()) > 10  # many multi-token words, one notice
    notes = len(notices[0].text[0].value.splitlines())  # the title counts notes and the labels they name, not one for the other
    assert f"({notes} notes on " in notices[0].label and " of 77 labels)" in notices[0].label
    assert at.button(key=scoped(at, "pr_run"))  # reachable: nothing but the one notice stands between it and the prompt


def test_results_show_what_auto_chose(tiny_llama_dir, runs_dir, _page):
    assert (
        main(
            [
                "prompt",
                "--train",
                "reviews",
                "--eval",
                "reviews",
                "--model",
                str(tiny_llama_dir),
                "--template",
                "auto",
                "--max-eval-examples",
                "6",
                "--out",
                "auto-run",
            ]
        )
        == 0
    )
    at = _page(tiny_llama_dir)
    assert not at.exception and not at.error
    chosen = [e for e in at.expander if e.label.startswith("Chosen automatically: template '")]
    assert len(chosen) == 1 and "the first candidate within one standard error wins" in chosen[0].text[0].value
    assert len(chosen[0].dataframe[0].value) == 12  # 4 templates x 3 calibrations, each with its slice macro-F1


def test_a_result_below_the_majority_class_is_flagged(tiny_llama_dir, runs_dir, _page):
    """Issue 9 item 4: the Prompting page's result says when a run does not beat always answering the majority label."""
    from tests.compare_fixtures import make_run

    make_run(runs_dir, "always-wrong", 0.0, kind="prompt")
    at = _page(tiny_llama_dir)
    assert not at.exception
    assert any("'always-wrong' does not beat the majority baseline" in w.value for w in at.warning)
    make_run(runs_dir, "always-right", 1.0, kind="prompt")
    at = _page(tiny_llama_dir)
    assert not any("does not beat the majority baseline" in w.value for w in at.warning)  # the newest run is shown first
