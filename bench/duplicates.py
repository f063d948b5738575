"""Benchmark: the duplicate scan (core.data.duplicate_report) against the former all-pairs scan, time and peak memory.

Files (made by bench.make_big_data): a synthetic 67,000-row file, and 20,000 case variants of one word (every row
an exact duplicate of every other: 200 M pairs). Each (scan, file) runs in its own process, so its peak memory
(maxrss) is its own; the former scan gets a memory cap (--cap-mb) and a time limit (--limit-s) and is reported as
not finishing when it meets one. The former scan also runs on the first 2,000 variants, where it finishes.

    .venv/bin/python -m bench.duplicates [--out /tmp/pft-bench] [--cap-mb 4096] [--limit-s 120]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _shingles(text: str, n: int = 3) -> set[str]:
    words = text.lower().split()
    return {" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def former_duplicate_pairs(ds, threshold: float = 0.8) -> int:
    """The scan as it was before (baseline): every exact pair listed, near pairs via a shingle index. Returns pairs."""
    frames = [(s, r.id, r.text) for s in ds.split_names() for r in ds.splits[s].itertuples()]
    norm: dict = {}
    out = []
    for s, i, t in frames:
        norm.setdefault(" ".join(t.lower().split()), []).append((s, i, t))
    for group in norm.values():
        for a in range(len(group)):
            for b in range(a + 1, len(group)):
                out.append((group[a][0], group[a][1], group[b][0], group[b][1], "exact", 1.0, group[a][2], group[b][2]))
    sh = [(s, i, t, _shingles(t)) for s, i, t in frames]
    index: dict[str, list[int]] = {}
    for k, (_, _, _, shs) in enumerate(sh):
        for g in shs:
            index.setdefault(g, []).append(k)
    seen = set()
    for k, (s, i, t, shs) in enumerate(sh):
        cands = {j for g in shs if len(index[g]) < 50 for j in index[g] if j > k}
        for j in cands:
            if (k, j) in seen:
                continue
            seen.add((k, j))
            s2, i2, t2, shs2 = sh[j]
            jac = len(shs & shs2) / len(shs | shs2)
            if jac >= threshold and " ".join(t.lower().split()) != " ".join(t2.lower().split()):
                out.append((s, i, s2, i2, "near", round(jac, 3), t, t2))
    return len(out)


def one(scan: str, path: str, first: int | None) -> dict:
    """Load the file as the app does, run one scan, report seconds, pairs and peak memory of this process."""
    from core import data

    ds = data.load(path)
    if first:
        ds.splits = {s: f.iloc[: max(1, first * len(f) // sum(map(len, ds.splits.values())))] for s, f in ds.splits.items()}
    rows = sum(map(len, ds.splits.values()))
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start, cpu = time.perf_counter(), time.process_time()
    if scan == "former":
        pairs = former_duplicate_pairs(ds)
    else:
        report = data.duplicate_report(ds)
        pairs = report.total_pairs
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 2),
        "pairs": pairs,
        "loaded_mb": round(loaded_mb),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run(scan: str, path: Path, first: int | None, cap_mb: int, limit_s: int) -> str:
    cmd = [sys.executable, "-m", "bench.duplicates", "--one", scan, str(path)] + (["--first", str(first)] if first else [])

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (cap_mb << 20, cap_mb << 20))

    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit_s, preexec_fn=cap, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return f"did not finish in {limit_s} s"
    if done.returncode:
        tail = done.stderr.strip().splitlines()[-1:] or ["?"]
        return f"failed ({'over ' + str(cap_mb) + ' MB' if 'MemoryError' in tail[0] else tail[0]})"
    r = json.loads(done.stdout.strip().splitlines()[-1])
    return (
        f"{r['rows']:,} rows: {r['seconds']:.2f} s ({r['cpu_s']:.2f} s CPU), {r['pairs']:,} pairs, "
        f"peak {r['peak_mb']} MB (after loading {r['loaded_mb']} MB)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/pft-bench"))
    parser.add_argument("--cap-mb", type=int, default=4096)
    parser.add_argument("--limit-s", type=int, default=120)
    parser.add_argument("--one", nargs=2, metavar=("SCAN", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args.first)))
        return 0
    from bench import make_big_data

    big, variants = make_big_data.write(args.out)
    for label, path, first in (
        ("67k synthetic", big, None),
        ("20,000 variants", variants, None),
        ("2,000 variants", variants, 2000),
    ):
        for scan in ("former", "bounded"):
            print(f"{label:16} {scan:8}: {run(scan, path, first, args.cap_mb, args.limit_s)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
