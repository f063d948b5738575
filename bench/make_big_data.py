"""Write the large synthetic files the scale benchmarks read (seeded, so every run measures the same bytes).

big_67k.csv      : 67,000 rows `text,label` (SST-2 train size), 2 labels, sentences of 3-20 words from a 3,000-word
                   vocabulary with Zipf-like frequencies; 2% are case/spacing copies of earlier rows (exact duplicates)
                   and 2% earlier rows with one word changed (near duplicates).
variants_20k.csv : 20,000 case variants of one word (`incomprehensibilities`), alternating two labels: every row is an
                   exact duplicate of every other once case is ignored (200 M pairs).

    .venv/bin/python -m bench.make_big_data [--out /tmp/pft-bench]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

WORD = "incomprehensibilities"


def big_rows(n: int = 67_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"{a}{b}" for a in ("ba", "ko", "mi", "ru", "te", "sa", "lo", "ne", "pi", "du") for b in range(300)])
    weights = 1 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    texts: list[str] = []
    for i in range(n):
        r = rng.random()
        if i > 100 and r < 0.02:
            texts.append("  " + texts[rng.integers(0, i)].upper())
        elif i > 100 and r < 0.04:
            words = texts[rng.integers(0, i)].split()
            words[rng.integers(0, len(words))] = "changed"
            texts.append(" ".join(words))
        else:
            texts.append(" ".join(rng.choice(vocab, size=rng.integers(3, 21), p=weights)))
    return pd.DataFrame({"text": texts, "label": rng.choice(["negative", "positive"], size=n)})


def variant_rows(n: int = 20_000) -> pd.DataFrame:
    texts = ["".join(ch.upper() if (k >> b) & 1 else ch for b, ch in enumerate(WORD)) for k in range(n)]
    return pd.DataFrame({"text": texts, "label": ["a" if k % 2 else "b" for k in range(n)]})


def write(out: Path) -> tuple[Path, Path]:
    """Both files under out (made once; later calls reuse them)."""
    out.mkdir(parents=True, exist_ok=True)
    big, variants = out / "big_67k.csv", out / "variants_20k.csv"
    if not big.exists():
        big_rows().to_csv(big, index=False)
    if not variants.exists():
        variant_rows().to_csv(variants, index=False)
    return big, variants


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/pft-bench"))
    for path in write(parser.parse_args().out):
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")
