"""Runs page: every run folder in the registry; filter, inspect, rename, delete, rebuild the index."""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from core import export, jobs
from core.comparison import report, verdict
from core.errors import UserError
from core.runs import STATES, RunDir, RunRegistry, of_dataset, parts_phrase, runs_root, state_label
from ui import state

st.title("Runs")
root = runs_root()
st.caption(
    f"Every prompting and fine-tuning run saved in {state.plain(root)}. "
    "The folders are the truth; the index is rebuilt from them."
)

try:
    registry = RunRegistry(root)
    jobs.refresh_all(root)  # a job whose process died is marked failed before it is listed
except Exception as exc:
    state.show_error(exc)
    st.stop()

c1, c2, c3, c4 = st.columns([2, 1, 2, 1])
text = c1.text_input("Filter", "", placeholder="name, model, method or dataset", key=state.scoped("runs_filter"))
kind = c2.selectbox("Kind", ["all", "prompt", "finetune", "continual"], key=state.scoped("runs_kind"))
states = c3.multiselect("State", [*STATES, "broken"], key=state.scoped("runs_states"))
if c4.button("Rebuild index", key=state.scoped("runs_rebuild"), help="Throw the index away and re-read every run folder"):
    try:
        registry.rebuild()
        st.toast("Index rebuilt from the run folders.")
    except Exception as exc:
        state.show_error(exc)

runs = registry.search(text, None if kind == "all" else kind)
scope = state.current_scope()
only_this = scope and st.checkbox(
    "Only runs on the current dataset",
    True,
    key=state.scoped("runs_this_dataset"),
    help="Runs evaluated on one of its splits, and runs that record none (broken or starting); untick for every run.",
)
if only_this:
    runs = of_dataset(runs, scope.fingerprints.values(), keep_unknown=True)
if states:
    runs = runs[runs["state"].isin(states)].reset_index(drop=True)
if runs.empty:
    where = " on this dataset (untick the box above for every run)" if only_this else ""
    st.info(
        f"No runs yet{where}: start one on the Prompting or Fine-tune page, "
        "or from the command line (python -m core finetune ...)."
    )
    st.stop()

broken = int((runs["state"] == "broken").sum())
if broken:
    st.warning(f"{broken} run(s) are broken (a file is missing or corrupt); they are listed, and can be deleted.")
flags = [verdict.run_flags(RunDir(root / n).config, RunDir(root / n).metrics) for n in runs["name"]]
runs.insert(int(runs.columns.get_loc("state")) + 1, "warnings", flags)
if any(flags):
    st.warning(
        "Runs marked 'time budget' stopped before their epochs were done; 'below majority' ones do not beat always "
        "answering the most frequent label on macro-F1. Their scores say little about the method."
    )
table = runs.drop(columns=["path", "eval_sha256"]).assign(
    created=lambda d: pd.to_datetime(d["created"], unit="s"),
    state=[state_label(s, p, k) for s, p, k in zip(runs["state"], runs["path"], runs["kind"], strict=True)],
)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    placeholder="–",  # a stopped run has no scores: a dash, not 'None'
    column_config={
        "accuracy": st.column_config.NumberColumn(format="%.3f"),
        "macro_f1": st.column_config.NumberColumn("macro-F1", format="%.3f"),
    },
)

st.download_button("Runs table (CSV)", report.export_csv(table), file_name="runs.csv", mime="text/csv", key="runs_csv")

st.subheader("Manage a run")
name = st.selectbox("Run", list(runs["name"]), key=state.scoped("runs_selected"))
run = RunDir(root / name)
status = run.status
steps = registry.step_runs(name)  # a continual run's step runs are renamed and deleted with it
col_a, col_b = st.columns(2)
with col_a:
    new_name = st.text_input(
        "New name",
        name,
        key=state.scoped(f"runs_new_name_{name}"),
        help=f"Its step runs ({', '.join(steps)}) are renamed with it." if steps else None,
    )
    if st.button("Rename", key=state.scoped("runs_rename"), disabled=new_name.strip() in ("", name)):
        try:
            registry.rename(name, new_name.strip())
            st.success(state.plain(f"Renamed {name} to {new_name.strip()}."))
            st.rerun()
        except UserError as exc:
            state.show_error(exc)
with col_b:
    # a search's trial runs are deleted with it, as a continual run's step runs are
    with_parts = parts_phrase(name, steps, registry.trial_runs(name), "and")
    sure = st.checkbox(f"Yes, delete {name} and its files{with_parts}", key=state.scoped(f"runs_confirm_{name}"))
    if st.button("Delete", key=state.scoped("runs_delete"), disabled=not sure, type="primary"):
        try:
            registry.delete(name)
            st.success(state.plain(f"Deleted {name}{with_parts}."))
            st.rerun()
        except UserError as exc:
            state.show_error(exc)
exported_key = state.scoped("runs_exported")
exportable = status.get("state") == "succeeded" and run.config.get("kind") in ("finetune", "prompt")
if st.button(
    "Export",
    key=state.scoped("runs_export"),
    disabled=not exportable,
    help=f"Write the run as a folder that standard libraries load without this app (see its README.md), under "
    f"{export.exports_root()}, replacing an earlier export of it, and offer it as a zip. "
    "Finished prompting and fine-tuning runs only."
    if exportable
    else "Only finished prompting and fine-tuning runs export.",
):
    try:
        export.exports_root().mkdir(parents=True, exist_ok=True)
        with st.spinner(f"Exporting {name}..."):
            st.session_state[exported_key] = str(export.export_run(run.path, export.exports_root() / name, force=True))
    except (UserError, OSError) as exc:
        state.show_error(exc)
done = st.session_state.get(exported_key)
if done and Path(done).name == name and (Path(done) / export.MARKER).is_file():
    how = json.loads((Path(done) / export.MARKER).read_text(encoding="utf-8"))["how_to_load"]
    st.success(f"Exported to `{done}`: {how}.")
    st.download_button(
        f"Download {name}.zip",
        export.zip_bytes(Path(done)),
        file_name=f"{name}.zip",
        mime="application/zip",
        key=state.scoped("runs_export_zip"),
    )
if status.get("error"):
    (st.warning if status.get("state") == "cancelled" else st.error)(state.plain(status["error"]))
with st.expander("config.json and status.json"):
    st.code(json.dumps({"config": run.config, "status": status}, indent=2, default=str), language="json")
