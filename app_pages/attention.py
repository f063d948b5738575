"""Attention: two models side by side on one text: bertviz (offline), a head's matrix, head entropy, special tokens, saliency."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import attention, charts, models
from core.errors import UserError
from core.runs import RunRegistry, of_dataset
from ui.state import current_dataset, current_scope, plain, scoped, show_error

ATTENTION_TEXT, ATTENTION_MODELS = "attention_text", "attention_models"  # set by pages/compare.py


@st.cache_resource(show_spinner="Loading model…", max_entries=4)
def _model(spec: str) -> attention.AttentionModel:
    """attention.load_attention_model, shared across sessions."""
    return attention.load_attention_model(spec)


@st.cache_data(show_spinner="Reading attention…", max_entries=16)
def _attention(spec: str, text: str, max_tokens: int) -> attention.AttentionResult:
    return attention.extract_attention(_model(spec), text, max_tokens)


@st.cache_data(show_spinner="Computing saliency…", max_entries=16)
def _saliency(spec: str, text: str, method: str, steps: int, word: str | None, max_tokens: int) -> attention.Saliency:
    return attention.saliency(_model(spec), text, method=method, steps=steps, target_word=word, max_tokens=max_tokens)


@st.cache_data(max_entries=16)
def _bertviz(spec: str, text: str, max_tokens: int, view: str, layers: tuple[int, ...] | None) -> str:
    return attention.bertviz_html(_attention(spec, text, max_tokens), view=view, layers=list(layers) if layers else None)


def _model_options() -> dict[str, str]:
    """Bundled models, the dataset's finished runs (fine-tuned classifiers, prompts), and what the Compare page asked for."""
    options = {key: f"{info.name} (bundled {info.role})" for key, info in models.BUNDLED.items()}
    runs = RunRegistry().list(state="succeeded")
    scope = current_scope()
    for run in (of_dataset(runs, scope.fingerprints.values()) if scope else runs).itertuples():
        what = {"finetune": "fine-tuned run", "prompt": "prompt run"}.get(run.kind)
        if what and run.method != "prompt-tuning":  # a soft prompt has no tokens to show attention on
            options[f"{attention.RUN_PREFIX}{run.path}"] = f"{what} {run.name} ({run.model}, {run.method})"
    for spec in st.session_state.get(ATTENTION_MODELS, []):
        options.setdefault(spec, spec.removeprefix(attention.RUN_PREFIX))
    return options


