"""Houlsby bottleneck adapters on the tiny random BERT: placement, identity at start, what trains, save and reload."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import UserError
from core.runs import RunDir
from core.training import adapters, base, finetune, pooled
from tests.test_finetune import LABELS, config_for, toy_frame


def test_adapters_sit_after_attention_and_feed_forward_and_start_as_identity(tiny_bert_dir):
    model = pooled.build(str(tiny_bert_dir), LABELS).eval()
    batch = {"input_ids": torch.tensor([[2, 10, 11, 3]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    before = model(**batch).logits
    assert adapters.add_adapters(model.body, reduction=4) == 2 * 2  # 2 layers x (attention output, feed-forward output)
    wrapped = sorted(n for n, m in model.body.named_modules() if isinstance(m, adapters.AdaptedLinear))
    assert wrapped == [
        "encoder.layer.0.attention.output.dense",
        "encoder.layer.0.output.dense",
        "encoder.layer.1.attention.output.dense",
        "encoder.layer.1.output.dense",
    ]
    assert model.body.get_submodule("encoder.layer.0.output.dense").adapter.down.out_features == 32 // 4
    torch.testing.assert_close(model(**batch).logits, before)  # zero-initialised up-projection: the pretrained function
    assert adapters.reduction_of(model.body) == 4


def test_adapter_method_trains_adapters_norms_and_head_only(tiny_bert_dir):
    config = config_for(tiny_bert_dir, "adapter", adapter_reduction=8, lr=1e-2)
    model = finetune.build_model(config, LABELS)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".adapter." in n or "LayerNorm" in n or n.startswith("classifier.") for n in trainable)
    assert any(".adapter." in n for n in trainable) and {"classifier.weight", "classifier.bias"} <= trainable
    counts = base.count_parameters(model)
    # 4 adapters of 32 -> 4 -> 32, 5 layer norms of 2 x 32, the 32 x 2 head
    assert counts.trainable == 4 * (32 * 4 + 4 + 4 * 32 + 32) + 5 * 64 + 32 * 2 + 2
    assert counts.trainable < counts.total


def test_adapter_run_reloads_to_the_same_probabilities(tiny_bert_dir, tmp_path):
    run = RunDir(tmp_path / "adapter").create({"kind": "finetune"})
    eval_frame = toy_frame(10, "test")
    config = config_for(tiny_bert_dir, "adapter", adapter_reduction=4, lr=1e-2, epochs=2)
    result = finetune.train(config, toy_frame(32), None, eval_frame, LABELS, run)
    assert (run.path / "model" / pooled.ADAPTED_BODY_FILE).exists()
    model, tokenizer = finetune.load_run_model(run.path)
    assert adapters.reduction_of(model.body) == 4
    probs = base.predict_probs(model, tokenizer, list(eval_frame["text"]))
    np.testing.assert_allclose(probs, result.predictions[[f"prob_{lab}" for lab in LABELS]].to_numpy(), atol=1e-4)


def test_adapter_reduction_is_validated():
    with pytest.raises(UserError, match="--adapter-reduction"):
        finetune.FinetuneConfig(method="adapter", adapter_reduction=0)
