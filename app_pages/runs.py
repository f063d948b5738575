"""Runs page: every run folder in the registry; filter, inspect, rename, delete, rebuild the index."""

import json

import pandas as pd
import streamlit as st

from core import jobs, verdict
from core.errors import UserError
from core.runs import STATES, RunDir, RunRegistry, runs_root
from ui import state

st.title("Runs")
root = runs_root()
st.caption(f"Every prompting and fine-tuning run saved in `{root}`. The folders are the truth; the index is rebuilt from them.")

try:
    registry = RunRegistry(root)
    jobs.refresh_all(root)  # a job whose process died is marked failed before it is listed
except Exception as exc:
    state.show_error(exc)
    st.stop()

c1, c2, c3, c4 = st.columns([2, 1, 2, 1])
text = c1.text_input("Filter", "", placeholder="name, model, method or dataset", key="runs_filter")
kind = c2.selectbox("Kind", ["all", "prompt", "finetune"], key="runs_kind")
states = c3.multiselect("State", [*STATES, "broken"], key="runs_states")
if c4.button("Rebuild index", key="runs_rebuild", help="Throw the index away and re-read every run folder"):
    try:
        registry.rebuild()
        st.toast("Index rebuilt from the run folders.")
    except Exception as exc:
        state.show_error(exc)

runs = registry.search(text, None if kind == "all" else kind)
if states:
    runs = runs[runs["state"].isin(states)].reset_index(drop=True)
if runs.empty:
    st.info("No runs yet: start one on the Prompting or Fine-tune page, or from the command line (python -m core finetune ...).")
    st.stop()

broken = int((runs["state"] == "broken").sum())
if broken:
    st.warning(f"{broken} run(s) are broken (a file is missing or corrupt); they are listed, and can be deleted.")
flags = [verdict.run_flags(RunDir(root / n).config, RunDir(root / n).metrics) for n in runs["name"]]
runs.insert(int(runs.columns.get_loc("state")) + 1, "warnings", flags)
if any(flags):
    st.warning("Runs marked 'time budget' stopped before their epochs were done; 'below majority' ones do not beat always "
               "answering the most frequent label on macro-F1. Their scores say little about the method.")
st.dataframe(
    runs.drop(columns=["path", "eval_sha256"]).assign(created=lambda d: pd.to_datetime(d["created"], unit="s")),
    hide_index=True, width="stretch",
    column_config={"accuracy": st.column_config.NumberColumn(format="%.3f"),
                   "macro_f1": st.column_config.NumberColumn("macro-F1", format="%.3f")},
)

st.subheader("Manage a run")
name = st.selectbox("Run", list(runs["name"]), key="runs_selected")
run = RunDir(root / name)
status = run.status
col_a, col_b = st.columns(2)
with col_a:
    new_name = st.text_input("New name", name, key=f"runs_new_name_{name}")
    if st.button("Rename", key="runs_rename", disabled=new_name.strip() in ("", name)):
        try:
            registry.rename(name, new_name.strip())
            st.success(f"Renamed {name} to {new_name.strip()}.")
            st.rerun()
        except UserError as exc:
            state.show_error(exc)
with col_b:
    sure = st.checkbox(f"Yes, delete {name} and its files", key=f"runs_confirm_{name}")
    if st.button("Delete", key="runs_delete", disabled=not sure, type="primary"):
        try:
            registry.delete(name)
            st.success(f"Deleted {name}.")
            st.rerun()
        except UserError as exc:
            state.show_error(exc)
if status.get("error"):
    (st.warning if status.get("state") == "cancelled" else st.error)(status["error"])
with st.expander("config.json and status.json"):
    st.code(json.dumps({"config": run.config, "status": status}, indent=2, default=str), language="json")
