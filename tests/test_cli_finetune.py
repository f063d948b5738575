"""`python -m core finetune`: bad inputs end with exit status 2 and one sentence; a good run writes the whole contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "core", "finetune", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "args, sentence",
    [
        (["--epochs", "0"], "--epochs must be a number above 0 and at most 100"),
        (["--train", "missing.csv"], "There is no file"),
        (["--lr", "3"], "--lr must be a number above 0 and below 1"),
        (["--eval-every", "sometimes"], "--eval-every must be 'epoch' or a number"),
        (["--out", "../outside"], "outside it"),
        (["--model", "https://example.com/model"], "is not a model name"),
        (["--label-words", "positive=good"], "full trains a classifier and takes none"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(args, sentence, runs_dir, tiny_bert_dir):
    base = {"--train": "reviews", "--eval": "reviews", "--model": str(tiny_bert_dir), "--out": "bad"}
    flags = dict(zip(args[::2], args[1::2]))
    argv = [x for k, v in {**base, **flags}.items() for x in (k, v)]
    out = cli(*argv)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and sentence in last
    assert "Traceback" not in out.stderr
    assert not (runs_dir / "bad").exists()  # nothing half-made


def test_unknown_method_is_refused_by_the_parser(runs_dir):
    out = cli("--train", "reviews", "--eval", "reviews", "--method", "prefix-tuning")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_a_short_run_writes_the_run_contract(runs_dir, tiny_bert_dir):
    out = cli(
        "--train",
        "reviews",
        "--eval",
        "reviews:validation",
        "--model",
        str(tiny_bert_dir),
        "--method",
        "bitfit",
        "--epochs",
        "1",
        "--lr",
        "1e-3",
        "--batch-size",
        "32",
        "--max-train-examples",
        "64",
        "--seed",
        "7",
        "--out",
        "cli-run",
    )
    assert out.returncode == 0, out.stderr
    assert "trainable parameters:" in out.stdout
    run = runs_dir / "cli-run"
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "finetune" and config["method"] == "bitfit" and config["seed"] == 7
    assert config["n_train_examples"] == 64 and config["dataset"]["eval_split"] == "validation"
    assert config["dataset"]["train_sha256"] and config["dataset"]["eval_sha256"]
    assert config["command"].startswith("python -m core finetune --train reviews")
    assert json.loads((run / "status.json").read_text())["state"] == "succeeded"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["trainable_params"] < metrics["total_params"] and metrics["n_examples"] > 0
    assert (run / "predictions.csv").exists() and (run / "model" / "model.safetensors").exists()
    assert not any(p.name.startswith(".ckpt-") for p in runs_dir.iterdir())  # checkpoints are cleaned up


def test_run_that_does_not_beat_the_majority_class_is_flagged(runs_dir, tiny_bert_dir, tmp_path):
    """An evaluation file of one class: the majority class scores macro-F1 1.0, so no run can beat it."""
    one = tmp_path / "all-positive.csv"
    one.write_text("text,label\n" + "".join(f"a lovely kettle number {i},positive\n" for i in range(12)))
    out = cli(
        "--train",
        "reviews",
        "--eval",
        str(one),
        "--model",
        str(tiny_bert_dir),
        "--method",
        "head",
        "--epochs",
        "1",
        "--max-train-examples",
        "32",
        "--out",
        "flagged",
    )
    assert out.returncode == 0, out.stderr
    warning = [line for line in out.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "does not beat the majority class" in warning[0]
    metrics = json.loads((runs_dir / "flagged" / "metrics.json").read_text())
    assert metrics["below_majority"] is True and metrics["majority_macro_f1"] == 1.0 and metrics["majority_accuracy"] == 1.0


def test_lora_lm_warns_about_numeric_labels_and_learns_the_label_words_given(runs_dir, tiny_llama_dir, tmp_path):
    rows = [(f"{w} movie number {i}", str(i % 2)) for i, w in enumerate(["awful", "lovely"] * 12)]
    data = tmp_path / "numeric.csv"
    data.write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in rows) + "\n")
    base = [
        "--train",
        str(data),
        "--eval",
        str(data),
        "--model",
        str(tiny_llama_dir),
        "--method",
        "lora-lm",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--dev",
        "none",
    ]
    out = cli(*base, "--out", "numeric-words")
    assert out.returncode == 0, out.stderr
    assert "the label words 0, 1 are numbers or codes" in out.stderr and "--label-words 0=WORD 1=WORD" in out.stderr
    out = cli(*base, "--label-words", "0=awful", "1=lovely", "--out", "meaningful-words")
    assert out.returncode == 0, out.stderr
    assert "numbers or codes" not in out.stderr
    run = runs_dir / "meaningful-words"
    assert json.loads((run / "config.json").read_text())["label_words"] == {"0": "awful", "1": "lovely"}
    assert json.loads((run / "model" / "prompt_learning.json").read_text())["label_words"] == ["awful", "lovely"]
