"""Explore runs: where each run fails (slices with intervals and prompt-vs-fine-tune tests), an embedding map of the
evaluation split coloured by label, prediction, correctness or agreement (a brushed box filters the examples), and how
predictions move on perturbed texts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core import charts, data, explore, models
from core.comparison import evaluate, report
from core.runs import RunRegistry, comparable, of_dataset
from ui.explore import label_error_caveats
from ui.state import ORIGIN_KEY, current_scope, open_in_compare, plain, require_dataset, scoped, show_error, text_embeddings

ROBUSTNESS = "exp_robustness"  # a scoped session key: the last robustness table of this page


def _stamps(paths) -> tuple[float, ...]:
    return tuple((Path(p) / "metrics.json").stat().st_mtime if (Path(p) / "metrics.json").exists() else 0.0 for p in paths)


@st.cache_data(show_spinner="Reading runs…", max_entries=8)
def _joined(paths: tuple[str, ...], stamps: tuple[float, ...]):
    return explore.load_joined(list(paths))


@st.cache_data(show_spinner="Computing slices…", max_entries=16)
def _slices(
    paths: tuple[str, ...], stamps: tuple[float, ...], by: str, scope_id: str, _extra: pd.DataFrame | None
) -> explore.SliceReport:
    joined, kinds, labels = _joined(paths, stamps)
    return explore.slice_report(joined, kinds, labels, by, _extra)


@st.cache_data(show_spinner=False, max_entries=4)
def _extra_columns(scope_id: str, _ds, _upload) -> pd.DataFrame | None:
    """The uploaded file's columns beside text and label, for slices by a column (scope_id: the dataset it was loaded as)."""
    return explore.extra_columns(data.read_table(_upload.getvalue(), _upload.name), _ds.text_col, _ds.label_col)


@st.cache_data(show_spinner="Projecting the embeddings…", max_entries=8)
def _coords(split: str, ids: tuple[str, ...], method: str, _texts: tuple[str, ...]):
    """The map's 2-D coordinates, once per split, row set and method (the embeddings are cached apart, per text list)."""
    return explore.project(text_embeddings(_texts, models.ENCODER), method)


@st.cache_data(show_spinner="Comparing runs…", max_entries=4)
def _comparison(paths: tuple[str, ...], stamps: tuple[float, ...]) -> evaluate.Comparison:
    return evaluate.compare_runs(list(paths))


st.title("Explore runs")
st.caption("Where each run fails, on which examples, and how its predictions move when the text changes.")
ds = require_dataset()
scope = current_scope()
finished = of_dataset(RunRegistry().list(state="succeeded"), scope.fingerprints.values())
if finished.empty:
    st.info("No finished run on this dataset yet. Start one on the Prompting or Fine-tune page.")
    st.stop()
split_names = {sha: name for name, sha in scope.fingerprints.items()}
splits = finished["eval_sha256"].value_counts()
split = st.selectbox(
    "Evaluation split",
    list(splits.index),
    key=scoped("exp_split"),
    format_func=lambda sha: f"{split_names.get(sha, 'split')} {sha[:8]} · {splits[sha]} run(s)",
)
offered = comparable(finished, split)
names = {r.path: f"{r.name} · {r.kind} · {r.method}" for r in offered.itertuples()}
chosen_key = scoped("exp_runs")
if chosen_key not in st.session_state or not set(st.session_state[chosen_key]) <= set(names):
    kept = [p for p in st.session_state.get(scoped("cmp_chosen"), []) if p in names]  # Compare's choice, when on this split
    st.session_state[chosen_key] = kept or list(names)[:2]
chosen = st.multiselect("Runs", list(names), format_func=names.get, key=chosen_key)
if not chosen:
    st.info("Choose one or more runs.")
    st.stop()
paths, stamps = tuple(chosen), _stamps(chosen)
try:
    joined, kinds, labels = _joined(paths, stamps)
except Exception as e:
    show_error(e)
    st.stop()
run_names = evaluate.run_names(joined)

# lazy tabs: only the open one runs, so the map embeds the split (minutes at thousands of rows on a laptop) only when looked at
slices_tab, map_tab, robust_tab = st.tabs(["Slices", "Embedding map", "Robustness"], key=scoped("exp_tab"), on_change="rerun")

with slices_tab:
    c1, c2 = st.columns([1, 2])
    upload = st.session_state.get("ds_upload") if (st.session_state.get(ORIGIN_KEY) or ("",))[0] == "file" else None
    extra = _extra_columns(scope.id, ds, upload) if upload is not None else None
    options = ["length", "label", "negation", "numbers", "regex"] + (["column"] if extra is not None else [])
    kind = c1.selectbox(
        "Slice by",
        options,
        key=scoped("exp_by"),
        format_func={
            "length": "text length (word quartiles)",
            "label": "true label",
            "negation": "negation words",
            "numbers": "numbers",
            "regex": "a keyword or regular expression",
            "column": "a column of the file",
        }.get,
    )
    by = kind
    if kind == "regex":
        pattern = c2.text_input(
            "Keyword or regular expression (case-insensitive)", key=scoped("exp_regex"), placeholder="e.g. refund|money"
        )
        by = f"regex:{pattern}" if pattern else ""
    elif kind == "column":
        by = "column:" + c2.selectbox("Column", [c for c in extra.columns if c != "text"], key=scoped("exp_column"))
    if by:
        try:
            sliced = _slices(paths, stamps, by, scope.id, extra)
            significant = sliced.tests.loc[sliced.tests["significant"], "slice"].unique()
            st.caption(
                plain(
                    f"{len(joined)} examples in {sliced.table['slice'].nunique()} slices; {len(significant)} where a prompt "
                    f"and a fine-tuned run differ significantly (McNemar, Holm-adjusted over {len(sliced.tests)} tests, "
                    f"p < {explore.ALPHA}) come first, marked *. Brackets: 95% bootstrap intervals."
                )
            )
            st.dataframe(explore.format_slices(sliced), hide_index=True, width="stretch", key=scoped("exp_slices"))
            st.session_state[scoped("exp_slices_report")] = sliced
        except Exception as e:
            show_error(e)
    if extra is None:
        st.caption(
            "Slices by a column of your file: load it as a File in the sidebar, or "
            "`python -m core slices RUN... --by column:NAME --data FILE`."
        )

