"""Benchmark: 8-shot balanced prompting of SST-2 sentences with the bundled SmolLM2, fast scorer vs naive baseline;
and 77-label zero-shot Banking77, one label trie per query vs one teacher-forced row per (query, label).

fast  : the shared prefix (instruction + 8 demos) run once, its KV cache reused; queries batched with dynamic padding;
        both single-token labels read from one forward pass.
naive : the whole prompt + label word re-encoded for every example and every label (batch 1, full logits).

The baseline is slow, so it runs on the first --baseline-limit examples, in rounds alternating with the fast
scorer (both meet the same load on a shared machine); rates (examples/second) are compared and
predictions must agree on >= 99.5% of the examples both scored. Prints the ratio and peak memory (maxrss).

banking77: a seeded subset of banking77/train.csv, zero-shot with the default templates (the instruction lists all 77
label names, so the shared prefix is long); every label word is its category name (several tokens). "trie" is the
product's scorer (the query run once, then every label word's tokens as one token trie in the same row); "per-label"
is the scorer's former layout, one row per (query, label) with the query re-run 77 times. Same alternating rounds.

    .venv/bin/python -m bench.prompting [--case sst2|banking77|all] [--limit 1000] [--baseline-limit 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # --data overrides (e.g. from a git worktree)


def alternate(queries: list, nb: int, rounds: int, fast, baseline):
    """Score all queries with fast and the first nb with baseline, in alternating rounds so that both meet the same load
    on a shared machine; returns (fast scores, baseline scores, fast seconds, baseline seconds)."""
    fast_parts, base_parts, fast_s, base_s = [], [], 0.0, 0.0
    for r in range(rounds):
        start = time.perf_counter()
        fast_parts.append(fast(queries[r * len(queries) // rounds : (r + 1) * len(queries) // rounds]))
        fast_s += time.perf_counter() - start
        start = time.perf_counter()
        base_parts.append(baseline(queries[r * nb // rounds : (r + 1) * nb // rounds]))
        base_s += time.perf_counter() - start
    import numpy as np

    return np.concatenate(fast_parts), np.concatenate(base_parts), fast_s, base_s


def per_label_rows(queries, label_ids):
    """The scorer's former layout (the baseline): one teacher-forced row per (query, label)."""
    from core import prompting

    return [
        prompting.ScoredRow(q + ids[:-1], [(len(q) - 1 + j, t, n, c) for j, t in enumerate(ids)])
        for n, q in enumerate(queries)
        for c, ids in enumerate(label_ids)
    ]


