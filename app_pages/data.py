"""Data page: the loaded dataset as a searchable table, label balance, lengths in tokens, examples, duplicates and leakage."""

import pandas as pd
import streamlit as st

from core import charts, data, tokens
from ui.state import model_choice, require_dataset, scoped, show_error, tokenizer

st.title("Data")
ds = require_dataset()
st.caption(f"{ds.name}: text column `{ds.text_col}`, label column `{ds.label_col}`, labels: {', '.join(ds.label_names)}")
if ds.source in data.list_samples():
    with st.expander("Dataset card"):
        st.markdown(data.sample_card(ds.source))

everything = pd.concat([f.assign(split=s) for s, f in ds.splits.items()], ignore_index=True)
left, right = st.columns(2)
with left:
    st.subheader("Labels per split")
    st.altair_chart(charts.label_distribution(data.summary(ds), ds.label_names), width="stretch")
with right:
    st.subheader("Length in tokens")
    model = model_choice("Tokenizer", "encoder", key="data_tok")
    try:
        if model:
            lengths = tokens.token_lengths(tokenizer(model), everything["text"].tolist())
            frame = everything.assign(tokens=lengths)
            st.altair_chart(charts.length_histogram(frame[["label", "tokens"]]), width="stretch")
            st.caption(f"median {int(frame['tokens'].median())} tokens, 95th percentile {int(frame['tokens'].quantile(0.95))}, longest {int(frame['tokens'].max())}")
    except Exception as e:
        show_error(e)

st.subheader("Browse")
c1, c2, c3 = st.columns([3, 2, 2])
query = c1.text_input("Search text", key=scoped("data_search"), placeholder="words or a regular expression")
splits = c2.multiselect("Splits", ds.split_names(), default=ds.split_names(), key=scoped("data_splits"))
labels = c3.multiselect("Labels", ds.label_names, default=ds.label_names, key=scoped("data_labels"))
shown = everything[everything["split"].isin(splits) & everything["label"].isin(labels)]
if query:
    try:
        shown = shown[shown["text"].str.contains(query, case=False, regex=True)]
    except Exception:  # not a valid regex: search for the literal text
        shown = shown[shown["text"].str.contains(query, case=False, regex=False)]
st.caption(f"{len(shown)} of {len(everything)} rows")
st.dataframe(shown[["id", "split", "label", "text"]], hide_index=True, width="stretch", height=320)

st.subheader("Examples per class")
per_class = st.slider("Examples per class", 1, 10, 3, key=scoped("data_examples"))
for label in ds.label_names:
    rows = ds.splits[ds.split_names()[0]]
    picked = rows[rows["label"] == label].head(per_class)
    st.markdown(f"**{label}**  \n" + "  \n".join(f"- {t}" for t in picked["text"]))

st.subheader("Duplicates and train/test leakage")
threshold = st.slider("Near-duplicate threshold (word 3-gram Jaccard)", 0.5, 1.0, 0.8, 0.05, key=scoped("data_dup_threshold"))
pairs = data.duplicate_report(ds, threshold)
summary = data.leakage_summary(pairs)
if summary.empty:
    st.success("No exact or near-duplicate texts within or across splits.")
else:
    st.dataframe(summary, hide_index=True)
    st.dataframe(pairs, hide_index=True, width="stretch")
