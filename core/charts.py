"""Altair chart builders: pure functions from DataFrames to alt.Chart, used by the pages and the HTML report."""

from __future__ import annotations

import altair as alt
import pandas as pd

MAX_MATRIX_LABELS = 12  # above this many labels a confusion matrix is unreadable; pages show the most confused pairs
TOP_CLASSES = 8  # classes a per-example probability chart shows (the most probable, plus the true label)

# ---- data and tokenization -------------------------------------------------------------------


def label_distribution(summary: pd.DataFrame, labels: list[str] | None = None, top: int = 20) -> alt.Chart:
    """Horizontal bars of rows per label, stacked by split, most frequent label first; beyond `top` labels only the
    top/2 most and top/2 least frequent are drawn, around an empty row 'K more labels', so the chart stays readable at
    77 labels and still shows how far the classes are apart (summary: split, label, count). labels is accepted for the
    callers' sake; the order is by count."""
    totals = summary.groupby("label")["count"].sum().sort_values(ascending=False, kind="stable")
    kept = list(totals.index)
    data = summary
    if len(totals) > top:
        gap = f"({len(totals) - top} more labels)"
        kept = [*totals.index[: top // 2], gap, *totals.index[len(totals) - (top - top // 2) :]]
        data = pd.concat(
            [
                summary[summary["label"].isin(kept)],
                pd.DataFrame({"split": [summary["split"].iloc[0]], "label": [gap], "count": [0]}),
            ]
        )
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", title=None, sort=kept, axis=alt.Axis(labelLimit=260)),
            x=alt.X("count:Q", title="rows", stack=True),
            color=alt.Color("split:N", sort=["train", "validation", "test"]),
            order=alt.Order("split:N"),
            tooltip=["label", "split", "count"],
        )
        .properties(height=max(160, 26 * len(kept)))
    )


