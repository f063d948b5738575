"""The job watcher every page that starts background jobs shares (Prompting, Fine-tune, Continual).

It finds the job to show from the run folders (an active job of the page's kind on this dataset, so a reload or another
tab reattaches), else the runs last started here; shows each run's progress and ETA, a Cancel button while it runs, and
its final state in one sentence; the page adds what it shows of a run (curves, metrics, matrices) through `details`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from core import jobs
from core.runs import RunDir, evaluated_on, reservation
from ui import state

UNITS = {"prompt": "example", "finetune": "step", "continual": "step", "predict": "row"}  # what status.json's done/total count


def job_key(kind: str) -> str:
    """The session key (dataset-scoped) holding the run names of the job of this kind last started or found here."""
    return state.scoped(f"{kind}_job")


def remember(kind: str, names: list[str]) -> None:
    """Watch these runs (one job: a run, or a grid of runs) from now on; call after jobs.launch."""
    st.session_state[job_key(kind)] = list(names)


def job_kind(run: RunDir) -> str:
    """'prompt', 'finetune' or 'continual' for a run, from its config or (before it has one) from the launch arguments."""
    return run.config.get("kind") or ((reservation(run.path).get("argv") or ["?"])[0])


def find(kind: str, root: Path, fingerprints=None) -> list[RunDir]:
    """The runs to show: an active job of `kind` that was started here or evaluates on one of fingerprints (any, when
    None), found from the run folders and remembered; else the runs of the job remembered here. [] when none."""
    remembered = st.session_state.get(job_key(kind)) or []
    for run in jobs.active_runs(root):
        if job_kind(run) == kind and (run.name in remembered or fingerprints is None or evaluated_on(run.config, fingerprints)):
            names = run.config.get("grid") or ([run.name] if run.name not in remembered else remembered)
            remember(kind, names)  # a job found after a reload stays shown once it has ended
            remembered = names
            break
    return [RunDir(root / name) for name in remembered if (root / name).is_dir()]


def progress_line(kind: str, status: dict) -> tuple[float, str]:
    """(fraction done, words) for a run's status: counts, the continual task, the ETA."""
    run_state = status.get("state", "queued")
    done, total, task, tasks = status.get("done") or 0, status.get("total") or 0, status.get("task"), status.get("tasks")
    words = f"task {task} of {tasks} · " if task and tasks else ""
    if total:
        words += f"{UNITS.get(kind, 'step')} {done} of {total}"  # as core.runs.reached says how far a stopped run got
        if (status.get("of") or 0) > total:
            words += f" (a sample of {status['of']})"
    else:
        words += "starting (loading data and the model)…" if run_state in jobs.ACTIVE_STATES else run_state
    eta = status.get("eta_seconds")
    if run_state in jobs.ACTIVE_STATES and eta is not None:
        words += f" · about {eta:.0f} s left"
    fraction = 1.0 if run_state == "succeeded" else float(status.get("progress") or 0.0)
    if task and tasks:
        fraction = ((task - 1) + fraction) / tasks
    return min(1.0, max(0.0, fraction)), words


def final_sentence(status: dict) -> None:
    """A finished run's state for people: nothing for success (the page shows its results), else why it stopped."""
    if status.get("state") == "cancelled":
        st.warning(state.plain(f"Cancelled. {status.get('error') or ''}"))
    elif status.get("state") not in ("succeeded", *jobs.ACTIVE_STATES):
        st.error(state.plain(status.get("error") or "This run is broken (status.json is missing or corrupt)."))


def panel(kind: str, root: Path, fingerprints=None, details: Callable[[RunDir, dict], None] | None = None) -> None:
    """The watcher, refreshed every two seconds; the whole page reruns once when the job has ended (its results change)."""
    _panel(kind, Path(root), None if fingerprints is None else tuple(fingerprints), details)


@st.fragment(run_every=2.0)
def _panel(kind: str, root: Path, fingerprints, details) -> None:
    shown = find(kind, root, fingerprints)
    if not shown:
        others = [r for r in jobs.active_runs(root) if job_kind(r) != kind]
        if others:
            st.info(
                state.plain(f"A {job_kind(others[0])} job is running ({others[0].name}); a {kind} run can start when it ends.")
            )
        return
    statuses = [jobs.refresh(run) for run in shown]
    active = [run for run, s in zip(shown, statuses) if s.get("state") in jobs.ACTIVE_STATES]
    job_state = "running" if active else statuses[-1].get("state", "broken")
    title = shown[0].name if len(shown) == 1 else f"{shown[0].name} and {len(shown) - 1} more"
    st.subheader(f"Run `{title}` · {state.plain(job_state)}")  # run names have no backtick; the state is read from status.json
    for run, status in zip(shown, statuses):
        fraction, words = progress_line(kind, status)
        if status.get("state") in jobs.ACTIVE_STATES or len(shown) > 1:
            st.progress(fraction, text=state.plain(f"{run.name}: {words}" if len(shown) > 1 else words))
        final_sentence(status)
        if details:
            details(run, status)
    if active and st.button("Cancel", key=state.scoped(f"{kind}_cancel_{shown[0].name}"), type="secondary"):
        with st.spinner("Stopping…"):
            finals = [jobs.cancel(run) for run in active]
        st.warning(state.plain(f"Run {active[0].name} is {finals[0].get('state')}; what it wrote so far is kept."))
    was_active = st.session_state.get(state.scoped(f"{kind}_job_active"))
    st.session_state[state.scoped(f"{kind}_job_active")] = bool(active)
    if was_active and not active:
        st.rerun(scope="app")