def _panel(spec: str, text: str, max_tokens: int, view: str, key: str) -> None:
    """One model's column: prediction, bertviz, head heatmap, entropy, special tokens, saliency."""
    try:
        result = _attention(spec, text, max_tokens)
    except Exception as e:
        show_error(e)
        return
    st.markdown(
        f"**{plain(result.model_name)}** · {plain(result.kind)} · "
        f"{result.n_layers} layers × {result.n_heads} heads · {len(result.tokens)} tokens"
    )
    if result.prediction is not None:
        what = "predicted next token" if result.kind == "decoder" else "predicted label"
        st.caption(f"{what}: {plain(result.prediction)} ({result.probabilities[result.prediction]:.2f})")
    if result.kind == "prompt":
        with st.expander("The run's prompt and its label-word probabilities", expanded=True):
            st.code(result.input_text, language=None, wrap_lines=True)
            st.dataframe(
                pd.DataFrame({"label": list(result.probabilities), "probability": list(result.probabilities.values())}),
                hide_index=True,
                column_config={"probability": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.3f")},
            )
            for note in result.notes:
                st.caption(plain(note))  # names the run's data file: data, never Markdown
    tabs = st.tabs(["bertviz", "one head", "all heads", "saliency"])
    with tabs[0]:
        try:
            html = _bertviz(spec, text, max_tokens, view, None)
            st.iframe(attention.sandboxed(html), height=min(110 + 23 * len(result.tokens), 1800) if view == "head" else 900)
            st.caption(
                f"bertviz {view} view, drawn offline ({len(html) / 1e6:.1f} MB). "
                "Layers are thinned evenly when all of them would exceed 10 MB."
            )
        except UserError as e:
            show_error(e)
    with tabs[1]:
        c1, c2 = st.columns(2)
        layer = c1.number_input("Layer", 0, result.n_layers - 1, result.n_layers - 1, key=scoped(f"{key}_layer"))
        head = c2.number_input("Head", 0, result.n_heads - 1, 0, key=scoped(f"{key}_head"))
        st.altair_chart(charts.attention_heatmap(attention.attention_frame(result, int(layer), int(head))))
    with tabs[2]:
        st.altair_chart(charts.head_entropy_chart(attention.head_entropy(result)))
        st.caption("Entropy per head: low means the head focuses on few tokens.")
        st.altair_chart(charts.special_attention_chart(attention.special_attention(result)))
        st.caption("Attention mass on special tokens and on the first token: large values mean the head is mostly 'resting'.")
    with tabs[3]:
        if result.kind == "encoder":
            st.info("Saliency explains an output; the bare encoder has none. Pick a fine-tuned run or the decoder.")
            return
        c1, c2 = st.columns(2)
        method = c1.radio("Method", ["gradient x input", "integrated gradients"], key=scoped(f"{key}_method"))
        steps = c2.slider("IG steps", 4, 64, 16, key=scoped(f"{key}_steps"), disabled=method != "integrated gradients")
        word = (
            st.text_input(
                "Label word to explain (empty = the predicted next token, or the prompt run's preferred label word)",
                key=scoped(f"{key}_word"),
            )
            if result.kind in ("decoder", "prompt")
            else ""
        )
        try:
            s = _saliency(spec, text, method, steps, word.strip() or None, max_tokens)
        except Exception as e:
            show_error(e)
            return
        st.altair_chart(charts.saliency_chart(s.frame()))
        st.caption(
            f"{s.method} for log p({plain(s.target)}); attributions sum to {s.scores.sum():.3f} "
            f"(f(text) − f(baseline) = {s.output - s.baseline_output:.3f}). Attention alone is not an explanation."
        )


st.title("Attention")
st.caption("What did the models look at? Two models side by side on the same text; everything is drawn offline.")

ds = current_dataset()
default_text = (
    ds.splits[next(iter(ds.splits))]["text"].iloc[0] if ds is not None and ds.splits else "The battery died after two days."
)
options = _model_options()
specs = list(options)
if ATTENTION_TEXT in st.session_state:  # just arrived from the Compare page: its example and its runs' models
    st.session_state[scoped("att_text")] = st.session_state.pop(ATTENTION_TEXT)
    wanted = st.session_state.get(ATTENTION_MODELS) or []
    st.session_state[scoped("att_left")], st.session_state[scoped("att_right")] = (wanted + [models.ENCODER, models.DECODER])[:2]
st.session_state.setdefault(scoped("att_text"), default_text)
st.session_state.setdefault(scoped("att_left"), models.ENCODER)
st.session_state.setdefault(scoped("att_right"), models.DECODER)
text = st.text_area("Text", key=scoped("att_text"), height=90)
c1, c2, c3 = st.columns([2, 2, 1])
left = c1.selectbox("Left model", specs, format_func=options.get, key=scoped("att_left"))
right = c2.selectbox("Right model", specs, format_func=options.get, key=scoped("att_right"))
max_tokens = c3.slider("Max tokens", 8, 256, 64, key=scoped("att_max_tokens"))
view = st.radio(
    "bertviz view",
    ["head", "model"],
    horizontal=True,
    key=scoped("att_view"),
    help="Head view: one layer, lines per head. Model view: a thumbnail per layer and head (thinned for big models).",
)

if text.strip():
    cols = st.columns(2)
    for col, spec, key in ((cols[0], left, "att_l"), (cols[1], right, "att_r")):
        with col:
            _panel(spec, text, max_tokens, view, key)
else:
    st.info("Type a text to see the models' attention.")
