"""Benchmark: the explorer's embedding map and label-error pass at 10,000 rows, each against a naive baseline in the same process.

map          : core.prompting.embed_texts (batches of 64, sorted as given) then core.explore.project (PCA) on all rows;
               baselines: one text per forward pass (batch 1) and scikit-learn's t-SNE instead of PCA, both on a
               --baseline-rows subset (the same subset is also timed our way, so the ratio is like for like).
label errors : core.explore.cv_probabilities (5-fold logistic regression on the embeddings) + rank_label_issues (cleanlab)
               on all rows with --flip of their labels flipped to another label at random (seeded): seconds, and the
               precision and recall of the flagged rows against the planted flips.

--no-encoder replaces the embeddings with seeded Gaussian clusters (the label-error pass and projections only).
Data: ../shared/data/banking77/train.csv (10,003 rows, 77 labels) when present, else synthetic sentences.

    .venv/bin/python -m bench.explore [--rows 10000] [--baseline-rows 1000] [--flip 0.02]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "banking77" / "train.csv"


def load_rows(n: int):
    """(texts, label ids, label count, source) of n rows: Banking77 when present, else seeded synthetic sentences."""
    import numpy as np
    import pandas as pd

    if SHARED.exists():
        frame = pd.read_csv(SHARED).head(n)
        codes, names = pd.factorize(frame["category"])
        return frame["text"].astype(str).tolist(), codes, len(names), f"Banking77 ({SHARED})"
    rng = np.random.default_rng(0)
    words = ["card", "refund", "transfer", "pin", "account", "fee", "cash", "top", "up", "limit", "rate", "lost"]
    labels = rng.integers(0, 12, n)
    texts = [" ".join([words[k]] * 2 + list(rng.choice(words, 6))) for k in labels]
    return texts, labels, 12, "synthetic"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--baseline-rows", type=int, default=1000, help="rows the naive baselines run on (they are slow)")
    parser.add_argument("--flip", type=float, default=0.02, help="share of labels flipped for the label-error pass")
    parser.add_argument(
        "--no-encoder",
        action="store_true",
        help="skip the encoder: seeded 384-d Gaussian clusters (one per label) stand in for the embeddings",
    )
    args = parser.parse_args()
    import numpy as np
    import psutil
    from sklearn.manifold import TSNE

    from core import explore, models, prompting

    texts, y, n_labels, source = load_rows(args.rows)
    print(f"{len(texts):,} rows, {n_labels} labels, {source}")
    if args.no_encoder:
        rng = np.random.default_rng(1)
        centres = rng.normal(0, 1, (n_labels, 384))
        emb = (centres[y] + rng.normal(0, 2.5, (len(y), 384))).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        embed_s = 0.0
    else:
        models.load_encoder(models.ENCODER)  # loading the model is not timed
        started = time.perf_counter()
        emb = prompting.embed_texts(texts)
        embed_s = time.perf_counter() - started
    started = time.perf_counter()
    explore.project(emb)
    pca_s = time.perf_counter() - started
    print(
        f"map, ours: embedding {embed_s:.1f} s ({len(texts) / max(embed_s, 1e-9):.0f} rows/s) "
        f"+ PCA {pca_s:.2f} s = {embed_s + pca_s:.1f} s"
    )

    if not args.no_encoder:
        sub = texts[: args.baseline_rows]
        started = time.perf_counter()
        ours_sub = prompting.embed_texts(sub)
        ours_sub_s = time.perf_counter() - started
        started = time.perf_counter()
        naive = np.concatenate([prompting.embed_texts([t], batch_size=1) for t in sub])
        naive_s = time.perf_counter() - started
        print(
            f"embedding {len(sub):,} rows: batched {ours_sub_s:.1f} s, one row per pass {naive_s:.1f} s: "
            f"{naive_s / ours_sub_s:.1f}x (max |difference| {np.abs(naive - ours_sub).max():.1e})"
        )
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), int(args.flip * len(y)), replace=False)
    given = y.copy()
    given[flipped] = (y[flipped] + rng.integers(1, n_labels, len(flipped))) % n_labels
    started = time.perf_counter()
    probs = explore.cv_probabilities(emb, given, n_labels)
    cv_s = time.perf_counter() - started
    started = time.perf_counter()
    found = explore.rank_label_issues(given, probs)
    clean_s = time.perf_counter() - started
    hits = len(set(found.tolist()) & set(flipped.tolist()))
    print(
        f"label errors: 5-fold logistic regression {cv_s:.1f} s + cleanlab {clean_s:.2f} s; {len(found):,} rows flagged, "
        f"{hits} of the {len(flipped)} planted flips (recall {hits / max(len(flipped), 1):.2f}, "
        f"precision {hits / max(len(found), 1):.2f}); "
        f"the cross-validated model's accuracy on the given labels {np.mean(probs.argmax(1) == given):.3f}"
    )
    started = time.perf_counter()
    explore.project(emb[: args.baseline_rows])
    pca_sub_s = time.perf_counter() - started
    started = time.perf_counter()
    TSNE(n_components=2, random_state=0, init="pca").fit_transform(emb[: args.baseline_rows])
    tsne_s = time.perf_counter() - started
    print(f"projecting {args.baseline_rows:,} rows: PCA {pca_sub_s:.3f} s, t-SNE {tsne_s:.1f} s: {tsne_s / pca_sub_s:.0f}x")

    print(f"peak memory {psutil.Process().memory_info().rss / 2**20:,.0f} MB (resident at the end)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
