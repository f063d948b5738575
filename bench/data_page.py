"""Benchmark: the Data page's computations on a 67,000-row file, as the page did them before (everything on every
rerun, whole table and one chart row per text sent to the browser, all-pairs duplicate scan) and as it does now
(first view: cached per dataset fingerprint, bounded duplicate scan, binned histogram, one page of rows; a widget
move: only its fragment's work, the rest comes from the cache).

--apptest also times the real page through Streamlit's AppTest: first run and a rerun after moving the duplicate
threshold slider (AppTest reruns the whole script, so this is the cached full-rerun cost; a fragment rerun in the
browser does less).

    .venv/bin/python -m bench.data_page [--out /tmp/pft-bench] [--apptest]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

CPU: dict[str, float] = {}  # process CPU seconds per step (wall time on a shared machine includes waiting)


def timed(label: str, fn, results: dict):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    results[label] = time.perf_counter() - start
    CPU[f"{id(results)}{label}"] = time.process_time() - cpu
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/pft-bench"))
    parser.add_argument("--apptest", action="store_true")
    args = parser.parse_args()
    import pandas as pd
    import pyarrow as pa

    from bench import duplicates as dup_bench
    from bench import make_big_data
    from core import charts, data, models, tokens

    big, _ = make_big_data.write(args.out)
    ds = data.load(str(big))
    tok = models.load_tokenizer(models.ENCODER)
    rows = sum(map(len, ds.splits.values()))
    print(f"{big.name}: {rows:,} rows, {len(ds.label_names)} labels")

    before: dict[str, float] = {}
    everything = timed(
        "combine splits", lambda: pd.concat([f.assign(split=s) for s, f in ds.splits.items()], ignore_index=True), before
    )
    timed("labels per split", lambda: data.summary(ds), before)
    lengths = timed("token counts", lambda: tokens.token_lengths(tok, everything["text"].tolist()), before)
    frame = everything.assign(tokens=lengths)
    timed("length chart (one row per text)", lambda: frame[["label", "tokens"]].to_json(orient="records"), before)
    timed("browse table (every row)", lambda: pa.Table.from_pandas(everything[["id", "split", "label", "text"]]), before)
    timed("duplicate scan (all pairs)", lambda: dup_bench.former_duplicate_pairs(ds), before)

    first: dict[str, float] = {}
    timed("fingerprint", lambda: "|".join(ds.fingerprint(s) for s in ds.split_names()), first)
    everything = timed(
        "combine splits", lambda: pd.concat([f.assign(split=s) for s, f in ds.splits.items()], ignore_index=True), first
    )
    timed("labels per split", lambda: data.summary(ds), first)
    sample = everything.sample(10_000, random_state=0)  # the page counts tokens of a 10,000-text sample
    lengths = timed("token counts (10,000 sample)", lambda: tokens.token_lengths(tok, sample["text"].tolist()), first)
    timed("length chart (binned)", lambda: charts.length_histogram(sample[["label"]].assign(tokens=lengths)).to_dict(), first)
    timed("browse table (one page)", lambda: pa.Table.from_pandas(everything.iloc[:200][["id", "split", "label", "text"]]), first)
    scan = timed("duplicate scan (bounded)", lambda: data.duplicate_scan(ds), first)
    timed("duplicate counts at a threshold", lambda: scan.report(0.8), first)

    rerun: dict[str, float] = {}

    def search():
        shown = everything[everything["split"].isin(ds.split_names()) & everything["label"].isin(ds.label_names)]
        shown = shown[shown["text"].str.contains("ba1 ", case=False, regex=True)]
        return pa.Table.from_pandas(shown.iloc[:200][["id", "split", "label", "text"]])

    timed("search + one page (browse fragment)", search, rerun)
    timed("duplicate counts at a new threshold (duplicates fragment)", lambda: scan.report(0.9), rerun)
    for name, t in (("before, every rerun", before), ("now, first view", first), ("now, widget moves", rerun)):
        cpu = sum(CPU[f"{id(t)}{k}"] for k in t)
        print(f"{name}: {sum(t.values()):.2f} s, {cpu:.2f} s CPU  (" + ", ".join(f"{k} {v:.2f}" for k, v in t.items()) + ")")
    print(
        f"widget move: {sum(before.values()) / max(rerun.values()):.0f}x faster (slower of the two fragments); "
        f"first view {sum(before.values()) / sum(first.values()):.1f}x"
    )

    if args.apptest:
        from streamlit.testing.v1 import AppTest

        from ui.state import DATASET_KEY

        root = Path(__file__).resolve().parents[1]
        at = AppTest.from_file(str(root / "streamlit_app.py"), default_timeout=600)
        at.session_state["ds_kind"] = "Hugging Face"  # the sidebar leaves a dataset set in the session alone
        at.session_state[DATASET_KEY] = ds
        start = time.perf_counter()
        at.run()
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        at.slider(key="data_dup_threshold").set_value(0.9).run()
        threshold_s = time.perf_counter() - start
        start = time.perf_counter()
        at.text_input(key="data_search").input("ba1 ").run()
        print(
            f"AppTest: first run {first_s:.2f} s; whole-page rerun after moving the duplicate threshold {threshold_s:.2f} s, "
            f"after a search {time.perf_counter() - start:.2f} s ({'ok' if not at.exception else at.exception})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