def length_histogram(lengths: pd.DataFrame, max_length: int | None = None, max_colours: int = 10) -> alt.Chart:
    """Histogram of text length in tokens (lengths: label, tokens), binned here so the chart carries about 40 bars of
    counts, not one row per text; one colour per label up to max_colours labels, else one colour; a rule at max_length."""
    tokens = lengths["tokens"].to_numpy()
    low = int(tokens.min()) if len(tokens) else 0
    width = max(1, -(-(int(tokens.max()) - low + 1) // 40)) if len(tokens) else 1
    coloured = lengths["label"].nunique() <= max_colours
    binned = (
        lengths.assign(start=(tokens - low) // width * width + low)
        .groupby(["label", "start"] if coloured else ["start"])
        .size()
        .rename("texts")
        .reset_index()
    )
    binned["end"] = binned["start"] + width
    hist = (
        alt.Chart(binned)
        .mark_bar(opacity=0.6)
        .encode(
            x=alt.X("start:Q", title="tokens per text"),
            x2="end:Q",
            y=alt.Y("texts:Q", title="texts", stack=None),
            y2=alt.datum(0),  # without a baseline, x/x2 make Vega-Lite draw each bar as a thin dash at its count
            **({"color": alt.Color("label:N")} if coloured else {}),
            tooltip=(["label"] if coloured else [])
            + [alt.Tooltip("start:Q", title="from"), alt.Tooltip("end:Q", title="below"), "texts"],
        )
        .properties(height=260)
    )
    if max_length:
        rule = alt.Chart(pd.DataFrame({"start": [max_length]})).mark_rule(color="red", strokeDash=[4, 4]).encode(x="start:Q")
        return hist + rule
    return hist


# ---- compare/attention ------------------------------------------------------------------------


def metric_intervals(metrics: pd.DataFrame) -> alt.Chart:
    """Accuracy and macro-F1 per run with bootstrap 95% interval bars (metrics: Comparison.metrics)."""
    rows = [
        {"run": r["run"], "metric": key, "value": r[key], "low": r[f"{key}_low"], "high": r[f"{key}_high"]}
        for _, r in metrics.iterrows()
        for key in ("accuracy", "macro_f1")
    ]
    base = alt.Chart(pd.DataFrame(rows)).encode(y=alt.Y("run:N", title=None, sort=None), color=alt.Color("run:N", legend=None))
    bars = base.mark_rule(strokeWidth=3).encode(
        x=alt.X("low:Q", title="value (95% bootstrap interval)", scale=alt.Scale(domain=[0, 1])), x2="high:Q"
    )
    points = base.mark_point(filled=True, size=70).encode(
        x="value:Q",
        tooltip=[
            "run",
            "metric",
            alt.Tooltip("value:Q", format=".3f"),
            alt.Tooltip("low:Q", format=".3f"),
            alt.Tooltip("high:Q", format=".3f"),
        ],
    )
    return (
        (bars + points).properties(height=30 * max(len(metrics), 2), width=260).facet(column=alt.Column("metric:N", title=None))
    )


def confusion_heatmaps(confusions: pd.DataFrame, labels: list[str]) -> alt.Chart:
    """Confusion matrices of several runs side by side, one shared colour scale (confusions: run, true, pred, count)."""
    top = int(confusions["count"].max()) if len(confusions) else 1
    base = alt.Chart(confusions).encode(
        x=alt.X("pred:N", sort=labels, title="predicted"),
        y=alt.Y("true:N", sort=labels, title="true"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("count:Q", scale=alt.Scale(domain=[0, max(top, 1)], scheme="blues"), title="examples"),
        tooltip=["run", "true", "pred", "count"],
    )
    text = base.mark_text(fontSize=12).encode(
        text="count:Q", color=alt.condition(alt.datum.count > top / 2, alt.value("white"), alt.value("black"))
    )
    return (cells + text).properties(width=200, height=200).facet(column=alt.Column("run:N", title=None, sort=None))


def reliability_diagram(reliability: pd.DataFrame, eces: dict[str, float] | None = None) -> alt.Chart:
    """Accuracy against mean confidence per confidence bin, one line per run, with the diagonal of perfect calibration."""
    data = reliability.copy()
    if eces:
        data["run"] = data["run"].map(lambda r: f"{r} (ECE {eces.get(r, float('nan')):.3f})")
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]})).mark_line(color="gray", strokeDash=[4, 4]).encode(x="x:Q", y="y:Q")
    )
    lines = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("confidence:Q", scale=alt.Scale(domain=[0, 1]), title="mean confidence in bin"),
            y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), title="accuracy in bin"),
            color=alt.Color("run:N", title=None),
            tooltip=["run", alt.Tooltip("confidence:Q", format=".3f"), alt.Tooltip("accuracy:Q", format=".3f"), "count"],
        )
    )
    return (diagonal + lines).properties(height=300, width=360)


def efficiency_series(efficiency: pd.DataFrame) -> pd.DataFrame:
    """One row per series and size: mean, min and max macro-F1 over seeds (series: 'prompt · model' or 'method · model')."""
    series = efficiency["kind"].where(efficiency["kind"] == "prompt", efficiency["method"].astype(str))
    data = efficiency.assign(series=series + " · " + efficiency["model"].astype(str))
    out = data.groupby(["series", "n_train_examples"], as_index=False).agg(
        macro_f1=("macro_f1", "mean"), low=("macro_f1", "min"), high=("macro_f1", "max"), runs=("run", "count")
    )
    return out.sort_values(["series", "n_train_examples"]).reset_index(drop=True)


def efficiency_crossovers(series: pd.DataFrame) -> pd.DataFrame:
    """Where each trained series first beats the best prompt score: series, n_train_examples, macro_f1 (none without prompts)."""
    is_prompt = series["series"].str.startswith("prompt ·")
    if not is_prompt.any():
        return series.iloc[0:0][["series", "n_train_examples", "macro_f1"]]
    best_prompt = series.loc[is_prompt, "macro_f1"].max()
    above = series[~is_prompt & (series["macro_f1"] > best_prompt)]
    return (
        above.sort_values("n_train_examples")
        .groupby("series", as_index=False)
        .first()[["series", "n_train_examples", "macro_f1"]]
    )


