"""Predict benchmark: `python -m core predict`'s streaming (chunked read, length-sorted batches with dynamic padding,
incremental atomic write) against a plain `transformers.pipeline("text-classification")` loop over the same model's
folder (the whole file read with pandas, `pipe(texts, batch_size=32)`, one CSV written at the end): rows per second
(model load, reading, scoring and writing included), peak resident memory and label agreement. Each case runs in its
own process, so its peak memory is its own; the synthetic files (short review-like sentences) live in a temp folder.

    .venv/bin/python -m bench.predict [--rows 10000] [--big-rows 1000000] [--models minilm tiny]

The --rows file is labelled by a MiniLM classifier (a head trained on the reviews sample, CLS pooling, so that
pipeline() can load its folder); MiniLM on 1,000,000 rows takes hours on 2 CPU cores, so the --big-rows file is labelled
by the cheapest run there is: a 2-layer, 64-wide BERT with MiniLM's tokenizer (random body, trained head), which
measures the streaming machinery rather than a model.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = (
    "the film was great loved it terrible service never again kettle boils water shares fell after profit warning "
    "rose dividend raised where is my parcel cannot log in account please refund order good bad okay fine slow fast "
    "screen battery price delivery staff friendly rude broken works perfectly disappointed recommend"
).split()


def make_file(path: Path, rows: int, seed: int = 0) -> None:
    """rows synthetic texts of 4 to 30 words with a date over one year, written in blocks (flat memory)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    words = np.array(WORDS)
    block = 100_000
    for start in range(0, rows, block):
        n = min(block, rows - start)
        lengths = rng.integers(4, 31, n)
        picks = rng.integers(0, len(words), lengths.sum())
        texts = [" ".join(chunk) for chunk in np.split(words[picks], np.cumsum(lengths)[:-1])]
        dates = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, n), unit="h")
        pd.DataFrame({"id": np.arange(start, start + n), "date": dates.strftime("%Y-%m-%d %H:%M"), "text": texts}).to_csv(
            path, mode="a" if start else "w", header=not start, index=False
        )


def tiny_model(folder: Path) -> Path:
    """A 2-layer, 64-wide random BERT body with MiniLM's tokenizer, saved as safetensors."""
    import torch
    from transformers import BertConfig, BertModel

    from core import models

    torch.manual_seed(0)
    tokenizer = models.load_tokenizer("minilm")
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def train_run(model: str, name: str, env: dict) -> None:
    cmd = [
        sys.executable,
        "-m",
        "core",
        "--quiet",
        "finetune",
        "--train",
        "reviews",
        "--eval",
        "reviews",
        "--model",
        model,
        "--method",
        "head",
        "--pooling",
        "cls",
        "--epochs",
        "1",
        "--dev",
        "none",
        "--out",
        name,
    ]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"training the benchmark run failed:\n{done.stderr[-2000:]}")


def worker_ours(run: str, src: str, out: str) -> dict:
    from core import predict

    started = time.perf_counter()
    summary = predict.predict_file(predict.load_predictor(run, "cpu"), src, out)
    return {"rows": summary.rows, "seconds": time.perf_counter() - started}


def worker_pipeline(run: str, src: str, out: str) -> dict:
    import pandas as pd
    import torch
    from transformers import pipeline

    from core.runs import open_run

    torch.set_grad_enabled(False)
    started = time.perf_counter()
    model_dir = str(open_run(run).path / "model")
    pipe = pipeline("text-classification", model=model_dir, tokenizer=model_dir, top_k=None, device=-1)
    frame = pd.read_csv(src, dtype=str, keep_default_na=False)
    rows = [
        {d["label"]: d["score"] for d in result}
        for result in pipe(frame["text"].tolist(), batch_size=32, truncation=True, max_length=128)
    ]
    probs = pd.DataFrame(rows)
    frame["label"] = probs.idxmax(axis=1)
    pd.concat([frame, probs.add_prefix("prob_")], axis=1).to_csv(out, index=False)
    return {"rows": len(frame), "seconds": time.perf_counter() - started}


def run_case(case: str, run: str, src: Path, out: Path, env: dict) -> dict:
    cmd = [sys.executable, "-m", "bench.predict", "--worker", case, run, str(src), str(out)]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{case} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def agreement(a: Path, b: Path) -> float:
    import pandas as pd

    x = pd.read_csv(a, usecols=["id", "label"], dtype=str).set_index("id")["label"]
    y = pd.read_csv(b, usecols=["id", "label"], dtype=str).set_index("id")["label"]
    return float((x == y.reindex(x.index)).mean())


def compare(name: str, run: str, rows: int, tmp: Path, env: dict) -> None:
    src = tmp / f"rows-{rows}.csv"
    make_file(src, rows)
    ours = run_case("ours", run, src, tmp / f"ours-{rows}.csv", env)
    base = run_case("pipeline", run, src, tmp / f"pipeline-{rows}.csv", env)
    for r in (ours, base):
        r["rows_per_s"] = r["rows"] / r["seconds"]
    agree = agreement(tmp / f"ours-{rows}.csv", tmp / f"pipeline-{rows}.csv")
    print(
        f"{rows:>9,} rows, {name}: predict {ours['rows_per_s']:,.0f} rows/s, peak {ours['peak_mb']:,.0f} MB | "
        f"pipeline() loop {base['rows_per_s']:,.0f} rows/s, peak {base['peak_mb']:,.0f} MB | "
        f"speed ratio {ours['rows_per_s'] / base['rows_per_s']:.2f}x, memory ratio {base['peak_mb'] / ours['peak_mb']:.2f}x, "
        f"label agreement {agree:.2%}",
        flush=True,
    )
    src.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows labelled by the MiniLM run")
    parser.add_argument("--big-rows", type=int, default=1_000_000, help="rows labelled by the tiny run")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=("minilm", "tiny"),
        default=["minilm", "tiny"],
        help="minilm: the --rows file; tiny: the --rows and --big-rows files",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of both cases (on a busy 2-core machine two OpenMP threads spin against the other "
        "processes: 2,000 rows took 58 s with 2 threads and 3.3 s with 1)",
    )
    parser.add_argument("--worker", nargs=4, metavar=("CASE", "RUN", "SRC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        case, run, src, out = args.worker
        result = (worker_ours if case == "ours" else worker_pipeline)(run, src, out)
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp_name:
        tmp = Path(tmp_name)
        env = {
            **os.environ,
            "PFT_RUNS_DIR": str(tmp / "runs"),
            "PFT_MODEL_ROOTS": str(tmp),
            "CUDA_VISIBLE_DEVICES": "",
            "OMP_NUM_THREADS": str(args.threads),
        }
        if "minilm" in args.models:
            train_run("minilm", "bench-minilm", env)
            compare("MiniLM head (CLS pooling)", "bench-minilm", args.rows, tmp, env)
        if "tiny" in args.models:
            tiny_model(tmp / "tiny-bert")
            train_run(str(tmp / "tiny-bert"), "bench-tiny", env)
            compare("tiny BERT, 2 layers x 64", "bench-tiny", args.rows, tmp, env)
            compare("tiny BERT, 2 layers x 64", "bench-tiny", args.big_rows, tmp, env)


if __name__ == "__main__":
    main()
