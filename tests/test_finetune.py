"""Fine-tuning on the tiny random BERT and Llama: what each method trains, that loss falls, and the run contract."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.runs import RunDir
from core.training import base, finetune

LABELS = ["negative", "positive"]


def toy_frame(n: int = 48, prefix: str = "train") -> pd.DataFrame:
    """A linearly separable set: 'great' texts are positive, 'terrible' texts negative."""
    pos = ["the movie was great and i loved it", "great great good fine"]
    neg = ["terrible service , never again", "bad bad terrible okay"]
    rows = [(pos[i % 2], "positive") if i % 2 == 0 else (neg[(i // 2) % 2], "negative") for i in range(n)]
    return pd.DataFrame(
        {"id": [f"{prefix}-{i}" for i in range(n)], "text": [t for t, _ in rows], "label": [lab for _, lab in rows]}
    )


def config_for(model_dir, method: str, **kw) -> finetune.FinetuneConfig:
    defaults = dict(model=str(model_dir), method=method, epochs=1, batch_size=8, seed=3, dev="none", early_stopping_patience=0)
    return finetune.FinetuneConfig(**{**defaults, **kw})


def expected_trainable(name: str, method: str, base_prefix: str) -> bool:
    """What each method should train, by parameter name."""
    if method == "full":
        return True
    if method == "lora":
        return "lora_" in name or "modules_to_save" in name
    in_head = not name.startswith(base_prefix + ".")
    return in_head or (method == "bitfit" and name.endswith(".bias"))


@pytest.mark.parametrize("which", ["bert", "llama"])
@pytest.mark.parametrize("method", ["full", "head", "bitfit", "lora"])  # the others: tests/test_methods.py
def test_each_method_trains_only_its_parameters(which, method, tiny_bert_dir, tiny_llama_dir):
    model_dir = tiny_bert_dir if which == "bert" else tiny_llama_dir
    config = config_for(model_dir, method, lr=1e-2)
    before_model = finetune.build_model(config, LABELS)  # train() builds the same model from the same seed
    before = {n: p.detach().clone() for n, p in before_model.named_parameters()}
    base_prefix = before_model.get_base_model().base_model_prefix if method == "lora" else before_model.base_model_prefix
    for name, p in before_model.named_parameters():
        assert p.requires_grad == expected_trainable(name, method, base_prefix), name

    result = finetune.train(config, toy_frame(), None, toy_frame(8, "test"), LABELS)
    after = dict(result.model.named_parameters())
    assert set(after) == set(before)
    changed = {n for n in before if not np.array_equal(before[n].numpy(), after[n].detach().cpu().numpy())}
    trainable = {n for n, p in after.items() if p.requires_grad}
    assert changed, "nothing was trained"
    assert changed <= trainable, f"frozen weights changed: {sorted(changed - trainable)[:5]}"
    head = [n for n in trainable if "classifier" in n or "score" in n]
    assert any(n in changed for n in head), "the classification head did not move"
    counts = base.count_parameters(result.model)
    assert counts.trainable == sum(after[n].numel() for n in trainable)
    assert result.metrics["trainable_params"] == counts.trainable
    if method != "full":
        assert counts.trainable < counts.total


def test_loss_falls_on_a_separable_toy_set(tiny_bert_dir, tmp_path):
    run = RunDir(tmp_path / "toy").create({"kind": "finetune"})
    config = config_for(tiny_bert_dir, "full", lr=3e-3, epochs=6, warmup_ratio=0.0)
    result = finetune.train(config, toy_frame(64), None, toy_frame(16, "test"), LABELS, run)
    losses = run.history()["loss"].dropna().to_numpy()
    assert len(losses) >= 6
    assert losses[-3:].mean() < 0.5 * losses[:3].mean()
    assert result.metrics["accuracy"] == 1.0


def test_history_metrics_predictions_and_saved_model_follow_the_contract(tiny_bert_dir, tmp_path):
    run = RunDir(tmp_path / "contract").create({"kind": "finetune"})
    config = config_for(tiny_bert_dir, "lora", lr=5e-3, epochs=2, dev="eval", early_stopping_patience=1)
    eval_frame = toy_frame(12, "test")
    result = finetune.train(config, toy_frame(32), toy_frame(8, "dev"), eval_frame, LABELS, run)

    history = run.history()
    train_rows = history.dropna(subset=["loss"])
    assert {"step", "epoch", "loss", "learning_rate"} <= set(train_rows.columns)
    assert train_rows["step"].is_monotonic_increasing
    evals = history.dropna(subset=["eval_macro_f1"])
    assert len(evals) >= 1 and evals["eval_macro_f1"].between(0, 1).all()

    m = result.metrics
    for key in (
        "accuracy",
        "macro_f1",
        "per_class",
        "confusion_matrix",
        "labels",
        "n_examples",
        "seconds",
        "examples_per_second",
        "trainable_params",
        "total_params",
    ):
        assert key in m, key
    assert m["n_examples"] == len(eval_frame) and m["labels"] == LABELS
    json.dumps(m, allow_nan=False)  # metrics.json must be strict JSON
    preds = result.predictions
    assert list(preds.columns[:5]) == ["id", "text", "label", "pred", "confidence"]
    assert list(preds["id"]) == list(eval_frame["id"])

    model_dir = run.path / "model"
    assert (model_dir / "adapter_model.safetensors").exists() and not list(model_dir.glob("*.bin"))
    model, tokenizer = finetune.load_run_model(run.path)
    assert not model.training and model.config._attn_implementation == "eager"
    assert not any("lora" in n for n, _ in model.named_parameters()), "the adapter should be merged"
    probs = base.predict_probs(model, tokenizer, list(eval_frame["text"]))
    saved = preds[[f"prob_{lab}" for lab in LABELS]].to_numpy()
    np.testing.assert_allclose(probs, saved, atol=1e-4)  # same order and same weights as the run's predictions


def test_full_model_reloads_as_safetensors(tiny_llama_dir, tmp_path):
    run = RunDir(tmp_path / "full").create({"kind": "finetune"})
    eval_frame = toy_frame(10, "test")
    result = finetune.train(config_for(tiny_llama_dir, "full", lr=1e-3), toy_frame(16), None, eval_frame, LABELS, run)
    assert (run.path / "model" / "model.safetensors").exists()
    model, tokenizer = finetune.load_run_model(run.path)
    probs = base.predict_probs(model, tokenizer, list(eval_frame["text"]), batch_size=3)
    np.testing.assert_allclose(probs, result.predictions[[f"prob_{lab}" for lab in LABELS]].to_numpy(), atol=1e-4)


def test_time_budget_and_cancel_stop_training(tiny_bert_dir):
    budget = config_for(tiny_bert_dir, "full", epochs=50, max_train_seconds=0.5)
    result = finetune.train(budget, toy_frame(), None, toy_frame(8, "test"), LABELS)
    assert result.stopped_by == "max_train_seconds" and result.metrics["steps"] < 50 * 6

    stop = threading.Event()
    stop.set()
    cancelled = finetune.train(
        config_for(tiny_bert_dir, "full", epochs=50), toy_frame(), None, toy_frame(8, "test"), LABELS, stop=stop
    )
    assert cancelled.cancelled and cancelled.metrics == {}


def test_parameter_counts_without_training(tiny_bert_dir):
    full = finetune.parameter_counts(config_for(tiny_bert_dir, "full"), 3)
    head = finetune.parameter_counts(config_for(tiny_bert_dir, "head"), 3)
    bitfit = finetune.parameter_counts(config_for(tiny_bert_dir, "bitfit"), 3)
    assert head.trainable == 32 * 3 + 3  # the linear classifier over the hidden-32 pooled output
    assert head.trainable < bitfit.trainable < full.trainable == full.total
    assert "trainable parameters" in head.sentence()


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(method="prefix"), "Unknown --method 'prefix'; choose one of: full"),
        (dict(epochs=0), "--epochs"),
        (dict(lr=5.0), "--lr"),
        (dict(batch_size=0), "--batch-size"),
        (dict(dev="test"), "Unknown --dev 'test'"),
        (dict(lora_r=0), "--lora-r must be a whole number of at least 1"),
        (dict(max_train_seconds=-1), "--max-train-seconds must be a number of at least 0"),
        (dict(weight_decay=1.0), "--weight-decay must be a number of at least 0 and below 1"),
        (dict(lora_alpha=0), "--lora-alpha must be a number above 0"),
    ],
)
def test_config_refuses_bad_values(bad, message):
    with pytest.raises(UserError, match=message):
        finetune.FinetuneConfig(**bad)


def test_dev_set_choice():
    from core import data

    sample = data.load_sample("reviews")
    train, dev, what = finetune.choose_dev(finetune.FinetuneConfig(), sample, "train", sample.splits["test"])
    assert dev is sample.splits["validation"] and "validation" in what
    file_like = data.finish(
        "f.csv", "f.csv", {"train": sample.splits["train"][["text", "label"]].copy()}, sample.label_names, "text", "label", []
    )
    train, dev, what = finetune.choose_dev(finetune.FinetuneConfig(), file_like, "train", sample.splits["test"])
    assert "held out" in what and len(train) + len(dev) == len(file_like.splits["train"])
    assert set(dev["label"]) == set(sample.label_names)
    assert not set(train["id"]) & set(dev["id"])
