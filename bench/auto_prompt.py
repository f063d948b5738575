"""Accuracy, not speed: the fixed prompting defaults (category template, contextual calibration) against
the default (--calibrate auto) and --calibrate auto --template auto, with the bundled SmolLM2 on the shared SST-2
and AG News dev sets, zero- and 4-shot.

Auto chooses on a stratified slice of the TRAINING file only (never the dev rows scored here). Dev rows: a fixed
random subset (eval_subset, seed 0) of --limit rows, the same for every arm. Prints one table row per
(data, shots, arm): accuracy, macro-F1, the majority-class rate of the scored rows, and what auto chose.

    .venv/bin/python -m bench.auto_prompt [--limit 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

DATA = Path(os.environ.get("PFT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SETS = {  # name -> (train file, dev file, label words)
    "sst2 (labels 0/1)": ("sst2/train.tsv", "sst2/dev.tsv", {}),
    "sst2 (words negative/positive)": ("sst2/train.tsv", "sst2/dev.tsv", {"0": "negative", "1": "positive"}),
    "ag_news": ("ag_news/train.csv", "ag_news/dev.csv", {}),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=300, help="dev rows scored per run (fixed seeded subset)")
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 4])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--arms", nargs="+", default=["before", "default", "auto"], help="which arms to run: before, default, auto"
    )
    args = parser.parse_args()
    import torch

    from core import data, prompting
    from core.comparison import evaluate

    torch.set_num_threads(args.threads)
    if not DATA.exists():
        print(f"no shared data at {DATA}; nothing to measure")
        return 0
    print("| data | shots | arm | accuracy | macro-F1 | majority rate | choice (slice macro-F1) | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for shots in args.shots:
        for name in args.sets:
            train_file, dev_file, words = SETS[name]
            train_ds, _ = data.load_split(str(DATA / train_file), "train")
            dev_ds, _ = data.load_split(str(DATA / dev_file), "test")
            labels = data.combined_labels(train_ds, dev_ds)
            train, dev = train_ds.splits["train"], prompting.eval_subset(dev_ds.splits["test"], args.limit)
            majority = evaluate.majority_baseline(dev["label"].tolist(), labels)["accuracy"]
            arms = {
                "before": ("before (category, contextual)", dict(calibration="contextual", template="custom")),
                "default": ("default (category, auto calibration)", dict(calibration="auto", template="custom")),
                "auto": ("after (auto, auto)", dict(calibration="auto", template="auto")),
            }
            for arm, settings in (arms[a] for a in args.arms):
                config = prompting.PromptConfig(shots=shots, label_words=words, batch_size=16, **settings)
                started = time.perf_counter()
                result = prompting.run_prompting(config, train, dev, labels)
                m = result.metrics
                choice = (
                    f"{result.auto['template']}/{result.auto['calibration']} ({result.auto['slice_macro_f1']:.3f})"
                    if result.auto
                    else ""
                )
                print(
                    f"| {name} | {shots} | {arm} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {majority:.3f} | {choice} | "
                    f"{time.perf_counter() - started:.0f} |",
                    flush=True,
                )
                if result.auto:
                    print(f"<!-- {prompting.describe_choice(result.auto)} -->", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
