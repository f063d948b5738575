"""`python -m core continual`: bad input ends with exit status 2 and one sentence; a run writes the matrix, a model per
step and a run per step that Compare loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT


def cli(*args: str, command: str = "continual") -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "core", command, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def odd_labels(tmp_path):
    """An evaluation file with a label ('sarcastic') that no training row of reviews has."""
    path = tmp_path / "odd.csv"
    pd.DataFrame({"text": ["so great, not", "fine", "awful"], "label": ["sarcastic", "neutral", "negative"]}).to_csv(
        path, index=False
    )
    return str(path)


@pytest.mark.parametrize(
    "args, sentence",
    [
        (["--train", "reviews", "--eval", "reviews"], "needs at least two tasks"),
        (["--train", "reviews", "finance_news", "--eval", "reviews"], "one --eval source per --train source"),
        (["--strategy", "gem"], "invalid choice: 'gem'"),
        (["--train", "reviews", "finance_news", "--eval", "reviews", "ODD"], "never occur in its training rows"),
        (["--replay-share", "0"], "--replay-share must be a number above 0 and at most 1"),
        (["--epochs", "0"], "--epochs must be a number above 0"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(args, sentence, runs_dir, tiny_bert_dir, odd_labels):
    out = cli(*[odd_labels if a == "ODD" else a for a in args], "--model", str(tiny_bert_dir), "--out", "bad")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and sentence in lines[0]
    assert not (runs_dir / "bad").exists()


def test_a_run_writes_the_matrix_models_and_step_runs_that_compare_loads(runs_dir, tiny_bert_dir):
    out = cli(
        "--train",
        "reviews",
        "finance_news:train",
        "--eval",
        "reviews:validation",
        "finance_news",
        "--strategy",
        "naive",
        "--model",
        str(tiny_bert_dir),
        "--epochs",
        "1",
        "--lr",
        "1e-3",
        "--max-train-examples",
        "32",
        "--out",
        "seq",
    )
    assert out.returncode == 0, out.stderr
    assert "shared label space" in out.stdout and "BWT" in out.stdout
    run = runs_dir / "seq"
    summary = json.loads((run / "continual.json").read_text())
    assert summary["tasks"] == ["reviews", "finance_news"] and summary["shared_head"]
    assert len(summary["matrix"]) == 2 and len(summary["initial"]) == 2
    assert summary["bwt"] == pytest.approx(summary["matrix"][1][0] - summary["matrix"][0][0])
    assert summary["fwt"] == pytest.approx(summary["matrix"][0][1] - summary["initial"][1])
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "continual" and config["method"] == "naive" and config["n_train_examples"] == 64
    assert json.loads((run / "status.json").read_text())["state"] == "succeeded"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["average_accuracy"] == summary["average_accuracy"]
    for step in (1, 2):
        assert (run / "steps" / str(step) / "model" / "model.safetensors").exists()
        step_run = runs_dir / f"seq.step{step}"
        assert json.loads((step_run / "config.json").read_text())["step"] == step
        assert json.loads((step_run / "metrics.json").read_text())["task_accuracy"]["reviews"] == summary["matrix"][step - 1][0]
    compared = cli("seq.step1", "seq.step2", command="compare")
    assert compared.returncode == 0, compared.stderr
    assert "McNemar seq.step1 vs seq.step2" in compared.stdout
    again = cli(
        "--train", "reviews", "finance_news", "--eval", "reviews", "finance_news", "--model", str(tiny_bert_dir), "--out", "seq"
    )
    assert again.returncode == 2 and "already exists" in again.stderr


def test_lora_per_task_saves_an_adapter_per_step(runs_dir, tiny_bert_dir):
    out = cli(
        "--strategy",
        "lora-per-task",
        "--model",
        str(tiny_bert_dir),
        "--epochs",
        "1",
        "--max-train-examples",
        "16",
        "--seed",
        "1",
        "--out",
        "lora-seq",
    )
    assert out.returncode == 0, out.stderr
    for step in (1, 2):
        assert (runs_dir / "lora-seq" / "steps" / str(step) / "model" / "adapter_config.json").exists()


def test_a_crash_fails_the_run_with_one_sentence_and_keeps_the_traceback(runs_dir, tiny_bert_dir, monkeypatch, capsys):
    """An unexpected error mid-run: exit status 1, status 'failed' with one sentence, the traceback kept in the folder."""
    from core.cli import main
    from core.runs import RunDir
    from core.training import continual

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(continual, "run_sequence", boom)
    assert main(["continual", "--model", str(tiny_bert_dir), "--max-train-examples", "8", "--out", "crashed"]) == 1
    run = RunDir(runs_dir / "crashed")
    assert run.status["state"] == "failed" and run.status["error"] == "Training crashed (RuntimeError: boom)."
    assert "RuntimeError: boom" in (run.path / "traceback.txt").read_text()
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: Training crashed (RuntimeError: boom)."
