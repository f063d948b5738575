"""Compare: two or more finished runs on one evaluation split: metrics with intervals, significance, errors, calibration, cost."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core import charts
from core.comparison import evaluate, report, verdict
from core.runs import RunDir, RunRegistry, comparable, of_dataset
from ui import forms
from ui.explore import label_error_caveats
from ui.state import current_dataset, current_scope, plain, scoped, show_error

ATTENTION_TEXT, ATTENTION_MODELS = "attention_text", "attention_models"  # read by pages/attention.py
CHOSEN = "cmp_chosen"  # the runs chosen on this dataset (a scoped key), kept while other pages are open


@st.cache_data(show_spinner="Comparing runs…", max_entries=8)
def _compare(paths: tuple[str, ...], stamps: tuple[float, ...]) -> evaluate.Comparison:
    """evaluate.compare_runs, recomputed when a run's metrics change (stamps)."""
    return evaluate.compare_runs(list(paths))


def _stamp(path: str) -> float:
    metrics = Path(path) / "metrics.json"
    return metrics.stat().st_mtime if metrics.exists() else 0.0


def _attention_spec(run: evaluate.RunResult) -> str:
    """What the Attention page should load for a run: its fine-tuned model, or its prompt (the run folder), else its model."""
    if (run.path / "model").is_dir() or run.config.get("kind") == "prompt":
        return f"run:{run.path}"
    return str(run.config.get("model") or "minilm")


st.title("Compare")
st.caption("Pick runs evaluated on the same split: which approach wins, by how much, where each fails, and what it costs.")

registry = RunRegistry()
finished = registry.list(state="succeeded")
scope = current_scope()
if scope and not st.checkbox(
    "Runs of every dataset",
    False,
    key=scoped("cmp_all_datasets"),
    help="Off: only runs evaluated on a split of the dataset chosen in the sidebar.",
):
    finished = of_dataset(finished, scope.fingerprints.values())
if len(finished) < 2:
    where = " on this dataset (tick 'Runs of every dataset' for the others)" if scope else ""
    st.info(
        f"Compare needs at least two finished runs{where}. Start some on the Prompting and Fine-tune pages, or from a terminal: "
        f"`python -m core efficiency {forms.cli_data_args(current_dataset())}` runs prompting and fine-tuning at several sizes."
    )
    st.stop()

splits = finished["eval_sha256"][finished["eval_sha256"] != ""].value_counts()  # splits with the most runs first
kept = [p for p in st.session_state.get(scoped(CHOSEN), []) if p in set(finished["path"])]
split_key = scoped("cmp_split")
if splits.empty:
    st.info("None of these runs records the fingerprint of its evaluation split, so none can be compared.")
    st.stop()
if (
    st.session_state.get(split_key) not in splits.index
):  # first visit, or back from another page: the split of this dataset's last choice
    last = finished.set_index("path")["eval_sha256"].get(kept[0]) if kept else None
    st.session_state[split_key] = last if last in splits.index else splits.index[0]
split_names = {sha: name for name, sha in scope.fingerprints.items()} if scope else {}
datasets = finished.groupby("eval_sha256")["dataset"].first()
split = st.selectbox(
    "Evaluation split",
    list(splits.index),
    key=split_key,
    format_func=lambda sha: f"{datasets[sha]} · {split_names.get(sha, 'split')} {sha[:8]} · {splits[sha]} run(s)",
    help="Runs are compared on the examples of one evaluation split; only the runs scored on it are offered.",
)
offered = comparable(finished, split)
labels = {
    r.path: f"{r.name} · {r.kind} · {r.model} · {r.method} · macro-F1 {float(r.macro_f1 or 0):.3f}" for r in offered.itertuples()
}
runs_key = scoped("cmp_runs")
if runs_key in st.session_state and st.session_state.get(scoped("cmp_split_shown")) == split:  # drop runs no longer listed
    st.session_state[runs_key] = [p for p in st.session_state[runs_key] if p in labels]
