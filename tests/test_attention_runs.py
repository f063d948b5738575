"""The Attention page's view of a prompt run: the decoder reads that run's prompt (core.prompting's builder) around the
text, with the label-word probabilities the run computed; tiny Llama, prompt runs made through the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import attention, data
from core.cli import main
from core.runs import RunDir
from tests.scoped import scoped

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def prompt_run(runs_dir, tiny_llama_dir) -> RunDir:
    """A 2-shot, uncalibrated prompt run of the tiny Llama on 8 reviews test rows."""
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
                "--calibrate",
                "none",
                "--max-eval-examples",
                "8",
                "--out",
                "tiny-2shot",
            ]
        )
        == 0
    )
    return RunDir(runs_dir / "tiny-2shot")


def test_a_prompt_run_is_replayed_on_its_prompt_with_its_probabilities(prompt_run):
    am = attention.load_attention_model(f"{attention.RUN_PREFIX}{prompt_run.path}")
    assert am.kind == "prompt" and am.label_names == ["negative", "neutral", "positive"]
    row = prompt_run.predictions().iloc[0]
    result = attention.extract_attention(am, row["text"], max_tokens=512)
    demos = data.load_sample("reviews").splits["train"]
    assert result.input_text.startswith("Classify each text as one of: negative, neutral, positive.")
    assert result.input_text.endswith(f"Text: {row['text']}\nCategory:")
    assert result.input_text.count("Text: ") == 3 and any(
        t[:40] in result.input_text for t in demos["text"]
    )  # its 2 demonstrations
    assert len(result.tokens) == result.attention.shape[-1] > 20
    assert result.probabilities == pytest.approx({lab: row[f"prob_{lab}"] for lab in am.label_names})
    assert result.prediction == row["pred"]
    assert any("as the run computed them" in n for n in result.notes)


def assert_rescored_like_the_run(am, predictions: pd.DataFrame) -> None:
    """With the run's recorded probabilities forgotten, scoring its rebuilt prompt here gives its numbers for 3 rows."""
    am.prompt_run = dataclasses.replace(am.prompt_run, predictions=pd.DataFrame({"text": []}))
    for _, row in predictions.head(3).iterrows():
        result = attention.extract_attention(am, row["text"], max_tokens=512)
        assert any("scored here" in n for n in result.notes)
        np.testing.assert_allclose(
            [result.probabilities[lab] for lab in am.label_names], [row[f"prob_{lab}"] for lab in am.label_names], atol=1e-4
        )


def test_probabilities_scored_on_the_rebuilt_prompt_equal_the_run_s(prompt_run):
    """Uncalibrated, scoring the prompt rebuilt here gives the run's own numbers: the same demonstrations, order and tokens."""
    am = attention.load_attention_model(f"{attention.RUN_PREFIX}{prompt_run.path}")
    predictions = prompt_run.predictions()
    assert_rescored_like_the_run(am, predictions)


def test_demonstrations_are_left_out_when_they_do_not_fit_the_token_limit(prompt_run):
    am = attention.load_attention_model(f"{attention.RUN_PREFIX}{prompt_run.path}")
    text = prompt_run.predictions()["text"].iloc[0]
    full = attention.prompt_input(am, text, 512)
    short = attention.prompt_input(am, text, len(full.ids) - 1)
    assert len(short.ids) < len(full.ids) and short.text.count("Text: ") == 1 and short.text.endswith("Category:")
    assert any("2 demonstrations are left out" in n for n in short.notes)
    tiny = attention.prompt_input(am, text, 8)
    assert len(tiny.ids) == 8 and tiny.ids[-3:] == full.ids[-3:]  # the end of the query stays: the label word follows it
    assert any("only its last 8" in n for n in tiny.notes)
    sal = attention.saliency(am, text, method="gradient x input", max_tokens=64)
    assert any(f" {lab}".startswith(sal.target.replace("␣", " ")) for lab in am.label_names)  # a label word's first token


def test_a_prompt_run_whose_training_data_changed_is_shown_zero_shot(prompt_run, tmp_path):
    config = prompt_run.config
    config["dataset"]["train_sha256"] = "changed"
    prompt_run.write("config.json", config)
    am = attention.load_attention_model(f"{attention.RUN_PREFIX}{prompt_run.path}")
    result = attention.extract_attention(am, "a text the run never saw", max_tokens=512)
    assert result.input_text.count("Text: ") == 1
    assert any("has changed since the run" in n for n in result.notes) and any("scored here" in n for n in result.notes)
    assert sum(result.probabilities.values()) == pytest.approx(1.0)


