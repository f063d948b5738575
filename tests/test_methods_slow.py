"""Each new method family once on the bundled models (slow): embeddings (logreg), SetFit, adapters, prompt learning."""

from __future__ import annotations

import numpy as np
import pytest

from core import attention, data, models
from core.runs import RunDir
from core.training import base, finetune

pytestmark = pytest.mark.slow


def reloads_to_the_same_probabilities(run, result, test, labels):
    model, tokenizer = finetune.load_run_model(run.path)
    probs = base.predict_probs(model, tokenizer, list(test["text"][:8]), max_length=64)
    np.testing.assert_allclose(probs, result.predictions[[f"prob_{lab}" for lab in labels]].to_numpy()[:8], atol=1e-4)


@pytest.mark.parametrize("method", ["logreg", "setfit", "adapter"])
def test_minilm_embedding_and_adapter_methods_beat_chance_and_reload(method, tmp_path):
    ds = data.load_sample("reviews")
    train = ds.splits["train"] if method != "setfit" else finetune.cap_rows(ds.splits["train"], 24, 0)
    config = finetune.FinetuneConfig(
        model=models.ENCODER,
        method=method,
        epochs=1,
        batch_size=16,
        max_length=64,
        dev="none",
        early_stopping_patience=0,
        seed=0,
        max_train_seconds=120,
    )
    run = RunDir(tmp_path / method).create({"kind": "finetune", "model": models.ENCODER})
    test = ds.splits["test"]
    result = finetune.train(config, train, None, test, ds.label_names, run)
    assert result.metrics["accuracy"] > 0.5  # three balanced classes: chance is about 0.33
    reloads_to_the_same_probabilities(run, result, test, ds.label_names)
    am = attention.load_attention_model(f"{attention.RUN_PREFIX}{run.path}")
    assert attention.extract_attention(am, "a fine kettle").attention.shape[:2] == (6, 12)


@pytest.mark.parametrize("method", ["prompt-tuning", "lora-lm"])
def test_smollm2_prompt_learning_runs_and_scores_every_label(method, tmp_path):
    ds = data.load_sample("reviews")
    config = finetune.FinetuneConfig(
        model=models.DECODER,
        method=method,
        epochs=1,
        batch_size=8,
        max_length=64,
        dev="none",
        early_stopping_patience=0,
        seed=0,
        max_train_seconds=60,
    )
    run = RunDir(tmp_path / method).create({"kind": "finetune", "model": models.DECODER})
    test = ds.splits["test"].head(24)
    result = finetune.train(config, finetune.cap_rows(ds.splits["train"], 32, 0), None, test, ds.label_names, run)
    probs = result.predictions[[f"prob_{lab}" for lab in ds.label_names]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert result.metrics["steps"] >= 1 and result.metrics["trainable_params"] < 0.05 * result.metrics["total_params"]
    assert (run.path / "model" / "adapter_model.safetensors").exists()
