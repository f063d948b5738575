"""Small finished run directories written through core.runs + core.comparison.evaluate, for Compare tests (no model needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core import data
from core.comparison import evaluate
from core.runs import RunDir, finish_with_metrics

LABELS = ["negative", "neutral", "positive"]
REVIEWS_TEST = data.load_sample("reviews").fingerprint("test")  # runs default to the split the app opens on


def make_run(
    root: Path,
    name: str,
    accuracy: float,
    kind: str = "prompt",
    n: int = 60,
    seed: int = 0,
    eval_sha256: str = REVIEWS_TEST,
    n_train_examples: int = 8,
    labels: list[str] = LABELS,
    config_extra: dict | None = None,
    metrics_extra: dict | None = None,
) -> Path:
    """A succeeded run whose predictions are right on about `accuracy` of n examples, with probabilities to match
    (config_extra / metrics_extra: more fields for config.json / metrics.json)."""
    rng = np.random.default_rng(seed)
    truth = [labels[i % len(labels)] for i in range(n)]
    probs = rng.dirichlet(np.ones(len(labels)), size=n)  # (N, C)
    for i, t in enumerate(truth):
        j = labels.index(t) if rng.random() < accuracy else (labels.index(t) + 1) % len(labels)
        probs[i, j] += 1.5
    probs /= probs.sum(axis=1, keepdims=True)
    ids = [f"ex{i:03d}" for i in range(n)]
    texts = [f"example text number {i} about {t}" for i, t in enumerate(truth)]
    preds = evaluate.predictions_frame(ids, texts, truth, probs, labels)
    config = {
        "kind": kind,
        "model": "minilm" if kind == "finetune" else "smollm2",
        "method": "lora" if kind == "finetune" else f"{n_train_examples}-shot",
        "dataset": {
            "name": "reviews",
            "train": "reviews:train",
            "eval": "reviews:test",
            "eval_split": "test",
            "train_sha256": "sha-train",
            "eval_sha256": eval_sha256,
        },
        "n_train_examples": n_train_examples,
        "seed": seed,
        "command": f"python -m core {kind} --train reviews --eval reviews --out {name}",
        **(config_extra or {}),
    }
    run = RunDir(root / name).create(config)
    metrics = evaluate.classification_metrics(truth, preds["pred"].tolist(), labels)
    metrics.update(
        seconds=12.5, examples_per_second=n / 12.5, trainable_params=1000 if kind == "finetune" else 0, total_params=22_000_000
    )
    metrics.update(metrics_extra or {})
    finish_with_metrics(run, metrics, preds)
    return run.path