def test_attention_page_from_compare_shows_the_prompt_run_s_prompt_and_label_probabilities(prompt_run, runs_dir, tiny_llama_dir):
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    row = prompt_run.predictions().iloc[0]
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    at.session_state["attention_text"] = row["text"]  # as Compare's "Open this example on the Attention page" hands it over
    at.session_state["attention_models"] = [f"run:{prompt_run.path}", str(tiny_llama_dir)]
    at.switch_page("app_pages/attention.py").run()
    assert not at.exception and not at.error
    assert at.selectbox(key=scoped(at, "att_left")).value == f"run:{prompt_run.path}"
    prompts = [c.value for c in at.code if "Category:" in c.value]
    assert prompts and prompts[0].startswith("Classify each text as one of:") and prompts[0].endswith(f"{row['text']}\nCategory:")
    assert any(c.value.startswith(f"predicted label: {row['pred']} (") for c in at.caption)
    probs = next(d.value for d in at.dataframe if list(d.value.columns) == ["label", "probability"])
    assert list(probs["label"]) == ["negative", "neutral", "positive"]
    np.testing.assert_allclose(probs["probability"], [row[f"prob_{lab}"] for lab in probs["label"]], atol=1e-6)
    assert any("predicted next token" in c.value for c in at.caption)  # the plain decoder on the right reads the raw text
    options = at.selectbox(key=scoped(at, "att_left")).options
    assert any(o.startswith("prompt run tiny-2shot") for o in options)


@pytest.fixture
def lora_lm_run(runs_dir, tiny_llama_dir) -> RunDir:
    """A lora-lm run of the tiny Llama (a few steps on 16 reviews), scored on the reviews test split."""
    assert (
        main(
            [
                "finetune",
                "--train",
                "reviews",
                "--eval",
                "reviews",
                "--model",
                str(tiny_llama_dir),
                "--method",
                "lora-lm",
                "--epochs",
                "1",
                "--lr",
                "5e-2",
                "--batch-size",
                "8",
                "--max-train-examples",
                "16",
                "--out",
                "tiny-lora-lm",
            ]
        )
        == 0
    )
    return RunDir(runs_dir / "tiny-lora-lm")


def test_a_lora_lm_run_is_shown_on_the_prompt_it_was_trained_on_with_its_probabilities(lora_lm_run):
    """Its LoRA merged into the decoder, the zero-shot prompt rebuilt: scoring here gives the run's own probabilities."""
    am = attention.load_attention_model(f"{attention.RUN_PREFIX}{lora_lm_run.path}")
    assert am.kind == "prompt" and am.label_names == ["negative", "neutral", "positive"]
    predictions = lora_lm_run.predictions()
    row = predictions.iloc[0]
    result = attention.extract_attention(am, row["text"], max_tokens=512)
    assert result.input_text.endswith(f"Text: {row['text']}\nCategory:") and result.input_text.count("Text: ") == 1
    assert result.prediction == row["pred"] and any("as the run computed them" in n for n in result.notes)
    assert_rescored_like_the_run(am, predictions)


def test_attention_page_lists_lora_lm_runs_and_not_prompt_tuning_runs(lora_lm_run, runs_dir):
    """A lora-lm run is offered and drawn like a prompt run; a prompt-tuning run (a soft prompt, no tokens) is not offered,
    and asked for by name it is one sentence."""
    import json
    import shutil

    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    soft = runs_dir / "tiny-soft-prompt"
    shutil.copytree(lora_lm_run.path, soft)
    for name in ("config.json", "model/prompt_learning.json"):
        spec = json.loads((soft / name).read_text())
        (soft / name).write_text(json.dumps({**spec, "method": "prompt-tuning"}))
    row = lora_lm_run.predictions().iloc[0]
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180).run()
    at.session_state["attention_text"] = row["text"]
    at.session_state["attention_models"] = [f"run:{lora_lm_run.path}", f"run:{soft}"]
    at.switch_page("app_pages/attention.py").run()
    assert not at.exception
    options = at.selectbox(key=scoped(at, "att_left")).options  # as shown; a handed-over spec not listed shows as its path
    assert any(o.startswith("fine-tuned run tiny-lora-lm") for o in options)
    assert not any(o.startswith("fine-tuned run tiny-soft-prompt") for o in options)
    prompts = [c.value for c in at.code if "Category:" in c.value]
    assert prompts and prompts[0].endswith(f"{row['text']}\nCategory:")
    assert any(c.value.startswith(f"predicted label: {row['pred']} (") for c in at.caption)
    assert [e.value for e in at.error] == [
        "tiny-soft-prompt learned a soft prompt, which has no tokens to show attention on; open its base model instead."
    ]
