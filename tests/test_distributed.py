"""The same CLI under torchrun with 2 CPU processes (gloo): one run folder, written by rank 0 only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_torchrun_two_cpu_processes_write_one_run(runs_dir, tiny_bert_dir):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and not shutil.which("torchrun"):
        pytest.skip("torchrun is not installed")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [
        str(torchrun if torchrun.exists() else "torchrun"),
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "core",
        "finetune",
        "--train",
        "reviews",
        "--eval",
        "reviews",
        "--model",
        str(tiny_bert_dir),
        "--method",
        "full",
        "--epochs",
        "2",
        "--lr",
        "1e-3",
        "--batch-size",
        "16",
        "--max-train-examples",
        "96",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--out",
        "ddp-run",
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    run = runs_dir / "ddp-run"
    assert [p.name for p in runs_dir.iterdir() if not p.name.startswith(".") and p.name != "index.sqlite"] == ["ddp-run"]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "succeeded"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    # 96 rows over 2 processes of 16 each: 3 optimizer steps per epoch, not 6
    assert metrics["steps"] == 6
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    steps = [h["step"] for h in history if "loss" in h]
    assert steps == sorted(set(steps)), "only rank 0 writes history lines"
    assert sum(1 for h in history if "eval_macro_f1" in h) == 2
    assert (run / "model" / "model.safetensors").exists()
    import pandas as pd

    predictions = pd.read_csv(run / "predictions.csv", dtype=str)
    assert list(predictions["id"]) == [f"test-{i}" for i in range(metrics["n_examples"])]  # gathered back in order


def test_torchrun_two_cpu_processes_evaluate_like_one(runs_dir, tiny_bert_dir, monkeypatch):
    """The final evaluation is sharded over 2 processes and merged in order: with training that changes nothing (lr 1e-9),
    predictions.csv equals a single-process run's (an odd number of rows, so the shards differ in size)."""
    import pandas as pd

    from core.cli import main

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and not shutil.which("torchrun"):
        pytest.skip("torchrun is not installed")
    eval_csv = runs_dir.parent / "eval.csv"
    pd.read_csv(ROOT / "sample_data" / "reviews" / "test.csv").head(37).to_csv(eval_csv, index=False)
    flags = [
        "finetune",
        "--train",
        "reviews",
        "--eval",
        str(eval_csv),
        "--model",
        str(tiny_bert_dir),
        "--method",
        "lora",
        "--epochs",
        "1",
        "--lr",
        "1e-9",
        "--batch-size",
        "8",
        "--max-train-examples",
        "32",
        "--dev",
        "none",
        "--seed",
        "5",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [
        str(torchrun if torchrun.exists() else "torchrun"),
        "--nproc_per_node",
        "2",
        "--master_port",
        "29521",
        "-m",
        "core",
        *flags,
        "--out",
        "sharded",
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    monkeypatch.chdir(runs_dir.parent)
    assert main([*flags, "--out", "runs/single"]) == 0
    sharded, single = (pd.read_csv(runs_dir / name / "predictions.csv", dtype={"id": str}) for name in ("sharded", "single"))
    assert len(single) == 37
    assert list(sharded["id"]) == list(single["id"]) and list(sharded["pred"]) == list(single["pred"])
    probs = [c for c in single.columns if c.startswith("prob_")]
    assert (sharded[probs] - single[probs]).abs().to_numpy().max() < 1e-5
    assert json.loads((runs_dir / "sharded" / "metrics.json").read_text())["world_size"] == 2


def test_torchrun_refuses_methods_that_do_not_shard(runs_dir, tiny_bert_dir, monkeypatch, capsys):
    """logreg/knn/setfit/prompt-tuning/lora-lm under torchrun: one sentence, exit 2, no run folder."""
    from core.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    code = main(
        [
            "finetune",
            "--train",
            "reviews",
            "--eval",
            "reviews",
            "--model",
            str(tiny_bert_dir),
            "--method",
            "logreg",
            "--out",
            "refused",
        ]
    )
    assert code == 2
    assert "does not run under torchrun" in capsys.readouterr().err
    assert not (runs_dir / "refused").exists()


def test_torchrun_two_cpu_processes_prompt_like_one(runs_dir, tiny_llama_dir, monkeypatch):
    """2 processes shard the evaluation rows (multi-token label words, contextual calibration); rank 0 writes one run
    whose predictions equal a single-process run's."""
    import pandas as pd

    from core.cli import main

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and not shutil.which("torchrun"):
        pytest.skip("torchrun is not installed")
    flags = [
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
        "contextual",
        "--max-eval-examples",
        "15",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--label-words",
        "negative=refund my order",
        "positive=profit rose",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [
        str(torchrun if torchrun.exists() else "torchrun"),
        "--nproc_per_node",
        "2",
        "--master_port",
        "29519",
        "-m",
        "core",
        *flags,
        "--out",
        "sharded",
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    assert [p.name for p in runs_dir.iterdir() if not p.name.startswith(".") and p.name != "index.sqlite"] == ["sharded"]
    monkeypatch.chdir(runs_dir.parent)
    assert main([*flags, "--out", "runs/single"]) == 0
    sharded, single = (pd.read_csv(runs_dir / name / "predictions.csv") for name in ("sharded", "single"))
    assert list(sharded["id"]) == list(single["id"]) and list(sharded["pred"]) == list(single["pred"])
    probs = [c for c in single.columns if c.startswith("prob_")]
    assert (sharded[probs] - single[probs]).abs().to_numpy().max() < 1e-4
    metrics = json.loads((runs_dir / "sharded" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["n_examples"] == 15
    assert json.loads((runs_dir / "sharded" / "status.json").read_text())["state"] == "succeeded"
