"""Fine-tuning the bundled models (slow): MiniLM head-only learns something; SmolLM2 takes LoRA and reloads for attention."""

from __future__ import annotations

import numpy as np
import pytest

from core import data, models
from core.runs import RunDir
from core.training import base, finetune

pytestmark = pytest.mark.slow


def test_minilm_bitfit_short_run_beats_chance_and_reloads(tmp_path):
    ds = data.load_sample("reviews")
    config = finetune.FinetuneConfig(
        model=models.ENCODER,
        method="bitfit",
        epochs=2,
        batch_size=16,
        max_length=64,
        dev="none",
        early_stopping_patience=0,
        seed=0,
    )
    run = RunDir(tmp_path / "minilm").create({"kind": "finetune", "model": models.ENCODER})
    test = ds.splits["test"]
    result = finetune.train(config, ds.splits["train"], None, test, ds.label_names, run)
    assert result.metrics["accuracy"] > 0.5  # three balanced classes: chance is about 0.33
    assert result.metrics["trainable_params"] < 0.01 * result.metrics["total_params"]
    model, tokenizer = finetune.load_run_model(run.path)
    assert model.config._attn_implementation == "eager"
    probs = base.predict_probs(model, tokenizer, list(test["text"][:8]), max_length=64)
    np.testing.assert_allclose(probs, result.predictions[[f"prob_{lab}" for lab in ds.label_names]].to_numpy()[:8], atol=1e-4)


def test_smollm2_lora_trains_a_few_steps_and_reloads_merged(tmp_path):
    ds = data.load_sample("reviews")
    config = finetune.FinetuneConfig(
        model=models.DECODER,
        method="lora",
        epochs=1,
        batch_size=8,
        max_length=48,
        dev="none",
        early_stopping_patience=0,
        max_train_seconds=20,
        seed=0,
    )
    counts = finetune.parameter_counts(config, len(ds.label_names))
    assert counts.trainable < 0.01 * counts.total
    run = RunDir(tmp_path / "smollm2").create({"kind": "finetune", "model": models.DECODER})
    test = ds.splits["test"].head(12)
    result = finetune.train(config, ds.splits["train"].head(32), None, test, ds.label_names, run)
    assert result.metrics["n_examples"] == 12
    assert (run.path / "model" / "adapter_model.safetensors").exists()
    model, tokenizer = finetune.load_run_model(run.path)
    assert not any("lora" in n for n, _ in model.named_parameters())
    out = model(**tokenizer(["a fine product"], return_tensors="pt"), output_attentions=True)
    assert out.attentions is not None and len(out.attentions) == 30  # eager attention: weights for every layer
