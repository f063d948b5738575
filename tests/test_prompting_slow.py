"""Bundled SmolLM2 on the project's sentiment sample: zero-shot prompting beats the majority-class rate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core import data, prompting
from core.prompting import PromptConfig


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["reviews", "support_intents"])
def test_zero_shot_with_default_prompt_beats_majority_class(sample):
    """A new user's defaults (generic template, calibration chosen on a train slice) beat always answering the majority class."""
    ds = data.load_sample(sample)
    test = ds.splits["test"]
    config = PromptConfig(shots=0, max_eval_examples=60)
    result = prompting.run_prompting(config, ds.splits["train"], test, ds.label_names)
    subset = prompting.eval_subset(test, 60)
    majority = subset["label"].value_counts(normalize=True).max()
    assert result.metrics["n_examples"] == 60
    assert result.metrics["accuracy"] > majority + 0.1, (result.metrics["accuracy"], majority)


@pytest.mark.slow
def test_sentiment_template_zero_shot_on_reviews():
    ds = data.load_sample("reviews")
    config = PromptConfig(
        shots=0,
        instruction="Is the sentiment of this review {labels}?",
        query_template="Review: {text}\nSentiment:",
        max_eval_examples=60,
        batch_size=32,
    )
    result = prompting.run_prompting(config, ds.splits["train"], ds.splits["test"], ds.label_names)
    assert result.metrics["accuracy"] > 0.45, result.metrics["accuracy"]


SHARED = Path(os.environ.get("PFT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "sst2"


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.exists(), reason="the shared SST-2 data is not here")
def test_auto_on_sst2_chooses_from_training_rows_and_beats_the_majority_class():
    """Real data nobody here wrote: auto picks template and calibration on SST-2 train rows, then scores dev rows."""
    train_ds, _ = data.load_split(str(SHARED / "train.tsv"), "train")
    dev_ds, _ = data.load_split(str(SHARED / "dev.tsv"), "test")
    dev = prompting.eval_subset(dev_ds.splits["test"], 60)
    config = PromptConfig(
        shots=0, calibration="auto", template="auto", label_words={"0": "negative", "1": "positive"}, batch_size=16
    )
    result = prompting.run_prompting(config, train_ds.splits["train"], dev, ["0", "1"])
    record = result.auto
    assert len(record["candidates"]) == len(prompting.TEMPLATES) * 3 and record["slice_rows"] == 2 * prompting.SLICE_PER_CLASS
    assert record["best_slice_macro_f1"] == max(c["macro_f1"] for c in record["candidates"])
    assert record["slice_macro_f1"] >= record["best_slice_macro_f1"] - record["standard_error"]
    majority = dev["label"].value_counts(normalize=True).max()
    assert result.metrics["accuracy"] > majority, (result.metrics["accuracy"], majority)  # 0/1 as words lands near 0.5