else:  # first visit, back from another page, or another split: this dataset's last choice on it, else its first two runs
    st.session_state[runs_key] = [p for p in kept if p in labels] or offered["path"].head(2).tolist()
st.session_state[scoped("cmp_split_shown")] = split
chosen = st.multiselect("Runs (same evaluation split)", list(labels), format_func=labels.get, key=runs_key)
st.session_state[scoped(CHOSEN)] = chosen  # not a widget key, so it outlives the page
if len(chosen) < 2:
    st.info("Choose two or more runs.")
    st.stop()
try:
    cmp = _compare(tuple(chosen), tuple(_stamp(p) for p in chosen))
except Exception as e:  # a bad or mismatched run is explained, the page stays usable
    show_error(e)
    st.stop()

names = cmp.names
headline, caveats = verdict.verdict(cmp)
st.info(f"**Verdict:** {plain(headline)}", icon=":material/gavel:")
data_caveats = label_error_caveats(split)  # the Data page's label errors, when looked for
for caveat in caveats + data_caveats:
    st.warning(plain(caveat))
st.subheader("Metrics")
st.caption(
    f"{len(cmp.joined)} examples. Brackets: 95% bootstrap interval (1,000 resamples, seed 0). Train s: training seconds; "
    "examples/s: inference speed; tokens in/out, USD, latency ms (endpoint prompt runs only): tokens sent and received, their "
    "price, median wait per request; ECE: expected calibration error. Baselines (scikit-learn's DummyClassifier on the same "
    "labels): majority always answers the most frequent label, stratified random draws labels in their proportions."
)
st.dataframe(evaluate.format_metrics_table(cmp.metrics, cmp.baselines), hide_index=True, key=scoped("cmp_metrics"))
with st.expander("F1 per class"):
    st.dataframe(evaluate.per_class_table(cmp.metrics, cmp.baselines), hide_index=True, key=scoped("cmp_per_class"))
st.altair_chart(charts.metric_intervals(cmp.metrics))

if len(cmp.mcnemar):
    st.subheader("Is the difference real? McNemar's test")
    shown = cmp.mcnemar.assign(p_value=cmp.mcnemar["p_value"].map(verdict.format_p))
    st.dataframe(shown, hide_index=True, key=scoped("cmp_mcnemar"))
    st.caption(
        "Paired on the same examples. Exact binomial test when fewer than 25 examples are discordant, "
        "otherwise chi-square with continuity correction; p < 0.05 suggests the accuracy difference is not chance."
    )

if len(cmp.labels) <= charts.MAX_MATRIX_LABELS:
    st.subheader("Confusion matrices (one colour scale)")
    st.altair_chart(charts.confusion_heatmaps(cmp.confusions, cmp.labels))
else:  # a 77 x 77 matrix is unreadable: the most frequent mistakes instead, searchable by label
    st.subheader("Most confused label pairs")
    needle = st.text_input("Find a label", key=scoped("cmp_confused_search"), placeholder="part of a label name")
    st.dataframe(evaluate.most_confused(cmp.confusions, top=25, search=needle), hide_index=True, key=scoped("cmp_confused"))
    st.caption(f"{len(cmp.labels)} labels: the 25 most frequent mistakes over the runs (true label predicted as another).")

st.subheader("Agreement and errors")
col_a, col_b = st.columns(2)
run_a = col_a.selectbox("Run A", names, index=0, key=scoped("cmp_run_a"))
run_b = col_b.selectbox("Run B", names, index=1, key=scoped("cmp_run_b"))
if run_a == run_b:
    st.info("Choose two different runs for A and B.")
    st.stop()