with map_tab:
    if map_tab.open:
        c1, c2 = st.columns(2)
        colour = c1.selectbox("Colour by", explore.colour_options(run_names), key=scoped("exp_colour"))
        method = c2.selectbox(
            "Projection",
            explore.projection_methods(),
            key=scoped("exp_method"),
            format_func=str.upper,
            help="PCA (scikit-learn) is the default; UMAP is offered when umap-learn is installed.",
        )
        try:
            coords = _coords(split, tuple(joined["id"]), method, tuple(joined["text"].astype(str)))
            frame = explore.map_frame(joined, coords, colour)
            event = st.altair_chart(
                charts.embedding_map(frame, colour),
                on_select="rerun",
                selection_mode="brush",
                key=scoped("exp_map"),
                width="stretch",
            )
            box = (event.get("selection") or {}).get("brush") if event else None
            shown = explore.in_box(frame, box)
            other = (
                f" (grey: the other {frame['colour'].eq('other').sum()} rows' rarer categories)"
                if frame["colour"].eq("other").any()
                else ""
            )
            st.caption(
                f"{len(frame)} evaluation examples, embedded by the bundled encoder and projected by {method.upper()}{other}. "
                "Drag a box on the map to list its examples."
            )
            columns = ["id", "text", "label", "colour"] + [c for n in run_names for c in (f"pred@{n}", f"correct@{n}")]
            st.dataframe(shown[columns], hide_index=True, width="stretch", height=320, key=scoped("exp_map_rows"))
            st.caption(f"{len(shown)} of {len(frame)} examples" + (" inside the box." if box else "."))
            if len(shown) and len(chosen) >= 2:  # a point of the map, in Compare's error browser with these runs as A and B
                texts = dict(zip(shown["id"].astype(str), shown["text"].astype(str), strict=True))
                picked = st.selectbox(
                    "Look at one of these examples in Compare's error browser",
                    list(texts),
                    key=scoped("exp_map_pick"),
                    format_func=lambda i: f"{i}: {texts[i][:90]}",
                )
                if st.button("Open in Compare", key=scoped("exp_to_compare")):
                    open_in_compare(list(chosen), split, picked)
        except Exception as e:
            show_error(e)
    else:  # widgets not drawn lose their state: keep the map's choices for the tab's return
        for key in map(scoped, ("exp_colour", "exp_method")):
            if key in st.session_state:
                st.session_state[key] = st.session_state[key]

with robust_tab:
    c1, c2 = st.columns([2, 1])
    kinds_chosen = c1.multiselect(
        "Perturbations", list(explore.PERTURBATIONS), default=["typos", "case", "punctuation"], key=scoped("exp_perturbations")
    )
    limit = int(
        c2.number_input(
            "Examples (a seeded sample)",
            1,
            len(joined),
            min(100, len(joined)),
            key=scoped("exp_max_examples"),
            help="Every run predicts each perturbed text again; prompt runs are slow.",
        )
    )
    st.caption(
        "Fine-tuned runs predict with their saved model, prompt runs with their own prompt and demonstrations. Unchanged "
        "predictions: the share of perturbed texts whose prediction stayed the same."
    )
    if st.button("Perturb and predict again", key=scoped("exp_run_robustness"), disabled=not kinds_chosen):
        try:
            rows = joined.sample(limit, random_state=0).sort_index() if limit < len(joined) else joined
            with st.spinner("Predicting perturbed texts…"):
                predictors = {n: explore.run_predictor(p) for n, p in zip(run_names, chosen, strict=True)}
                st.session_state[scoped(ROBUSTNESS)] = explore.robustness(
                    predictors, rows, kinds_chosen, sentiment=explore.is_sentiment(labels)
                )
        except Exception as e:
            show_error(e)
    table = st.session_state.get(scoped(ROBUSTNESS))
    if table is not None and set(table["run"]) <= set(run_names):
        st.dataframe(explore.format_robustness(table), hide_index=True, width="stretch", key=scoped("exp_robustness_table"))

if len(chosen) >= 2:
    sections = explore.report_sections(
        st.session_state.get(scoped("exp_slices_report")), st.session_state.get(scoped(ROBUSTNESS))
    )
    if st.toggle("Prepare the HTML report with these slices and robustness", key=scoped("exp_report")):
        try:
            html = report.build_report(_comparison(paths, stamps), sections=sections, more_caveats=label_error_caveats(split))
            st.download_button(
                "HTML report (opens offline)", html, file_name="comparison.html", mime="text/html", key=scoped("exp_html")
            )
        except Exception as e:
            show_error(e)
