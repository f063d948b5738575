"""Data page: the loaded dataset as a searchable table, label balance, lengths in tokens, examples, duplicates and leakage.

Expensive work (the combined table, token counts, the duplicate scan) is cached per dataset fingerprint; each
widget's section is a fragment, so moving a slider or typing a search reruns that section only, and the browse
table sends one page of rows to the browser, not the whole dataset."""

import pandas as pd
import streamlit as st

from core import charts, data, tokens
from ui.state import current_scope, model_choice, plain, require_dataset, scoped, show_error, tokenizer

PAGE_ROWS = 200  # rows the browse table sends per page
LENGTH_SAMPLE = 10_000  # texts whose tokens are counted for the length chart (a seeded sample of larger datasets)
MAX_NAMED_LABELS = 12  # labels named in the caption and shown under "Examples per class" before a choice is offered


@st.cache_data(show_spinner=False, max_entries=4)
def combined(key: str, _ds: data.Dataset) -> pd.DataFrame:
    """Every split in one table with a split column."""
    return pd.concat([f.assign(split=s) for s, f in _ds.splits.items()], ignore_index=True)


@st.cache_data(show_spinner="Counting tokens…", max_entries=8)
def token_counts(key: str, model: str, _texts: list[str]):
    """Tokens per text with the chosen tokenizer."""
    return tokens.token_lengths(tokenizer(model), _texts)


@st.cache_data(show_spinner="Looking for duplicates…", max_entries=4)
def duplicates(key: str, _ds: data.Dataset) -> data.DuplicateScan:
    """The duplicate scan, before a threshold is applied (moving the threshold only re-counts)."""
    return data.duplicate_scan(_ds)


st.title("Data")
ds = require_dataset()
key = current_scope().id  # the dataset's fingerprint: cached work below is done once per dataset
named = ", ".join(ds.label_names[:MAX_NAMED_LABELS]) + (
    f" and {len(ds.label_names) - MAX_NAMED_LABELS} more" if len(ds.label_names) > MAX_NAMED_LABELS else ""
)
st.caption(plain(f"{ds.name}: text column '{ds.text_col}', label column '{ds.label_col}', {len(ds.label_names)} labels: {named}"))
if ds.source in data.list_samples():
    with st.expander("Dataset card"):
        st.markdown(data.sample_card(ds.source))

everything = combined(key, ds)
summary = data.summary(ds)
left, right = st.columns(2)
with left:
    st.subheader("Labels per split")
    st.altair_chart(charts.label_distribution(summary, ds.label_names), width="stretch")


@st.fragment
def class_section() -> None:
    with st.expander(f"Rows per class ({len(ds.label_names)} labels)", expanded=len(ds.label_names) > 20):
        needle = st.text_input("Find a label", key=scoped("data_class_search"), placeholder="part of a label name")
        table = data.class_table(summary)
        if needle.strip():
            table = table[table["label"].str.contains(needle.strip(), case=False, regex=False)]
        st.dataframe(table, hide_index=True, width="stretch", height=min(36 * (len(table) + 1), 320))


@st.fragment
def lengths_section() -> None:
    st.subheader("Length in tokens")
    model = model_choice("Tokenizer", "encoder", key="data_tok")
    try:
        if model:
            sample = everything.sample(LENGTH_SAMPLE, random_state=0) if len(everything) > LENGTH_SAMPLE else everything
            frame = sample[["label"]].assign(tokens=token_counts(key, model, sample["text"].tolist()))
            st.altair_chart(charts.length_histogram(frame), width="stretch")
            of = f" (a random {len(sample):,} of {len(everything):,} texts)" if len(sample) < len(everything) else ""
            st.caption(
                f"median {int(frame['tokens'].median())} tokens, 95th percentile {int(frame['tokens'].quantile(0.95))}, "
                f"longest {int(frame['tokens'].max())}{of}"
            )
    except Exception as e:
        show_error(e)


with right:
    lengths_section()
class_section()  # full width: long label names and a column per split


