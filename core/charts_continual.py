"""Altair charts of continual runs: the accuracy matrix, each task across the steps, strategies side by side."""

from __future__ import annotations

import altair as alt
import pandas as pd


def accuracy_heatmap(matrix: pd.DataFrame) -> alt.Chart:
    """Rows: after which training step (the initial model first); columns: the task evaluated; cells: accuracy."""
    order = list(dict.fromkeys(matrix["after"]))
    base = alt.Chart(matrix).encode(
        x=alt.X("task:N", title="evaluated on", sort=None),
        y=alt.Y("after:N", title="after training step", sort=order),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("accuracy:Q", scale=alt.Scale(domain=[0, 1], scheme="blues"), title="accuracy"),
        tooltip=["after", "task", alt.Tooltip("accuracy:Q", format=".3f")],
    )
    text = base.mark_text(fontSize=14).encode(
        text=alt.Text("accuracy:Q", format=".2f"),
        color=alt.condition(alt.datum.accuracy > 0.6, alt.value("white"), alt.value("black")),
    )
    return (cells + text).properties(width=alt.Step(90), height=alt.Step(40), title="Accuracy matrix")


def task_lines(matrix: pd.DataFrame) -> alt.Chart:
    """Each task's accuracy across the steps (step 0 = the initial model): a falling line is forgetting."""
    return (
        alt.Chart(matrix)
        .mark_line(point=True)
        .encode(
            x=alt.X("step:O", title="after training step (0 = before training)"),
            y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), title="accuracy"),
            color=alt.Color("task:N", title="task", sort=None),
            tooltip=["after", "task", alt.Tooltip("accuracy:Q", format=".3f")],
        )
        .properties(width=360, height=240, title="Each task across the steps")
    )


def strategies_chart(strategies: pd.DataFrame) -> alt.Chart:
    """Final accuracy on every task per run (strategy), the same sequence for all: bars grouped by task."""
    task_cols = [c for c in strategies.columns if c[:1].isdigit() and ". " in c]
    long = strategies.melt(id_vars=["run", "strategy"], value_vars=task_cols, var_name="task", value_name="accuracy")
    long["who"] = long["strategy"] + " · " + long["run"]
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("who:N", title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), title="accuracy after the last step"),
            color=alt.Color("strategy:N", title="strategy"),
            column=alt.Column("task:N", title="evaluated on", sort=task_cols),
            tooltip=["run", "strategy", "task", alt.Tooltip("accuracy:Q", format=".3f")],
        )
        .properties(width=alt.Step(28), height=220)
    )
