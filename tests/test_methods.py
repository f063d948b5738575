"""logreg / knn on frozen mean-pooled embeddings and SetFit, on the tiny random BERT: the run contract, reloading, fit checks."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from core.errors import UserError
from core.runs import RunDir
from core.training import base, classifier, embeddings_clf, finetune, pooled
from core.training.base import FinetuneConfig
from tests.test_finetune import LABELS, config_for, toy_frame


def test_mean_pool_ignores_padding():
    import torch

    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2); the last token is padding
    mask = torch.tensor([[1, 1, 0]])
    assert pooled.mean_pool(hidden, mask).tolist() == [[2.0, 3.0]]


@pytest.mark.parametrize("n_classes", [2, 3])
def test_linear_weights_reproduce_logistic_regression(n_classes):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    y = np.arange(60) % n_classes
    clf = LogisticRegression().fit(x, y)
    coef, bias = embeddings_clf.linear_weights(clf, n_classes + 1)  # one more label, never seen in training
    logits = x @ coef.T + bias
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(probs[:, :n_classes], clf.predict_proba(x), atol=1e-8)
    assert probs[:, n_classes].max() < 1e-100


@pytest.mark.parametrize("method", ["logreg", "knn"])
def test_frozen_methods_write_the_contract_and_reload_to_the_same_probabilities(method, tiny_bert_dir, tmp_path):
    run = RunDir(tmp_path / method).create({"kind": "finetune"})
    eval_frame = toy_frame(12, "test")
    result = finetune.train(config_for(tiny_bert_dir, method), toy_frame(40), None, eval_frame, LABELS, run)
    m = result.metrics
    assert m["n_examples"] == 12 and m["labels"] == LABELS and m["accuracy"] >= 0.9  # separable even for a random encoder
    assert m["trainable_params"] == (32 * 2 + 2 if method == "logreg" else 0) and m["total_params"] > 32 * 300
    assert run.status["progress"] == 1.0
    json.dumps(m, allow_nan=False)
    model_dir = run.path / "model"
    assert (model_dir / "head.safetensors").exists() and not (
        model_dir / "model.safetensors"
    ).exists()  # the body is the base model
    model, tokenizer = finetune.load_run_model(run.path)
    probs = base.predict_probs(model, tokenizer, list(eval_frame["text"]))
    np.testing.assert_allclose(probs, result.predictions[[f"prob_{lab}" for lab in LABELS]].to_numpy(), atol=1e-4)


def test_frozen_method_cancels_between_batches(tiny_bert_dir):
    stop = threading.Event()
    stop.set()
    result = finetune.train(config_for(tiny_bert_dir, "logreg"), toy_frame(), None, toy_frame(8, "test"), LABELS, stop=stop)
    assert result.cancelled and result.metrics == {}


def test_setfit_trains_the_body_and_reloads(tiny_bert_dir, tmp_path):
    run = RunDir(tmp_path / "setfit").create({"kind": "finetune"})
    eval_frame = toy_frame(10, "test")
    config = config_for(tiny_bert_dir, "setfit", epochs=1, batch_size=64, lr=1e-3)
    result = finetune.train(config, toy_frame(8), None, eval_frame, LABELS, run)
    m = result.metrics
    assert m["steps"] > 0 and m["trainable_params"] == m["total_params"] and m["stopped_by"] == "epochs"
    assert not run.history().empty and "embedding_loss" in run.history().columns
    assert (run.path / "model" / "model.safetensors").exists() and (run.path / "model" / "pooling.json").exists()
    model, tokenizer = finetune.load_run_model(run.path)
    probs = base.predict_probs(model, tokenizer, list(eval_frame["text"]))
    np.testing.assert_allclose(probs, result.predictions[[f"prob_{lab}" for lab in LABELS]].to_numpy(), atol=1e-4)
    from core import attention

    am = attention.load_attention_model(f"{attention.RUN_PREFIX}{run.path}")
    out = attention.extract_attention(am, "great movie")
    assert out.attention.shape[0] == 2 and out.prediction in LABELS


def test_setfit_cancel(tiny_bert_dir):
    stop = threading.Event()
    stop.set()
    result = finetune.train(config_for(tiny_bert_dir, "setfit"), toy_frame(16), None, toy_frame(8, "test"), LABELS, stop=stop)
    assert result.cancelled


@pytest.mark.parametrize("method", finetune.ENCODER_ONLY)
def test_encoder_methods_refuse_a_decoder(method, tiny_llama_dir):
    with pytest.raises(UserError, match="needs an encoder"):
        finetune.check_method_fits(config_for(tiny_llama_dir, method))


def test_every_method_fits_one_of_the_bundled_roles(tiny_bert_dir, tiny_llama_dir):
    for method in finetune.METHODS:
        fits = [finetune.method_fits(method, role) for role in ("encoder", "decoder")]
        assert any(fits) and fits == [method not in finetune.DECODER_ONLY, method not in finetune.ENCODER_ONLY]
        finetune.check_method_fits(config_for(tiny_bert_dir if fits[0] else tiny_llama_dir, method))


def test_the_capability_lists_are_reads_of_the_method_records():
    """One record per method: the lists the CLI, pages, search and torchrun checks use come from it, in registration order."""
    assert list(finetune.METHODS) == [
        "full",
        "head",
        "bitfit",
        "lora",
        "adapter",
        "logreg",
        "knn",
        "setfit",
        "prompt-tuning",
        "lora-lm",
    ]
    assert finetune.ENCODER_ONLY == ("adapter", "logreg", "knn", "setfit") and finetune.DECODER_ONLY == (
        "prompt-tuning",
        "lora-lm",
    )
    assert finetune.SHARDED_METHODS == ("full", "head", "bitfit", "lora", "adapter") and finetune.FROZEN_METHODS == (
        "logreg",
        "knn",
    )
    assert set(finetune.DEFAULT_LR) == set(finetune.METHODS) - set(finetune.FROZEN_METHODS)
    assert all(m.caption and m.name == name for name, m in finetune.METHODS.items())
    assert FinetuneConfig(method="knn").learning_rate is None and FinetuneConfig(method="lora").learning_rate == 1e-3


@pytest.mark.parametrize("method", ["full", "prompt-tuning"])
def test_every_trainer_method_logs_where_report_to_says(method, monkeypatch, tmp_path):
    """One TrainingArguments builder: prompt learning honours --report-to as the classifiers do (it once hard-coded none)."""
    from core.runs import RunDir

    real = base.importlib.util.find_spec
    monkeypatch.setattr(base.importlib.util, "find_spec", lambda name, *a: object() if name == "tensorboard" else real(name, *a))
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    config = FinetuneConfig(method=method, report_to="tensorboard", batch_size=4, epochs=2)
    args = base.training_arguments(config, tmp_path / "work", 100, "cpu", 1000, RunDir(tmp_path))
    assert args.report_to == ["tensorboard"] and args.eval_strategy == "no" and args.learning_rate == config.learning_rate
    assert args.logging_steps == 2  # 50 steps / 25


def test_parameter_counts_of_the_embedding_methods(tiny_bert_dir):
    logreg = finetune.parameter_counts(config_for(tiny_bert_dir, "logreg"), 3)
    knn = finetune.parameter_counts(config_for(tiny_bert_dir, "knn"), 3)
    setfit = finetune.parameter_counts(config_for(tiny_bert_dir, "setfit"), 3)
    assert logreg.trainable == 32 * 3 + 3 and knn.trainable == 0 and setfit.trainable == setfit.total


@pytest.mark.parametrize(
    "method, which, sentence", [("setfit", "llama", "needs an encoder"), ("prompt-tuning", "bert", "needs a decoder")]
)
def test_cli_refuses_a_method_that_does_not_fit_the_model(method, which, sentence, runs_dir, tiny_llama_dir, tiny_bert_dir):
    from tests.test_cli_finetune import cli

    model = tiny_llama_dir if which == "llama" else tiny_bert_dir
    out = cli("--train", "reviews", "--eval", "reviews", "--model", str(model), "--method", method, "--out", "misfit")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: Method '{method}' {sentence}")
    assert not (runs_dir / "misfit").exists()


def test_cli_logreg_run_writes_the_contract(runs_dir, tiny_bert_dir):
    from tests.test_cli_finetune import cli

    out = cli(
        "--train", "reviews", "--eval", "reviews:validation", "--model", str(tiny_bert_dir), "--method", "logreg", "--out", "lr"
    )
    assert out.returncode == 0, out.stderr
    run = runs_dir / "lr"
    config = json.loads((run / "config.json").read_text())
    assert config["method"] == "logreg" and config["lr"] is None
    assert json.loads((run / "status.json").read_text())["state"] == "succeeded"
    preds = (run / "predictions.csv").read_text().splitlines()[0]
    assert "prob_positive" in preds


@pytest.fixture(scope="session")
def tiny_st_dir(tiny_bert_dir, tmp_path_factory):
    """The tiny BERT made a sentence-transformers model (mean pooling, normalised), as all-MiniLM-L6-v2 is."""
    import shutil

    path = tmp_path_factory.mktemp("tiny-st") / "model"
    shutil.copytree(tiny_bert_dir, path)
    (path / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ]
        )
    )
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    return path


def test_sentence_transformers_are_detected(tiny_st_dir, tiny_bert_dir):
    assert pooled.is_sentence_transformer(str(tiny_st_dir)) and pooled.normalizes(str(tiny_st_dir))
    assert not pooled.is_sentence_transformer(str(tiny_bert_dir))
    assert classifier.uses_mean_pooling(config_for(tiny_st_dir, "full"))
    assert not classifier.uses_mean_pooling(config_for(tiny_st_dir, "full", pooling="cls"))
    assert not classifier.uses_mean_pooling(config_for(tiny_bert_dir, "full"))


@pytest.mark.parametrize("method", ["full", "head", "bitfit", "lora"])
def test_mean_pooled_head_trains_what_the_method_trains_and_reloads(method, tiny_st_dir, tmp_path):
    config = config_for(tiny_st_dir, method, lr=1e-2)
    built = finetune.build_model(config, LABELS)
    inner = built.get_base_model() if method == "lora" else built
    assert isinstance(inner, pooled.PooledClassifier) and inner.body.pooler is None
    trainable = {n for n, p in built.named_parameters() if p.requires_grad}
    if method == "head":
        assert trainable == {"classifier.weight", "classifier.bias"}
    elif method == "bitfit":
        assert all(n.endswith(".bias") or n.startswith("classifier.") for n in trainable) and len(trainable) > 2
    elif method == "lora":
        assert all("lora_" in n or "classifier" in n for n in trainable)
    run = RunDir(tmp_path / method).create({"kind": "finetune"})
    eval_frame = toy_frame(10, "test")
    result = finetune.train(config, toy_frame(32), None, eval_frame, LABELS, run)
    assert result.metrics["trainable_params"] == base.count_parameters(built).trainable
    assert (run.path / "model" / "pooling.json").exists()
    model, tokenizer = finetune.load_run_model(run.path)
    assert isinstance(model, pooled.PooledClassifier)
    probs = base.predict_probs(model, tokenizer, list(eval_frame["text"]))
    np.testing.assert_allclose(probs, result.predictions[[f"prob_{lab}" for lab in LABELS]].to_numpy(), atol=1e-4)