@st.fragment
def browse_section() -> None:
    st.subheader("Browse")
    c1, c2, c3, c4 = st.columns([3, 2, 2, 1])
    query = c1.text_input("Search text", key=scoped("data_search"), placeholder="words or a regular expression")
    splits = c2.multiselect("Splits", ds.split_names(), default=ds.split_names(), key=scoped("data_splits"))
    labels = c3.multiselect("Labels", ds.label_names, default=ds.label_names, key=scoped("data_labels"))
    shown = everything[everything["split"].isin(splits) & everything["label"].isin(labels)]
    if query:
        try:
            shown = shown[shown["text"].str.contains(query, case=False, regex=True)]
        except Exception:  # not a valid regex: search for the literal text
            shown = shown[shown["text"].str.contains(query, case=False, regex=False)]
    pages = max(1, -(-len(shown) // PAGE_ROWS))
    page = int(c4.number_input(f"Page (of {pages})", 1, pages, 1, key=scoped("data_page"))) if pages > 1 else 1
    first = (page - 1) * PAGE_ROWS
    st.caption(
        f"{len(shown)} of {len(everything)} rows"
        + (f" · showing {first + 1}–{min(first + PAGE_ROWS, len(shown))}" if pages > 1 else "")
    )
    st.dataframe(
        shown.iloc[first : first + PAGE_ROWS][["id", "split", "label", "text"]], hide_index=True, width="stretch", height=320
    )


browse_section()

st.subheader("Examples per class")
per_class = st.slider("Examples per class", 1, 10, 3, key=scoped("data_examples"))
classes = ds.label_names
if len(classes) > MAX_NAMED_LABELS:  # 77 labels x 3 examples made the page 14,000 px tall
    classes = st.multiselect(
        "Classes", ds.label_names, default=ds.label_names[:MAX_NAMED_LABELS], key=scoped("data_example_classes")
    )
for label in classes:
    rows = ds.splits[ds.split_names()[0]]
    picked = rows[rows["label"] == label].head(per_class)
    st.markdown(f"**{plain(label)}**")
    st.text("\n".join(f"- {t}" for t in picked["text"]))


@st.fragment
def duplicates_section() -> None:
    st.subheader("Duplicates and train/test leakage")
    threshold = st.slider(
        "Near-duplicate threshold (word 3-gram Jaccard)",
        0.5,
        1.0,
        data.NEAR_DUPLICATE_THRESHOLD,
        0.05,
        key=scoped("data_dup_threshold"),
    )
    report = duplicates(key, ds).report(threshold)
    if report.summary.empty:
        st.success("No exact or near-duplicate texts within or across splits.")
    else:
        st.dataframe(report.summary, hide_index=True)
        if report.capped:
            st.caption(f"Near-duplicate candidates were capped at {data.MAX_CANDIDATE_PAIRS:,}: near counts are a lower bound.")
        st.caption(f"{len(report.pairs):,} of {report.total_pairs:,} pairs listed")
        st.dataframe(report.pairs, hide_index=True, width="stretch")


duplicates_section()


@st.fragment
def label_errors_section() -> None:
    from core.comparison.report import export_csv
    from ui.explore import LABEL_ISSUES, label_issues

    st.subheader("Suspected label errors")
    st.caption(
        "Every row embedded by the bundled encoder, a logistic regression's out-of-fold probabilities (5 stratified folds, "
        "scikit-learn) and cleanlab's confident learning: the rows whose given label the model finds least likely, "
        "with the label it suspects. A cheap model flags hard rows too: read them before relabelling."
    )
    if not st.toggle(
        "Look for label errors", key=scoped("data_label_errors"), help="Embeds every row once (cached for this dataset)."
    ):
        return
    try:
        issues = label_issues(key, ds)
    except Exception as e:
        show_error(e)
        return
    st.session_state[scoped(LABEL_ISSUES)] = issues  # read by Compare for its caveats
    counts = issues["split"].value_counts()
    st.caption(" · ".join(f"{s}: {counts.get(s, 0)} of {len(ds.splits[s])} rows" for s in ds.split_names()))
    top = int(
        st.number_input(
            "Rows to show and download", 1, max(1, len(issues)), min(20, max(1, len(issues))), key=scoped("data_label_errors_top")
        )
    )
    st.dataframe(
        issues.head(top), hide_index=True, width="stretch", height=min(36 * (top + 1), 400), key=scoped("data_label_errors_table")
    )
    st.download_button(
        "Suspected label errors (CSV)",
        export_csv(issues.head(top)),
        file_name="label_errors.csv",
        mime="text/csv",
        key=scoped("data_label_errors_csv"),
    )


label_errors_section()
