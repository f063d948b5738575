"""Does a search beat the default? A LoRA search and a prompt search on SST-2 (../shared/data/sst2) against the default
run on the same rows, each scored on the 1,000-row dev set (the evaluation split; trials never see it).

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.search --rows 256 --trials 20 --budget 6000 --jobs 3 --what lora
    OMP_NUM_THREADS=1 .venv/bin/python -m bench.search --rows 256 --trials 20 --budget 6000 --jobs 2 --eval-rows 200 --what prompt

(One thread per process: on a shared CPU, torch's default threads spin against each other and everything else.)

Runs go to a temporary runs folder (or --runs DIR); prints each search's trials table and the result against the default,
with the search's wall-clock seconds and its trials' CPU seconds (what they cost whatever else the machine runs).
Labels 0/1 become negative/positive, so the prompts have label words that mean something (both sides alike)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SST2 = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "sst2"


def run(argv: list[str], env: dict) -> float:
    """Run `python -m core ARGV`; returns its wall-clock seconds."""
    print("$ python -m core " + " ".join(argv), flush=True)
    started = time.time()
    code = subprocess.run([sys.executable, "-m", "core", *argv], env=env).returncode
    if code:
        sys.exit(f"exit status {code}")
    return time.time() - started


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=512, help="training rows (a seeded sample of the 5,000)")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--budget", type=float, default=1200)
    p.add_argument("--jobs", type=int, default=1, help="trials at once (the search's --jobs)")
    p.add_argument("--eval-rows", type=int, default=0, help="score a seeded sample of this many dev rows (0: all 1,000)")
    p.add_argument("--what", nargs="+", default=["lora", "prompt"], choices=["lora", "prompt"])
    p.add_argument("--runs", default=None, help="runs folder (default: a temporary one)")
    args = p.parse_args()
    if not SST2.is_dir():
        sys.exit(f"{SST2} is not there (see ../shared/data/README.md).")
    work = Path(args.runs or tempfile.mkdtemp(prefix="bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    words = {0: "negative", 1: "positive"}
    train = pd.read_csv(SST2 / "train.tsv", sep="\t").sample(n=args.rows, random_state=0)
    dev = pd.read_csv(SST2 / "dev.tsv", sep="\t")
    if args.eval_rows:
        dev = dev.sample(n=args.eval_rows, random_state=0)
    for frame, name in ((train, "train.csv"), (dev, "dev.csv")):
        frame.assign(text=frame["sentence"], label=frame["label"].map(words))[["text", "label"]].to_csv(work / name, index=False)
    env = {**os.environ, "PFT_RUNS_DIR": str(work / "runs")}
    data = ["--train", str(work / "train.csv"), "--eval", str(work / "dev.csv")]
    search = ["--trials", str(args.trials), "--budget", str(args.budget), "--jobs", str(args.jobs), *data]
    pairs = []
    if "lora" in args.what:
        run(["finetune", "--method", "lora", "--epochs", "1", "--seed", "0", *data, "--out", "lora-default"], env)
        wall = run(["search", "--method", "lora", "--space", '{"epochs": [1]}', *search, "--out", "lora-search"], env)
        pairs.append(("lora", "lora-default", "lora-search", wall))
    if "prompt" in args.what:
        run(["prompt", *data, "--out", "prompt-default"], env)
        wall = run(["search", "--method", "prompt", *search, "--out", "prompt-search"], env)
        pairs.append(("prompt", "prompt-default", "prompt-search", wall))
    runs = work / "runs"
    for what, default, searched, wall in pairs:
        d, s = (json.loads((runs / n / "metrics.json").read_text()) for n in (default, searched))
        trials = pd.read_csv(runs / searched / "trials.csv")
        print(f"\n{what}: trials (dev split: 20% of the {args.rows} training rows)")
        print(trials.drop(columns=["run"]).to_string(index=False))
        print(
            f"{what}: default macro-F1 {d['macro_f1']:.4f} (accuracy {d['accuracy']:.4f}); searched {s['macro_f1']:.4f} "
            f"(accuracy {s['accuracy']:.4f}); {s['search_trials']} trials, {s['search_seconds']:,.0f} s of trials "
            f"({trials['cpu_seconds'].sum():,.0f} CPU-s); the search took {wall:,.0f} s of wall-clock time "
            f"with --jobs {args.jobs}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