ordered = [run_a, run_b] + [n for n in names if n not in (run_a, run_b)]
table = evaluate.agreement_table(cmp.joined, run_a, run_b)
st.dataframe(table, key=scoped("cmp_agreement"))
counts = evaluate.agreement_cells(cmp.joined, run_a, run_b).value_counts()
cell = st.radio(
    "Show examples where",
    ["all", *evaluate.AGREEMENT_CELLS],
    horizontal=True,
    key=scoped("cmp_cell"),
    format_func=lambda c: c if c == "all" else f"{c} ({counts.get(c, 0)})",
    help="A and B are the runs chosen above; each choice is one cell of the 2x2 table.",
)
f1, f2 = st.columns(2)
label = f1.selectbox("True label", ["all", *cmp.labels], key=scoped("cmp_label"))
order = f2.radio("Sort by confidence", ["most confident first", "least confident first"], horizontal=True, key=scoped("cmp_sort"))
errors = evaluate.error_cases(
    cmp.joined,
    ordered,
    label=None if label == "all" else label,
    cell=None if cell == "all" else cell,
    ascending=order.startswith("least"),
)
columns = ["id", "text", "label", "agreement"] + [c for n in ordered for c in (f"pred@{n}", f"confidence@{n}")]
st.dataframe(errors[columns], hide_index=True, key=scoped("cmp_errors"), height=320)
st.caption(f"{len(errors)} examples.")

if len(errors):
    texts = dict(zip(errors["id"], errors["text"], strict=True))
    picked = st.selectbox(
        "Look at one example", list(texts), key=scoped("cmp_example"), format_func=lambda i: f"{i}: {texts[i][:90]}"
    )
    row = errors[errors["id"] == picked].iloc[0]
    st.text(row["text"])
    st.caption(f"true label: {plain(row['label'])}")
    probs = pd.DataFrame(
        [
            {"run": n, "label": lab, "probability": float(row.get(f"prob_{lab}@{n}", float("nan")))}
            for n in ordered
            for lab in cmp.labels
        ]
    )
    probs = probs.dropna()
    st.altair_chart(charts.class_probabilities(probs, row["label"]))
    if probs["label"].nunique() > charts.TOP_CLASSES:
        st.caption(
            f"The {charts.TOP_CLASSES} of {probs['label'].nunique()} classes most probable under any run, and the true label."
        )
    if st.button("Open this example on the Attention page (models of runs A and B side by side)", key=scoped("cmp_to_attention")):
        by_name = dict(zip(names, cmp.runs, strict=True))
        st.session_state[ATTENTION_TEXT] = row["text"]
        st.session_state[ATTENTION_MODELS] = [_attention_spec(by_name[run_a]), _attention_spec(by_name[run_b])]
        st.switch_page("app_pages/attention.py")

st.subheader("Calibration")
eces = dict(zip(cmp.metrics["run"], cmp.metrics["ece"], strict=True))
st.altair_chart(charts.reliability_diagram(cmp.reliability, eces))
st.caption("Points on the diagonal are well calibrated; below it, the run is over-confident.")

st.subheader("Data efficiency")
efficiency = evaluate.efficiency_frame(offered["path"].tolist())
if evaluate.has_curve(efficiency):
    st.altair_chart(charts.efficiency_chart(efficiency))
st.caption(
    "Macro-F1 of every finished run on this split against its labelled training examples (shots or rows), drawn once "
    f"runs differ in size. `python -m core efficiency {forms.cli_data_args(current_dataset())} "
    "--sizes 8pc 32pc all --shots 0 4 8` "
    "produces such runs in one go."
)

st.subheader("Export")
e1, e2 = st.columns(2)
e1.download_button(
    "HTML report (opens offline)",
    lambda: report.build_report(cmp, efficiency, more_caveats=data_caveats),
    file_name="comparison.html",
    mime="text/html",
    key=scoped("cmp_html"),
)
e2.download_button(
    "Joined predictions (CSV)",
    report.export_csv(cmp.joined),
    file_name="joined_predictions.csv",
    mime="text/csv",
    key=scoped("cmp_csv"),
)
with st.expander("Reproduce these runs"):
    for name, run in zip(names, cmp.runs, strict=True):
        st.markdown(f"**{plain(name)}**")
        st.code(run.config.get("command", "(no command recorded)"), language="bash")
        st.caption(plain(f"status: {RunDir(run.path).status.get('state')}"))