def banking77(args) -> bool:
    """77-label zero-shot: label trie vs per-label rows, alternating rounds; True when predictions agree."""
    import numpy as np
    import pandas as pd
    import torch

    from core import prompting

    path = args.data / "banking77" / "train.csv"
    if not path.exists():
        print(f"Banking77 not found at {path}; nothing to measure.")
        return True
    data = pd.read_csv(path, dtype=str, keep_default_na=False)
    labels = sorted(data["category"].unique())
    subset = data.sample(n=min(args.b77_limit, len(data)), random_state=0)
    config = prompting.PromptConfig(batch_size=args.batch_size, calibration="none")
    tokenizer, model = prompting.load_model(config)
    prefix = prompting.encode(
        tokenizer,
        prompting.render_prefix(config, labels, subset.iloc[:0].rename(columns={"category": "label"}), labels),
        special=True,
    )
    queries = [prompting.encode(tokenizer, prompting.fill(config.query_template, t)) for t in subset["text"]]
    label_ids = [prompting.encode(tokenizer, prompting.continuation(config.query_template, w)) for w in labels]
    trie_nodes = len({tuple(ids[: j + 1]) for ids in label_ids for j in range(len(ids) - 1)})
    print(
        f"banking77: {len(labels)} labels, {torch.get_num_threads()} threads; prefix {len(prefix)} tokens; "
        f"mean query {np.mean([len(q) for q in queries]):.1f} tokens; label tokens {sum(map(len, label_ids))} "
        f"({trie_nodes} trie nodes)"
    )
    nb = min(args.b77_baseline_limit, len(queries))
    trie, base, trie_s, base_s = alternate(
        queries,
        nb,
        max(1, nb),
        lambda q: prompting.score_rows(
            model, prefix, prompting.label_rows(q, label_ids), len(q), len(labels), config.batch_size, tokenizer.pad_token_id
        ),
        lambda q: prompting.score_rows(
            model, prefix, per_label_rows(q, label_ids), len(q), len(labels), config.batch_size, tokenizer.pad_token_id
        ),
    )
    trie_rate, base_rate = len(queries) / trie_s, nb / base_s
    agree = float(np.mean(trie[:nb].argmax(1) == base.argmax(1)))
    accuracy = float(np.mean(np.array(labels)[trie.argmax(1)] == subset["category"].to_numpy()))
    print(
        f"trie     : {len(queries)} examples in {trie_s:.1f} s = {trie_rate:.2f} examples/s "
        f"(accuracy {accuracy:.3f}, chance {1 / len(labels):.3f})"
    )
    print(f"per-label: {nb} examples in {base_s:.1f} s = {base_rate:.3f} examples/s")
    print(f"agreement on the {nb} shared examples: {agree:.2%} (max |log-prob diff| {np.abs(trie[:nb] - base).max():.2e})")
    print(f"speed-up: {trie_rate / base_rate:.1f}x (target >= 20x)")
    print(f"peak memory (maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return agree >= 0.995


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=1000, help="dev sentences for the fast scorer")
    parser.add_argument("--baseline-limit", type=int, default=200, help="dev sentences for the naive baseline (slow)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data", type=Path, default=SHARED, help="folder holding sst2/ and banking77/")
    parser.add_argument("--case", choices=("sst2", "banking77", "all"), default="all")
    parser.add_argument("--b77-limit", type=int, default=60, help="Banking77 examples for the trie scorer")
    parser.add_argument("--b77-baseline-limit", type=int, default=3, help="Banking77 examples for the per-label rows (slow)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    ok = True
    if args.case in ("banking77", "all"):
        ok = banking77(args)
    if args.case in ("sst2", "all"):
        ok = sst2(args) and ok
    return 0 if ok else 1


def sst2(args) -> bool:
    """8-shot SST-2: fast scorer vs naive re-encoding; True when predictions agree."""
    DATA = args.data / "sst2"
    if not (DATA / "dev.tsv").exists() or not (DATA / "train.tsv").exists():
        print(f"SST-2 not found at {DATA}; nothing to measure.")
        return True
    import numpy as np
    import pandas as pd
    import torch

    from core import prompting

    read = lambda name: pd.read_csv(DATA / name, sep="\t", dtype=str, keep_default_na=False, quoting=3)  # noqa: E731
    train, dev = read("train.tsv"), read("dev.tsv").iloc[: args.limit]
    names = {"0": "negative", "1": "positive"}
    train = pd.DataFrame(
        {"id": [f"train-{i}" for i in range(len(train))], "text": train["sentence"], "label": train["label"].map(names)}
    )
    dev = pd.DataFrame({"id": [f"dev-{i}" for i in range(len(dev))], "text": dev["sentence"], "label": dev["label"].map(names)})
    labels = ["negative", "positive"]
    config = prompting.PromptConfig(
        shots=8,
        selection="balanced",
        seed=0,
        batch_size=args.batch_size,
        instruction="Is the sentiment of each review {labels}?",
        example_template="Review: {text}\nSentiment: {label}\n\n",
        query_template="Review: {text}\nSentiment:",
    )
    tokenizer, model = prompting.load_model(config)  # what the product uses (sdpa attention)
    positions = prompting.select_demonstrations(train, config.shots, config.selection, config.seed, labels)
    prefix_text = prompting.render_prefix(config, labels, train.iloc[positions], labels)
    prefix = prompting.encode(tokenizer, prefix_text, special=True)
    queries = [prompting.encode(tokenizer, prompting.fill(config.query_template, t)) for t in dev["text"]]
    label_ids = [prompting.encode(tokenizer, " " + w) for w in labels]
    print(
        f"model {config.model}, {torch.get_num_threads()} threads; prefix {len(prefix)} tokens; "
        f"mean query {np.mean([len(q) for q in queries]):.1f} tokens; label tokens {label_ids}"
    )

    nb = min(args.baseline_limit, len(queries))
    fast, naive, fast_s, naive_s = alternate(
        queries,
        nb,
        max(1, min(10, nb)),
        lambda q: prompting.score_rows(
            model, prefix, prompting.label_rows(q, label_ids), len(q), len(labels), config.batch_size, tokenizer.pad_token_id
        ),
        lambda q: prompting.score_rows_naive(model, prefix, q, label_ids),
    )
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
    return ok


if __name__ == "__main__":
    sys.exit(main())
