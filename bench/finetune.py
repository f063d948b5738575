"""Fine-tuning benchmarks.

Speed (default): training examples/second of full fine-tuning of the bundled encoder with this project's recipe
(batched tokenization, dynamic padding, length-grouped batches, HF Trainer) against the naive recipe measured in
the same run (every example padded to 128 tokens, tokenized one by one in __getitem__, a plain loop). Both run the
same number of optimizer steps, each in its own subprocess so that peak memory is its own.

Accuracy (--accuracy): each method (full, head, bitfit, lora) trained for 2 epochs on the 5,000-row SST-2 train
file and scored on dev.tsv: accuracy, macro-F1, training time, trainable parameters. Heavy on a CPU: run it on a GPU
(bench/gpu_check.sh) or with --limit.

    .venv/bin/python -m bench.finetune [--accuracy] [--limit N] [--steps N]

Data: PFT_DATA_DIR, else ../shared/data relative to the repository; without it the benchmark says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def data_dir() -> Path:
    """Where sst2/ lives: PFT_DATA_DIR, else ../shared/data beside the repository."""
    return Path(os.environ.get("PFT_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


def read_tsv(path: Path, limit: int = 0):
    """SST-2 rows as a DataFrame (id, text, label as strings), the first `limit` rows when limit > 0."""
    import pandas as pd

    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    df = df.rename(columns={"sentence": "text"})[["text", "label"]]
    if limit:
        df = df.head(limit)
    return df.assign(id=[f"{path.stem}-{i}" for i in range(len(df))]).reset_index(drop=True)


def peak_memory_mb(device: str) -> float:
    """Peak memory of this process: CUDA allocations on a GPU, else resident set size."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def recipe_ours(args, texts, labels, label_names, device: str) -> dict:
    """The project's recipe for a fixed number of steps (tokenization included in the time)."""
    import pandas as pd
    from transformers import DataCollatorWithPadding, PrinterCallback, TrainerCallback, TrainingArguments

    from core import models
    from core.training import base, classifier, finetune

    config = finetune.FinetuneConfig(
        model=args.model,
        method="full",
        lr=5e-5,
        batch_size=args.batch_size,
        max_length=128,
        seed=0,
        device=device,
        precision=args.precision,
    )
    tokenizer = models.load_tokenizer(args.model)
    model = finetune.build_model(config, label_names, "cpu")
    frame = pd.DataFrame({"text": texts, "label": labels})
    started = time.perf_counter()
    train_set = classifier.encode(tokenizer, frame, label_names, config.max_length)
    targs = TrainingArguments(
        output_dir=str(ROOT / "artifacts" / "bench-ckpt"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=5e-5,
        weight_decay=0.01,
        optim="adamw_torch",
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_strategy="no",
        seed=0,
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        **base.precision_flags(config, device),
        **base.version_flags(config),
    )
    trainer = classifier.ordered_eval_trainer_class()(
        model=model,
        args=targs,
        train_dataset=train_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    trainer.remove_callback(PrinterCallback)
    step_times: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, targs, state, control, **kwargs):
            if device == "cuda":
                import torch

                torch.cuda.synchronize()
            step_times.append(time.perf_counter())

    trainer.add_callback(StepClock())
    trainer.train()
    return steady_state("ours", started, step_times, args)


def recipe_naive(args, texts, labels, label_names, device: str) -> dict:
    """The naive recipe: pad to 128, tokenize one example per __getitem__, plain PyTorch loop, fp32."""
    import torch
    from torch.utils.data import DataLoader

    from core import models

    tokenizer = models.load_tokenizer(args.model)
    torch.manual_seed(0)
    model = models.load_for_classification(args.model, label_names, device)
    index = {lab: i for i, lab in enumerate(label_names)}

    class PaddedTexts(torch.utils.data.Dataset):
        def __len__(self):
            return len(texts)

        def __getitem__(self, i):
            enc = tokenizer(texts[i], padding="max_length", truncation=True, max_length=128, return_tensors="pt")
            item = {k: v.squeeze(0) for k, v in enc.items()}  # (128,) each
            item["labels"] = torch.tensor(index[labels[i]])
            return item

    loader = DataLoader(PaddedTexts(), batch_size=args.batch_size, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    model.train()
    started = time.perf_counter()
    step_times: list[float] = []
    while len(step_times) < args.steps:
        for batch in loader:
            loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if device == "cuda":
                torch.cuda.synchronize()
            step_times.append(time.perf_counter())
            if len(step_times) >= args.steps:
                break
    return steady_state("naive", started, step_times, args)


def steady_state(recipe: str, started: float, step_times: list[float], args) -> dict:
    """Examples/second after the first --warmup-steps steps (one-time set-up excluded), and over the whole run."""
    warm = min(args.warmup_steps, len(step_times) - 1)
    timed = len(step_times) - warm
    seconds = step_times[-1] - (step_times[warm - 1] if warm else started)
    return {
        "recipe": recipe,
        "seconds": seconds,
        "examples": timed * args.batch_size,
        "total_seconds": step_times[-1] - started,
        "steps": len(step_times),
    }


def run_recipe(args) -> None:
    """Child process: run one recipe and print one JSON line."""
    import torch

    from core import models

    torch.set_num_threads(args.threads)
    device = models.choose_device(args.device)
    df = read_tsv(data_dir() / "sst2" / "train.tsv", args.limit)
    texts, labels = list(df["text"]), list(df["label"])
    label_names = sorted(set(labels))
    fn = recipe_ours if args.recipe == "ours" else recipe_naive
    result = fn(args, texts, labels, label_names, device)
    result.update(device=device, examples_per_second=result["examples"] / result["seconds"], peak_mb=peak_memory_mb(device))
    print("RESULT " + json.dumps(result), flush=True)


def speed(args) -> list[str]:
    """Run both recipes in subprocesses and report examples/second, the ratio and peak memory."""
    results = {}
    for recipe in ("naive", "ours"):
        cmd = [
            sys.executable,
            "-m",
            "bench.finetune",
            "--recipe",
            recipe,
            "--limit",
            str(args.limit),
            "--steps",
            str(args.steps),
            "--warmup-steps",
            str(args.warmup_steps),
            "--precision",
            args.precision,
            "--batch-size",
            str(args.batch_size),
            "--threads",
            str(args.threads),
            "--model",
            args.model,
            "--device",
            args.device,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"the {recipe} recipe failed:\n{out.stderr[-3000:]}")
        results[recipe] = json.loads(line[len("RESULT ") :])
    n, o = results["naive"], results["ours"]
    lines = [
        f"speed: full fine-tuning of {args.model} on sst2/train.tsv ({args.limit or 'all'} rows, "
        f"{args.steps} steps of {args.batch_size},"
        f" the first {args.warmup_steps} not timed; device {o['device']})",
        f"  naive (pad to 128, tokenize in __getitem__, plain loop): {n['examples_per_second']:.1f} examples/s, "
        f"peak {n['peak_mb']:.0f} MB, {n['total_seconds']:.1f} s in all",
        f"  ours (dynamic padding, length-grouped, Trainer):        {o['examples_per_second']:.1f} examples/s, "
        f"peak {o['peak_mb']:.0f} MB, {o['total_seconds']:.1f} s in all (tokenization included)",
        f"  ratio ours/naive: {o['examples_per_second'] / n['examples_per_second']:.2f}x",
    ]
    return lines


def accuracy(args) -> list[str]:
    """Train each method for --epochs on the SST-2 train file and score it on dev.tsv."""
    import torch

    from core.settings import split_list
    from core.training import finetune

    torch.set_num_threads(args.threads)
    train = read_tsv(data_dir() / "sst2" / "train.tsv", args.limit)
    dev = read_tsv(data_dir() / "sst2" / "dev.tsv", args.eval_limit)
    label_names = sorted(set(train["label"]) | set(dev["label"]))
    lrs = dict(item.split("=") for item in args.lrs.split(",") if item) if args.lrs else {}
    lines = [f"accuracy: {args.model}, {args.epochs:g} epochs on {len(train)} sst2 train rows, scored on {len(dev)} dev rows"]
    lines.append(f"  {'method':8} {'lr':>8} {'accuracy':>9} {'macro-F1':>9} {'train s':>8} {'trainable':>12} {'total':>12}")
    print("\n".join(lines), flush=True)
    for spec in split_list(args.methods):
        method, _, lr = spec.partition("@")
        config = finetune.FinetuneConfig(
            model=args.model,
            method=method,
            epochs=args.epochs,
            lr=float(lr or lrs[method]) if (lr or method in lrs) else None,
            batch_size=args.batch_size,
            max_length=128,
            dev="none",
            seed=args.seed,
            device=args.device,
            early_stopping_patience=0,
        )
        result = finetune.train(config, train, None, dev, label_names)
        m = result.metrics
        lines.append(
            f"  {method:8} {config.learning_rate:8.0e} {m['accuracy']:9.4f} {m['macro_f1']:9.4f} {m['train_seconds']:8.1f}"
            f" {m['trainable_params']:12,} {m['total_params']:12,}"
        )
        print(lines[-1], flush=True)
    return []  # printed row by row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accuracy", action="store_true", help="train every method and report dev accuracy (heavy on CPU)")
    p.add_argument("--limit", type=int, default=512, help="training rows to read (0: all)")
    p.add_argument("--eval-limit", type=int, default=0, help="dev rows to score (0: all)")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps per recipe (speed mode)")
    p.add_argument("--warmup-steps", type=int, default=3, help="first steps left out of the speed figure (one-time set-up)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument(
        "--methods",
        nargs="+",
        default=["full", "head", "bitfit", "lora"],
        help="space-separated (commas still read); method@lr overrides the rate",
    )
    p.add_argument("--lrs", default="", help="per-method learning rates, e.g. full=1e-4,head=1e-3")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--model", default=os.environ.get("PFT_BENCH_MODEL", "minilm"))
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", help="our recipe's precision: auto (bf16 on CUDA), fp32, fp16, bf16")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--recipe", choices=["ours", "naive"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if not (data_dir() / "sst2" / "train.tsv").exists():
        print(f"no benchmark data at {data_dir() / 'sst2'} (set PFT_DATA_DIR); nothing measured.")
        return 0
    if args.recipe:
        run_recipe(args)
        return 0
    lines = accuracy(args) if args.accuracy else speed(args)
    if lines:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