def efficiency_chart(efficiency: pd.DataFrame) -> alt.Chart:
    """Macro-F1 against labelled training examples (symlog x): a line per family and model at the seeds' mean, a bar from the
    worst to the best seed, and a ring where a trained family first beats the best prompt (efficiency: efficiency_frame)."""
    data = efficiency_series(efficiency)
    x = alt.X("n_train_examples:Q", scale=alt.Scale(type="symlog"), title="labelled training examples (shots or rows)")
    color = alt.Color("series:N", title=None)
    lines = (
        alt.Chart(data)
        .mark_line(point=alt.OverlayMarkDef(size=60))
        .encode(
            x=x,
            y=alt.Y("macro_f1:Q", scale=alt.Scale(domain=[0, 1]), title="macro-F1 (mean over seeds)"),
            color=color,
            tooltip=[
                "series",
                "n_train_examples",
                alt.Tooltip("macro_f1:Q", format=".3f"),
                alt.Tooltip("low:Q", format=".3f"),
                alt.Tooltip("high:Q", format=".3f"),
                "runs",
            ],
        )
    )
    spread = alt.Chart(data).mark_rule(strokeWidth=2, opacity=0.6).encode(x=x, y="low:Q", y2="high:Q", color=color)
    crossings = (
        alt.Chart(efficiency_crossovers(data).assign(note="first beats the best prompt"))
        .mark_point(size=260, shape="circle", filled=False, strokeWidth=2, color="black")
        .encode(x=x, y="macro_f1:Q", tooltip=["series", "n_train_examples", alt.Tooltip("macro_f1:Q", format=".3f"), "note"])
    )
    return (spread + lines + crossings).properties(height=300)


def class_probabilities(probs: pd.DataFrame, true_label: str | None = None, top: int = TOP_CLASSES) -> alt.Chart:
    """Each run's probability per class for one example (probs: run, label, probability): the true label and the `top`
    classes most probable under any run, most probable first, so 77 labels do not give 77 mostly empty rows."""
    best = probs.groupby("label")["probability"].max().sort_values(ascending=False, kind="stable")
    kept = list(best.index[:top]) + ([true_label] if true_label in best.index[top:] else [])
    shown = probs[probs["label"].isin(kept)]
    runs = shown["run"].nunique()
    return (
        alt.Chart(shown)
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("label:N", title=None, sort=kept, axis=alt.Axis(labelLimit=260)),
            yOffset=alt.YOffset("run:N"),
            color=alt.Color("run:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=400)),
            tooltip=["run", "label", alt.Tooltip("probability:Q", format=".3f")],
        )
        # height is the bars' alone: Streamlit's default autosize ("fit") squeezed the axis and legend into it too, leaving
        # 3 labels about 14 px each, and Vega hid every other label name; the legend goes below, off a narrow column's width
        .properties(height=(16 + 12 * runs) * max(len(kept), 1), autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
    )


def attention_heatmap(weights: pd.DataFrame) -> alt.Chart:
    """One head's attention matrix (weights: query, key, weight; tokens labelled 'i token' so order and repeats survive)."""
    order = list(dict.fromkeys(weights["key"]))
    size = min(18 * len(order), 560)
    return (
        alt.Chart(weights)
        .mark_rect()
        .encode(
            x=alt.X("key:N", sort=order, title="attended-to token"),
            y=alt.Y("query:N", sort=order, title="attending token"),
            color=alt.Color("weight:Q", scale=alt.Scale(domain=[0, 1], scheme="viridis")),
            tooltip=["query", "key", alt.Tooltip("weight:Q", format=".3f")],
        )
        .properties(width=size, height=size)
    )


def head_entropy_chart(entropy: pd.DataFrame) -> alt.Chart:
    """Mean attention entropy (bits) per layer and head (entropy: layer, head, entropy); low = focused heads."""
    return (
        alt.Chart(entropy)
        .mark_rect()
        .encode(
            x=alt.X("head:O"),
            y=alt.Y("layer:O", sort="descending"),
            color=alt.Color("entropy:Q", scale=alt.Scale(scheme="magma"), title="entropy (bits)"),
            tooltip=["layer", "head", alt.Tooltip("entropy:Q", format=".2f")],
        )
        .properties(height=min(14 * entropy["layer"].nunique() + 40, 460))
    )


def special_attention_chart(special: pd.DataFrame) -> alt.Chart:
    """Share of attention paid to special tokens and to the first token, per layer (special: layer, target, share)."""
    return (
        alt.Chart(special)
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:Q", title="layer"),
            y=alt.Y("share:Q", scale=alt.Scale(domain=[0, 1]), title="share of attention"),
            color=alt.Color("target:N", title=None),
            tooltip=["layer", "target", alt.Tooltip("share:Q", format=".3f")],
        )
        .properties(height=240)
    )


