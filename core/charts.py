"""Altair chart builders: pure functions from DataFrames to alt.Chart, used by the pages and the HTML report."""

from __future__ import annotations

import altair as alt
import pandas as pd

# ---- data and tokenization -------------------------------------------------------------------


def label_distribution(summary: pd.DataFrame, labels: list[str] | None = None) -> alt.Chart:
    """Grouped bars of rows per label, one colour per split (summary: split, label, count)."""
    return (
        alt.Chart(summary)
        .mark_bar()
        .encode(
            x=alt.X("label:N", title=None, sort=labels),
            xOffset=alt.XOffset("split:N", sort=["train", "validation", "test"]),
            y=alt.Y("count:Q", title="rows"),
            color=alt.Color("split:N", sort=["train", "validation", "test"]),
            tooltip=["split", "label", "count"],
        )
        .properties(height=260)
    )


def length_histogram(lengths: pd.DataFrame, max_length: int | None = None) -> alt.Chart:
    """Histogram of text length in tokens, one colour per label (lengths: label, tokens); a rule at max_length."""
    hist = (
        alt.Chart(lengths)
        .mark_bar(opacity=0.6)
        .encode(
            x=alt.X("tokens:Q", bin=alt.Bin(maxbins=40), title="tokens per text"),
            y=alt.Y("count():Q", title="texts", stack=None),
            color=alt.Color("label:N"),
            tooltip=["label", alt.Tooltip("count():Q", title="texts")],
        )
        .properties(height=260)
    )
    if max_length:
        rule = alt.Chart(pd.DataFrame({"tokens": [max_length]})).mark_rule(color="red", strokeDash=[4, 4]).encode(x="tokens:Q")
        return hist + rule
    return hist
