"""Bundled SmolLM2 on the project's sentiment sample: zero-shot prompting beats the majority-class rate."""

from __future__ import annotations

import pytest

from core import data, prompting
from core.prompting import PromptConfig


@pytest.mark.slow
def test_zero_shot_beats_majority_class_on_reviews():
    ds = data.load_sample("reviews")
    test = ds.splits["test"]
    config = PromptConfig(shots=0, instruction="Is the sentiment of this review {labels}?", query_template="Review: {text}\nSentiment:",
                          max_eval_examples=60, batch_size=32)
    result = prompting.run_prompting(config, ds.splits["train"], test, ds.label_names)
    subset = prompting.eval_subset(test, 60)
    majority = subset["label"].value_counts(normalize=True).max()
    assert result.metrics["n_examples"] == 60
    assert result.metrics["accuracy"] > majority + 0.05, (result.metrics["accuracy"], majority)