def saliency_chart(saliency: pd.DataFrame) -> alt.Chart:
    """Attribution per token in text order, red for evidence for the target, blue against (saliency: position, token, score)."""
    data = saliency.assign(label=saliency["position"].astype(str) + " " + saliency["token"])
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("label:N", sort=list(data["label"]), title=None),
            y=alt.Y("score:Q", title="attribution"),
            color=alt.condition(alt.datum.score > 0, alt.value("#d62728"), alt.value("#1f77b4")),
            tooltip=["position", "token", alt.Tooltip("score:Q", format=".4f")],
        )
        .properties(height=220)
    )


# ---- prompting --------------------------------------------------------------------------------


def prompt_confusion_matrix(matrix: list[list[int]], labels: list[str]) -> alt.Chart:
    """One run's confusion matrix as a heatmap with counts (matrix: rows true, columns predicted, in label order)."""
    cells = pd.DataFrame(
        [{"true": t, "predicted": p, "examples": int(matrix[i][j])} for i, t in enumerate(labels) for j, p in enumerate(labels)]
    )
    top = max(int(cells["examples"].max()) if len(cells) else 1, 1)
    base = alt.Chart(cells).encode(
        x=alt.X("predicted:N", sort=labels, title="predicted"), y=alt.Y("true:N", sort=labels, title="true")
    )
    rect = base.mark_rect().encode(
        color=alt.Color("examples:Q", scale=alt.Scale(domain=[0, top], scheme="blues"), title="examples"),
        tooltip=["true", "predicted", "examples"],
    )
    text = base.mark_text(fontSize=13).encode(
        text="examples:Q", color=alt.condition(alt.datum.examples > top / 2, alt.value("white"), alt.value("black"))
    )
    side = min(70 * len(labels), 420)
    return (rect + text).properties(width=side, height=side)


def prompt_grid(grid: pd.DataFrame) -> alt.Chart:
    """Accuracy per shot count: one dot per seed, the mean as a line with a ±1 std band (grid: variant, shots, seed, accuracy)."""
    base = alt.Chart(grid).encode(x=alt.X("shots:O", title="shots"), color=alt.Color("variant:N", title=None))
    dots = base.mark_circle(size=60, opacity=0.6).encode(
        y=alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])),
        tooltip=["variant", "shots", "seed", alt.Tooltip("accuracy:Q", format=".3f")],
    )
    mean = base.mark_line(point=True).encode(y="mean(accuracy):Q")
    band = base.mark_errorband(extent="stdev", opacity=0.2).encode(y="accuracy:Q")
    return (band + mean + dots).properties(height=260)


# ---- fine-tuning ------------------------------------------------------------------------------


