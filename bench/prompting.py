"""Benchmark: 8-shot balanced prompting of SST-2 sentences with the bundled SmolLM2, fast scorer vs naive baseline.

fast  : the shared prefix (instruction + 8 demos) run once, its KV cache reused; queries batched with dynamic padding;
        both single-token labels read from one forward pass.
naive : the whole prompt + label word re-encoded for every example and every label (batch 1, full logits).

The baseline is slow, so it runs on the first --baseline-limit examples, in rounds alternating with the fast
scorer (both meet the same load on a shared machine); rates (examples/second) are compared and
predictions must agree on >= 99.5% of the examples both scored. Prints the ratio and peak memory (maxrss).

    .venv/bin/python bench/prompting.py [--limit 1000] [--baseline-limit 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=1000, help="dev sentences for the fast scorer")
    parser.add_argument("--baseline-limit", type=int, default=200, help="dev sentences for the naive baseline (slow)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    if not (DATA / "dev.tsv").exists() or not (DATA / "train.tsv").exists():
        print(f"SST-2 not found at {DATA}; nothing to measure.")
        return 0
    import numpy as np
    import pandas as pd
    import torch

    from core import prompting

    torch.set_num_threads(args.threads)
    read = lambda name: pd.read_csv(DATA / name, sep="\t", dtype=str, keep_default_na=False, quoting=3)  # noqa: E731
    train, dev = read("train.tsv"), read("dev.tsv").iloc[: args.limit]
    names = {"0": "negative", "1": "positive"}
    train = pd.DataFrame({"id": [f"train-{i}" for i in range(len(train))], "text": train["sentence"], "label": train["label"].map(names)})
    dev = pd.DataFrame({"id": [f"dev-{i}" for i in range(len(dev))], "text": dev["sentence"], "label": dev["label"].map(names)})
    labels = ["negative", "positive"]
    config = prompting.PromptConfig(shots=8, selection="balanced", seed=0, batch_size=args.batch_size,
                                    instruction="Is the sentiment of each review {labels}?",
                                    example_template="Review: {text}\nSentiment: {label}\n\n", query_template="Review: {text}\nSentiment:")
    tokenizer, model = prompting.load_model(config)  # what the product uses (sdpa attention)
    positions = prompting.select_demonstrations(train, config.shots, config.selection, config.seed, labels)
    prefix_text = prompting.render_prefix(config, labels, train.iloc[positions], labels)
    prefix = prompting.encode(tokenizer, prefix_text, special=True)
    queries = [prompting.encode(tokenizer, prompting.fill(config.query_template, t)) for t in dev["text"]]
    label_ids = [prompting.encode(tokenizer, " " + w) for w in labels]
    print(f"model {config.model}, {torch.get_num_threads()} threads; prefix {len(prefix)} tokens; "
          f"mean query {np.mean([len(q) for q in queries]):.1f} tokens; label tokens {label_ids}")

    # The two scorers run in alternating rounds, so that both meet the same load on a shared machine.
    nb = min(args.baseline_limit, len(queries))
    rounds = max(1, min(10, nb))
    fast_parts, naive_parts, fast_s, naive_s = [], [], 0.0, 0.0
    for r in range(rounds):
        fq = queries[r * len(queries) // rounds : (r + 1) * len(queries) // rounds]
        nq = queries[r * nb // rounds : (r + 1) * nb // rounds]
        start = time.perf_counter()
        fast_parts.append(prompting.score_rows(model, prefix, prompting.label_rows(fq, label_ids), len(fq), len(labels),
                                               config.batch_size, tokenizer.pad_token_id))
        fast_s += time.perf_counter() - start
        start = time.perf_counter()
        naive_parts.append(prompting.score_rows_naive(model, prefix, nq, label_ids))
        naive_s += time.perf_counter() - start
    fast, naive = np.concatenate(fast_parts), np.concatenate(naive_parts)
    fast_rate, naive_rate = len(queries) / fast_s, nb / naive_s

    agree = float(np.mean(fast[:nb].argmax(1) == naive.argmax(1)))
    max_diff = float(np.abs(fast[:nb] - naive).max())
    accuracy = float(np.mean(np.array(labels)[fast.argmax(1)] == dev["label"].to_numpy()))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"fast : {len(queries)} examples in {fast_s:.1f} s = {fast_rate:.2f} examples/s (accuracy {accuracy:.3f})")
    print(f"naive: {nb} examples in {naive_s:.1f} s = {naive_rate:.2f} examples/s")
    print(f"agreement on the {nb} shared examples: {agree:.2%} (max |log-prob diff| {max_diff:.2e})")
    print(f"speed-up: {fast_rate / naive_rate:.1f}x (target >= 10x)")
    print(f"peak memory (maxrss): {peak_mb:.0f} MB (target < 2048 MB)")
    ok = agree >= 0.995
    if not ok:
        print("FAIL: fast and naive predictions agree on fewer than 99.5% of examples")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
