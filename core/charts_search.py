"""Altair charts of a hyperparameter search (core/search.py), from the data it writes in its folder: trials.csv
(trial, state, dev_macro_f1, seconds, run, pruned_at, param_*) and importance.json. The Fine-tune page and the HTML
report draw them."""

from __future__ import annotations

import math
import re
from pathlib import Path

import altair as alt
import pandas as pd

from core.runs import read_json

STATES = ["COMPLETE", "PRUNED", "FAIL", "RUNNING"]
TRIAL_RUN = re.compile(r"(.+)\.trial\d+")  # a trial's run NAME.trialK (core/search.py names them so)


def params_of(trials: pd.DataFrame) -> list[str]:
    return [c for c in trials.columns if c.startswith("param_")]


def trial_history(trials: pd.DataFrame) -> alt.Chart:
    """Dev macro-F1 per trial (pruned trials at their last reported value), coloured by state, and the best so far."""
    done = trials[trials["state"] == "COMPLETE"].sort_values("trial")
    best = done.assign(best=done["dev_macro_f1"].cummax())
    tooltip = ["trial", "state", alt.Tooltip("dev_macro_f1:Q", format=".4f"), "seconds", *params_of(trials)]
    points = (
        alt.Chart(trials.dropna(subset=["dev_macro_f1"]) if "dev_macro_f1" in trials else trials)
        .mark_circle(size=70)
        .encode(
            x=alt.X("trial:Q", title="trial", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("dev_macro_f1:Q", title="dev macro-F1", scale=alt.Scale(zero=False)),
            color=alt.Color("state:N", scale=alt.Scale(domain=STATES)),
            tooltip=tooltip,
        )
    )
    line = alt.Chart(best).mark_line(interpolate="step-after", color="gray").encode(x="trial:Q", y="best:Q")
    return (line + points).properties(title="Trials: dev macro-F1 (line: best so far)", height=260)


def importance_chart(importance: dict[str, float]) -> alt.Chart:
    """Bars of Optuna's parameter importances (fANOVA; computed only from 2 complete trials on)."""
    frame = pd.DataFrame({"setting": list(importance), "importance": list(importance.values())})
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("setting:N", sort="-x", title=None),
            x=alt.X("importance:Q", title="importance (share of dev macro-F1 variance)"),
            tooltip=["setting", alt.Tooltip("importance:Q", format=".3f")],
        )
        .properties(title="Which settings mattered", height=max(100, 28 * len(frame)))
    )


def scaled(values: pd.Series) -> pd.Series:
    """A setting's values on [0, 1]: numbers by rank of their (log, for positive ranges spanning 10x) value, text by order."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        v = numeric.astype(float)
        if (v > 0).all() and v.max() / v.min() >= 10:
            v = v.map(math.log10)
    else:
        order = {x: i for i, x in enumerate(sorted(values.astype(str).unique()))}
        v = values.astype(str).map(order).astype(float)
    span = v.max() - v.min()
    return (v - v.min()) / span if span else v * 0 + 0.5


def parallel_coordinates(trials: pd.DataFrame) -> alt.Chart:
    """One line per finished trial across its settings (each scaled to [0, 1]) and its dev macro-F1, coloured by it."""
    done = trials[trials["state"].isin(["COMPLETE", "PRUNED"])].reset_index(drop=True)
    columns = [*params_of(done), "dev_macro_f1"]
    long = (
        pd.concat(
            [
                pd.DataFrame(
                    {
                        "trial": done["trial"],
                        "axis": c.removeprefix("param_"),
                        "position": scaled(done[c]),
                        "value": done[c].astype(str),
                        "dev_macro_f1": done["dev_macro_f1"],
                        "state": done["state"],
                    }
                )
                for c in columns
            ],
            ignore_index=True,
        )
        if len(done)
        else pd.DataFrame(columns=["trial", "axis", "position", "value", "dev_macro_f1", "state"])
    )
    order = [c.removeprefix("param_") for c in columns]
    return (
        alt.Chart(long)
        .mark_line(point=True, opacity=0.7)
        .encode(
            x=alt.X("axis:N", sort=order, title=None),
            y=alt.Y("position:Q", title="low → high", axis=alt.Axis(labels=False)),
            detail="trial:N",
            color=alt.Color("dev_macro_f1:Q", scale=alt.Scale(scheme="viridis"), title="dev macro-F1"),
            strokeDash=alt.StrokeDash("state:N", scale=alt.Scale(domain=["COMPLETE", "PRUNED"])),
            tooltip=["trial", "axis", "value", alt.Tooltip("dev_macro_f1:Q", format=".4f")],
        )
        .properties(title="Settings of every trial (parallel coordinates)", height=280)
    )


def search_of(run_path: Path) -> Path | None:
    """The folder of the search a run came from: its own when it is a search's result run, its search's when it is one of
    the trials (NAME.trialK); None for any other run, or a search that has not written its trials yet."""
    run_path = Path(run_path)
    trial = TRIAL_RUN.fullmatch(run_path.name)
    for folder in [run_path, *([run_path.parent / trial.group(1)] if trial else [])]:
        if (folder / "trials.csv").is_file():
            return folder
    return None


def search_charts(folder: Path) -> list[alt.Chart]:
    """A search's charts as the Fine-tune page draws them: trial history, importances (once known), parallel coordinates."""
    trials = pd.read_csv(Path(folder) / "trials.csv")
    importance = read_json(Path(folder) / "importance.json") or {}
    return [trial_history(trials), *([importance_chart(importance)] if importance else []), parallel_coordinates(trials)]