def training_curves(history: pd.DataFrame) -> alt.Chart:
    """Training loss and dev macro-F1 against optimizer step, side by side (history: history.jsonl rows)."""
    cols = set(history.columns) if history is not None else set()
    loss = history[["step", "loss"]].dropna() if {"step", "loss"} <= cols else pd.DataFrame({"step": [], "loss": []})
    f1 = (
        history[["step", "epoch", "eval_macro_f1"]].dropna()
        if {"step", "epoch", "eval_macro_f1"} <= cols
        else pd.DataFrame({"step": [], "epoch": [], "eval_macro_f1": []})
    )
    # both charts on one whole-number step axis from 0, so one dev point reads "13", not "13.000000" alone on its axis
    last = max([1.0, *loss["step"].tolist(), *f1["step"].tolist()])
    x = alt.X("step:Q", title="step", scale=alt.Scale(domain=[0, last], padding=8), axis=alt.Axis(format="d", tickMinStep=1))
    loss_chart = (
        alt.Chart(loss, title="training loss")
        .mark_line(point=len(loss) < 30)
        .encode(
            x=x,
            y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False)),
            tooltip=["step", alt.Tooltip("loss:Q", format=".4f")],
        )
        .properties(height=240, width=360)
    )
    f1_chart = (
        alt.Chart(f1, title="dev macro-F1")
        .mark_line(point=True, color="#e45756")
        .encode(
            x=x,
            y=alt.Y("eval_macro_f1:Q", title="macro-F1", scale=alt.Scale(domain=[0, 1])),
            tooltip=["step", alt.Tooltip("epoch:Q", format=".2f"), alt.Tooltip("eval_macro_f1:Q", format=".4f")],
        )
        .properties(height=240, width=360)
    )
    return alt.hconcat(loss_chart, f1_chart)


# ---- applying a run to new data ----------------------------------------------------------------


def label_share_chart(share: pd.DataFrame, flags: pd.DataFrame | None = None, period: str = "D") -> alt.Chart:
    """Each label's share of the rows per day or week (share: period, label, count, total, share), with the periods the
    surge rule flagged (flags: period, share, flagged) marked in red."""
    unit = "day" if period == "D" else "week of"
    lines = (
        alt.Chart(share)
        .mark_line(point=True)
        .encode(
            x=alt.X("period:T", title=unit),
            y=alt.Y("share:Q", title="share of rows", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("label:N"),
            tooltip=[alt.Tooltip("period:T", title=unit), "label", alt.Tooltip("share:Q", format=".1%"), "count", "total"],
        )
    )
    if flags is None or not flags["flagged"].any():
        return lines.properties(height=320)
    marks = (
        alt.Chart(flags[flags["flagged"]])
        .mark_rule(color="red", strokeDash=[4, 3])
        .encode(
            x="period:T",
            tooltip=[
                alt.Tooltip("period:T", title="flagged"),
                alt.Tooltip("share:Q", format=".1%"),
                alt.Tooltip("jump:Q", title="points above trailing mean", format="+.1f"),
            ],
        )
    )
    return (marks + lines).properties(height=320)


def embedding_map(frame: pd.DataFrame, title: str, brush_name: str = "brush") -> alt.Chart:
    """The evaluation split as points (x, y from explore.map_frame) coloured by 'colour', with an interval brush (brush_name)
    whose box the page reads back to filter a table; grey for 'other'; text in the tooltip only."""
    brush = alt.selection_interval(name=brush_name, encodings=["x", "y"])
    domain = [c for c in frame["colour"].value_counts().index if c != "other"] + (
        ["other"] if (frame["colour"] == "other").any() else []
    )
    palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#eeca3b", "#17becf"]
    colours = palette[: len([d for d in domain if d != "other"])] + (["#cfcfcf"] if "other" in domain else [])
    return (
        alt.Chart(frame[["x", "y", "colour", "id", "label", "text"]])
        .mark_circle(size=18, opacity=0.7)
        .encode(
            x=alt.X("x:Q", axis=None),
            y=alt.Y("y:Q", axis=None),
            color=alt.Color("colour:N", title=title, scale=alt.Scale(domain=domain, range=colours), sort=domain),
            tooltip=["id:N", "label:N", "colour:N", alt.Tooltip("text:N")],
        )
        .add_params(brush)
        .properties(height=480)
    )
