"""Benchmark: the vectorised percentile bootstrap of core.comparison.evaluate vs scipy.stats.bootstrap, for macro-F1 intervals.

ours  : core.comparison.evaluate.bootstrap_metrics: all resamples as one count matrix, accuracy, macro-F1 and per-class F1
        at once.
scipy : scipy.stats.bootstrap(method="percentile", paired) calling scikit-learn's f1_score once per resample (macro-F1 only).

Both on the same seeded labels and predictions (N examples, C classes, about 70% right); prints seconds, the ratio and both
intervals, which must agree to within a few thousandths (different random resamples).

    .venv/bin/python -m bench.bootstrap [--n 872] [--classes 3] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=872, help="evaluation examples (SST-2 dev has 872)")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    import numpy as np
    from scipy import stats
    from sklearn.metrics import f1_score

    from core.comparison import evaluate

    rng = np.random.default_rng(0)
    labels = [f"c{i}" for i in range(args.classes)]
    y_true = rng.integers(0, args.classes, args.n)
    y_pred = np.where(rng.random(args.n) < 0.7, y_true, rng.integers(0, args.classes, args.n))

    started = time.perf_counter()
    ours = (
        evaluate.bootstrap_metrics([labels[i] for i in y_true], [labels[i] for i in y_pred], labels, n_resamples=args.resamples)
        .set_index("metric")
        .loc["macro_f1"]
    )
    ours_s = time.perf_counter() - started

    def macro_f1(t, p):
        return f1_score(t, p, labels=np.unique(t), average="macro", zero_division=0)

    started = time.perf_counter()
    theirs = stats.bootstrap(
        (y_true, y_pred), macro_f1, paired=True, vectorized=False, n_resamples=args.resamples, method="percentile", random_state=0
    ).confidence_interval
    scipy_s = time.perf_counter() - started
    print(f"{args.n} examples, {args.classes} classes, {args.resamples} resamples")
    print(f"  ours : {ours_s:.2f} s  macro-F1 interval [{ours['low']:.3f}, {ours['high']:.3f}] (plus accuracy and per-class F1)")
    print(f"  scipy: {scipy_s:.2f} s  macro-F1 interval [{theirs.low:.3f}, {theirs.high:.3f}]")
    print(f"  ratio: {scipy_s / ours_s:.0f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
