"""Playground: type a text (or pick an evaluation example) and see every chosen run's label, probabilities and token
saliency side by side; an example the runs disagree on opens in Compare's error browser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from core import attention, charts, predict
from core.runs import of_dataset, runs_root
from ui import state

st.title("Playground")
st.caption(
    "Try finished runs on any text: each run's label and class probabilities side by side, with the tokens that "
    "pushed a fine-tuned classifier towards its label. Press Ctrl+Enter (or click away) to update after an edit."
)


@st.cache_resource(show_spinner="Loading run…", max_entries=6)
def _predictor(path: str, stamp: float) -> predict.Predictor:
    return predict.load_predictor(path)


@st.cache_data(show_spinner=False, max_entries=64)
def _probs(path: str, stamp: float, text: str) -> list[float]:
    return _predictor(path, stamp).score([text])[0].tolist()


@st.cache_resource(show_spinner="Loading model for saliency…", max_entries=4)
def _attention_model(path: str, stamp: float) -> attention.AttentionModel:
    return attention.load_attention_model(f"{attention.RUN_PREFIX}{path}")


@st.cache_data(show_spinner="Computing saliency…", max_entries=32)
def _saliency(path: str, stamp: float, text: str) -> pd.DataFrame:
    return attention.saliency(_attention_model(path, stamp), text, method="gradient x input").frame()


def _stamp(path: str) -> float:
    status = Path(path) / "status.json"
    return status.stat().st_mtime if status.exists() else 0.0


try:
    finished = predict.finished_runs(runs_root())
except Exception as exc:
    state.show_error(exc)
    st.stop()
if finished.empty:
    st.info("No finished run yet: start one on the Prompting or Fine-tune page.")
    st.stop()

ds = state.current_dataset()
scope = state.current_scope()
mine = of_dataset(finished, scope.fingerprints.values()) if scope else finished.head(0)
described = {r.path: f"{r.name} · {r.kind} · {r.method or ''}" for r in finished.itertuples()}
runs_key = state.scoped("pg_runs")
if runs_key not in st.session_state:
    st.session_state[runs_key] = (mine if len(mine) else finished)["path"].head(2).tolist()
chosen = st.multiselect(
    "Runs",
    list(described),
    format_func=described.get,
    key=runs_key,
    help="Finished runs, this dataset's first; add as many as you like.",
)

text_key, example_key = state.scoped("pg_text"), state.scoped("pg_example")
examples = pd.DataFrame(columns=["id", "text", "label"])
split = None
if ds is not None:
    split = "test" if "test" in ds.splits else ds.split_names()[-1]
    examples = ds.splits[split].reset_index(drop=True)
    by_id = dict(zip(examples["id"].astype(str), examples["text"], strict=True))

    def _fill() -> None:
        picked = st.session_state.get(example_key)
        if picked in by_id:
            st.session_state[text_key] = by_id[picked]

    st.selectbox(
        f"Or pick an example of the {split} split",
        ["(your own text)", *by_id],
        key=example_key,
        on_change=_fill,
        format_func=lambda i: i if i not in by_id else f"{i}: {by_id[i][:90]}",
    )
text = st.text_area("Text", key=text_key, height=120, placeholder="Type or paste a text to classify")
if not chosen:
    st.info("Choose one or more runs.")
    st.stop()
if not text.strip():
    st.info("Type a text, or pick an example.")
    st.stop()
text = predict.clean_texts(pd.Series([text])).iloc[0]
picked = st.session_state.get(example_key)
example = examples[examples["id"].astype(str) == picked] if ds is not None else examples
is_example = len(example) == 1 and example["text"].iloc[0] == text
if is_example:
    st.caption(f"True label: **{state.plain(example['label'].iloc[0])}**")

predicted = {}
columns = st.columns(min(len(chosen), 3))
for i, path in enumerate(chosen):
    with columns[i % len(columns)]:
        name = Path(path).name
        st.subheader(state.plain(name))
        try:
            stamp = _stamp(path)
            predictor = _predictor(path, stamp)
            probs = _probs(path, stamp, text)
        except Exception as exc:
            state.show_error(exc)
            continue
        label = predict.labels_of(np.array([probs], dtype=float), predictor.label_names)[0]
        predicted[path] = label
        if not predictor.probabilities:  # an endpoint's generate mode: the answer, parsed; nothing to chart
            st.metric("label", label)
            st.caption("This run parses the endpoint's generated answer to a label: it gives no class probabilities.")
            continue
        st.metric("label", label, f"{max(probs):.1%} confident", delta_color="off")
        frame = pd.DataFrame({"run": name, "label": predictor.label_names, "probability": probs})
        st.altair_chart(charts.class_probabilities(frame, example["label"].iloc[0] if is_example else None))
        st.dataframe(frame[["label", "probability"]].round(4), hide_index=True, key=f"pg_probs_{i}")
        if predictor.has_saliency:
            try:
                st.altair_chart(charts.saliency_chart(_saliency(path, stamp, text)))
                st.caption("Token saliency (gradient x input) for the predicted label: red for, blue against.")
            except Exception as exc:
                st.caption(state.plain(f"Token saliency: not available ({exc})."))
        else:
            kind = "prompt runs" if predictor.kind == "prompt" else "prompt-tuning and lora-lm runs"
            st.caption(
                state.plain(f"Token saliency: not available for {kind} (see the Attention page for a prompt run's attention).")
            )

if is_example and len(set(predicted.values())) > 1 and scope is not None:
    sha = scope.fingerprints.get(split)
    on_split = [p for p in predicted if p in set(finished[finished["eval_sha256"] == sha]["path"])]
    disagree = sorted(on_split, key=lambda p: list(predicted.values()).count(predicted[p]))  # the odd one out first
    if len(on_split) >= 2 and len({predicted[p] for p in on_split}) > 1:
        st.warning("The runs disagree on this evaluation example.")
        if st.button("Open it in Compare's error browser", key=state.scoped("pg_to_compare")):
            first = disagree[0]
            other = next(p for p in disagree if predicted[p] != predicted[first])
            state.open_in_compare([first, other, *[p for p in on_split if p not in (first, other)]], sha, picked)
