"""Fine-tune methods side by side on SST-2: dev accuracy, training examples/second and peak memory per method and label budget.

Each spec is METHOD:N[:key=value,...] (N labelled training rows, balanced over the classes and seeded, or "all"); every
spec runs in its own subprocess so its peak memory is its own, under --max-train-seconds so a shared CPU finishes.
Examples (with .venv/bin/python):
    python -m bench.methods logreg:64 logreg:all setfit:16 setfit:64 lora:all:pooling=mean,lora_target_modules=query+value
    python -m bench.methods prompt-tuning:256:label_words=0=negative+1=positive --model smollm2

Data: PFT_DATA_DIR, else ../shared/data relative to the repository; without it the benchmark says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench.finetune import ROOT, data_dir, peak_memory_mb, read_tsv  # bench/finetune.py: same data reading and memory figure


def balanced(frame, n: int, seed: int):
    """n rows with the classes as equal as possible (seeded), or the whole frame for n = 0."""
    if not n or n >= len(frame):
        return frame
    labels = sorted(frame["label"].unique())
    per = n // len(labels)
    parts = [frame[frame["label"] == lab].sample(per + (i < n % len(labels)), random_state=seed) for i, lab in enumerate(labels)]
    import pandas as pd

    return pd.concat(parts).sort_index().reset_index(drop=True)


def run_one(spec: str, args) -> dict:
    """Train one spec in this process and return its figures."""
    import torch

    from core.training import finetune

    torch.set_num_threads(args.threads)
    method, n, *extra = spec.split(":")
    overrides = {
        k: v.replace("+", ",") for k, v in (kv.split("=", 1) for kv in (extra[0].split(",") if extra else []))
    }  # a+b: a list value
    train = balanced(read_tsv(data_dir() / "sst2" / "train.tsv"), 0 if n == "all" else int(n), args.seed)
    dev = read_tsv(data_dir() / "sst2" / "dev.tsv", args.eval_limit)
    fields = {f: type(getattr(finetune.FinetuneConfig(), f)) for f in finetune.FinetuneConfig.__dataclass_fields__}
    typed = {
        k: (float(v) if k == "lr" else v.split(",") if fields[k] in (list, dict) else fields[k](v)) for k, v in overrides.items()
    }
    config = finetune.FinetuneConfig(
        model=args.model,
        method=method,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        dev="none",
        early_stopping_patience=0,
        max_train_seconds=args.max_train_seconds,
        **typed,
    )
    started = time.time()
    result = finetune.train(config, train, None, dev, ["0", "1"])
    m = result.metrics
    return {
        "spec": spec,
        "n_train": len(train),
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "train_seconds": m["train_seconds"],
        "train_ex_per_s": m["train_examples_per_second"],
        "stopped_by": m["stopped_by"],
        "trainable": m["trainable_params"],
        "wall_seconds": round(time.time() - started, 1),
        "peak_mb": round(peak_memory_mb("cpu"), 0),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("specs", nargs="*", default=["logreg:64", "logreg:all", "setfit:16", "setfit:64"])
    p.add_argument("--model", default="minilm")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-train-seconds", type=float, default=600, help="training budget per spec (the run reports stopped_by)")
    p.add_argument("--eval-limit", type=int, default=0, help="dev rows to score (0: all 1,000)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if not (data_dir() / "sst2" / "train.tsv").exists():
        print(f"no SST-2 data under {data_dir()}; nothing to measure")
        return 0
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return 0
    print(
        f"SST-2 dev ({args.eval_limit or 'all'} rows), {args.model}, {args.epochs:g} epochs, "
        f"budget {args.max_train_seconds:g} s per run"
    )
    print(
        f"{'spec':28} {'n':>5} {'acc':>6} {'F1':>6} {'train s':>8} "
        f"{'ex/s':>7} {'stopped by':>17} {'trainable':>10} {'peak MB':>8}"
    )
    for spec in args.specs:
        argv = [sys.executable, "-m", "bench.methods", "--one", spec, *[a for a in sys.argv[1:] if a not in args.specs]]
        out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        if out.returncode:
            print(f"{spec:28} failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{spec:28} {r['n_train']:5} {r['accuracy']:6.3f} {r['macro_f1']:6.3f} {r['train_seconds']:8.1f} "
            f"{r['train_ex_per_s'] or 0:7.1f} {r['stopped_by']:>17} {r['trainable']:10,} {r['peak_mb']:8.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
