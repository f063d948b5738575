"""Self-contained HTML report of a comparison: inline SVG charts and plain tables, no scripts, fonts or images from anywhere.

Altair's inline HTML export needs vl-convert (not installed) and the vega bundles inside Streamlit are
ES-module chunks that cannot run from a file:// page, so the report draws its few charts as SVG itself."""

from __future__ import annotations

import csv
import html
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core.comparison.evaluate import (
    AGREEMENT_CELLS,
    Comparison,
    agreement_table,
    error_cases,
    format_metrics_table,
    has_curve,
    per_class_table,
)
from core.comparison.verdict import format_p, verdict
from core.errors import UserError
from core.runs import write_atomic

PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac", "#eeca3b"]
CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f5f5}code{background:#f5f5f5;padding:.1rem .3rem;font-size:.8rem;word-break:break-all}
.verdict{background:#eef5ee;border-left:4px solid #54a24b;padding:.6rem 1rem;font-size:1rem}.caveat{color:#8a5300}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}.note{color:#666;font-size:.85rem}
svg text{font-family:system-ui,sans-serif;font-size:11px}
"""


def _e(value) -> str:
    """HTML-escaped text of any value."""
    return html.escape("" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value))


def table_html(df: pd.DataFrame, index: bool = False) -> str:
    """A DataFrame as an escaped HTML table."""
    head = ([""] if index else []) + [str(c) for c in df.columns]
    rows = "".join(
        "<tr>" + (f"<th>{_e(i)}</th>" if index else "") + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>"
        for i, row in zip(df.index, df.itertuples(index=False), strict=True)
    )
    return "<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + f"</tr>{rows}</table>"


def _svg(width: int, height: int, body: str, title: str) -> str:
    """An SVG chart element with an accessible title."""
    return (f'<svg class="chart" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img"><title>{_e(title)}</title>{body}</svg>')


def _axis_y01(x0: float, y0: float, h: float, w: float) -> str:
    """Gridlines and tick labels 0..1 for a vertical unit axis with origin (x0, y0) and height h."""
    out = ""
    for t in np.linspace(0, 1, 6):
        y = y0 - t * h
        out += f'<line x1="{x0}" x2="{x0 + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
        out += f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">{t:.1f}</text>'
    return out


def svg_intervals(metrics: pd.DataFrame) -> str:
    """Accuracy and macro-F1 per run as points with 95% interval bars."""
    row_h, left, width = 22, 300, 760
    height = 40 + row_h * 2 * len(metrics) + 30
    plot_w = width - left - 20
    body = ""
    for t in np.linspace(0, 1, 6):
        x = left + t * plot_w
        body += f'<line x1="{x:.1f}" x2="{x:.1f}" y1="20" y2="{height - 30}" stroke="#eee"/>'
        body += f'<text x="{x:.1f}" y="{height - 14}" text-anchor="middle">{t:.1f}</text>'
    y = 30
    for i, (_, r) in enumerate(metrics.iterrows()):
        color = PALETTE[i % len(PALETTE)]
        for key in ("accuracy", "macro_f1"):
            lo, hi, v = (left + r[k] * plot_w for k in (f"{key}_low", f"{key}_high", key))
            body += f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{_e(r["run"][:36])} · {key}</text>'
            body += f'<line class="mark" x1="{lo:.1f}" x2="{hi:.1f}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="3"/>'
            body += f'<circle class="mark" cx="{v:.1f}" cy="{y}" r="5" fill="{color}"><title>{r[key]:.3f}</title></circle>'
            y += row_h
    return _svg(width, height, body, "accuracy and macro-F1 with 95% bootstrap intervals")


def svg_confusions(confusions: pd.DataFrame, labels: list[str], names: list[str]) -> str:
    """Confusion matrices side by side on one colour scale (white = 0, dark blue = the largest cell of any run)."""
    cell, left, top = max(24, min(48, 240 // max(len(labels), 1))), 90, 40
    side = cell * len(labels)
    panel_w = left + side + 20
    top_count = max(int(confusions["count"].max()) if len(confusions) else 1, 1)
    body = ""
    for k, name in enumerate(names):
        x0 = k * panel_w
        body += f'<text x="{x0 + left}" y="14" font-weight="bold">{_e(name)[:40]}</text>'
        sub = confusions[confusions["run"] == name].set_index(["true", "pred"])["count"]
        for i, t in enumerate(labels):
            body += f'<text x="{x0 + left - 4}" y="{top + i * cell + cell / 2 + 4:.1f}" text-anchor="end">{_e(t)[:12]}</text>'
            for j, p in enumerate(labels):
                n = int(sub.get((t, p), 0))
                shade = n / top_count
                r_, g_, b_ = (int(255 - shade * (255 - c)) for c in (8, 48, 107))
                body += (f'<rect class="mark" x="{x0 + left + j * cell}" y="{top + i * cell}" width="{cell}" height="{cell}" '
                         f'fill="rgb({r_},{g_},{b_})" stroke="#fff"><title>true {_e(t)}, predicted {_e(p)}: {n}</title></rect>')
                body += (f'<text x="{x0 + left + j * cell + cell / 2:.1f}" y="{top + i * cell + cell / 2 + 4:.1f}" text-anchor="middle" '
                         f'fill="{"#fff" if shade > 0.5 else "#000"}">{n}</text>')
        for j, p in enumerate(labels):
            x, y = x0 + left + j * cell + cell / 2, top + side + 8
            body += f'<text x="{x:.1f}" y="{y}" text-anchor="end" transform="rotate(-40 {x:.1f} {y})">{_e(p)[:12]}</text>'
        body += f'<text x="{x0 + left + side / 2:.1f}" y="{top + side + 78}" text-anchor="middle">predicted</text>'
        body += f'<text x="{x0 + 10}" y="{top - 8}">true ↓</text>'
    return _svg(panel_w * len(names), top + side + 90, body, "confusion matrices (rows true, columns predicted)")


def _svg_series(pts: list[tuple[float, float]], i: int, label: str, legend_x: float, legend_top: float, radius: float) -> str:
    """One line series: a polyline through the points, a dot on each, and its legend entry (the i-th, in the i-th colour)."""
    color = PALETTE[i % len(PALETTE)]
    out = ""
    if len(pts) > 1:
        out += f'<polyline class="mark" fill="none" stroke="{color}" stroke-width="2" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}"/>'
    for x, y in pts:
        out += f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{color}"/>'
    out += f'<rect x="{legend_x}" y="{legend_top + i * 18}" width="10" height="10" fill="{color}"/>'
    return out + f'<text x="{legend_x + 14}" y="{legend_top + i * 18 + 9}">{label}</text>'


def svg_reliability(reliability: pd.DataFrame, eces: dict[str, float]) -> str:
    """Reliability diagram: accuracy against mean confidence per bin, one line per run, diagonal = perfect calibration."""
    size, left, top = 260, 40, 20
    body = _axis_y01(left, top + size, size, size)
    body += f'<line x1="{left}" y1="{top + size}" x2="{left + size}" y2="{top}" stroke="#999" stroke-dasharray="4 4"/>'
    for i, (name, group) in enumerate(reliability.groupby("run", sort=False)):
        pts = [(left + c * size, top + size - a * size) for c, a in zip(group["confidence"], group["accuracy"], strict=True)]
        body += _svg_series(pts, i, f'{_e(name)[:34]} (ECE {eces.get(name, float("nan")):.3f})', left + size + 16, top, 3.5)
    body += f'<text x="{left + size / 2}" y="{top + size + 30}" text-anchor="middle">mean confidence</text>'
    return _svg(left + size + 300, top + size + 40, body, "reliability diagram")


def svg_efficiency(efficiency: pd.DataFrame) -> str:
    """Macro-F1 against labelled training examples (log(1+n) axis), one line per kind and model."""
    width, height, left, top = 560, 300, 50, 20
    plot_w, plot_h = width - left - 180, height - top - 40
    xmax = float(np.log1p(max(efficiency["n_train_examples"].max(), 1)))
    body = _axis_y01(left, top + plot_h, plot_h, plot_w)
    for n in sorted(set(efficiency["n_train_examples"])):
        x = left + np.log1p(n) / xmax * plot_w
        body += f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{int(n)}</text>'
    series = efficiency.assign(series=efficiency["kind"] + " · " + efficiency["model"].astype(str))
    for i, (name, group) in enumerate(series.groupby("series", sort=True)):
        group = group.sort_values("n_train_examples")
        pts = [(left + np.log1p(n) / xmax * plot_w, top + plot_h - f * plot_h)
               for n, f in zip(group["n_train_examples"], group["macro_f1"], strict=True)]
        body += _svg_series(pts, i, _e(name)[:28], left + plot_w + 16, top, 4)
    body += f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">labelled training examples</text>'
    return _svg(width, height, body, "macro-F1 against labelled training examples")


def build_report(cmp: Comparison, efficiency: pd.DataFrame | None = None, top_errors: int = 20,
                 sections: list[tuple[str, pd.DataFrame, str]] | None = None) -> str:
    """The whole report as one HTML string: the verdict and its caveats first, then metrics with the baselines, McNemar,
    charts, agreement, top errors, any extra sections (title, table, note: e.g. the explorer's slices and robustness)
    and reproduce commands."""
    names = cmp.names
    eces = dict(zip(cmp.metrics["run"], cmp.metrics["ece"], strict=True))
    headline, caveats = verdict(cmp)
    parts = [f"<h1>Prompt it, or fine-tune it? Comparison of {len(names)} runs</h1>",
             f'<p class="verdict" id="verdict"><b>Verdict:</b> {_e(headline)}</p>',
             *[f'<p class="caveat">Caveat: {_e(c)}</p>' for c in caveats],
             f'<p class="note">{len(cmp.joined)} evaluation examples, labels: {_e(", ".join(cmp.labels))}. '
             f'Generated {_e(time.strftime("%Y-%m-%d %H:%M"))}. Intervals: 95% percentile bootstrap. Baselines: scikit-learn\'s '
             "DummyClassifier on the same labels (majority: always the most frequent label; stratified random: draws in the "
             "label proportions).</p>",
             "<h2>Metrics</h2>", table_html(format_metrics_table(cmp.metrics, cmp.baselines)),
             "<h3>F1 per class</h3>", table_html(per_class_table(cmp.metrics, cmp.baselines)),
             '<div class="charts">', svg_intervals(cmp.metrics), "</div>"]
    if len(cmp.mcnemar):
        mc = cmp.mcnemar.assign(p_value=cmp.mcnemar["p_value"].map(format_p),
                                statistic=cmp.mcnemar["statistic"].map(lambda s: f"{s:.3f}"))
        parts += ["<h2>McNemar's test (paired)</h2>", table_html(mc)]
    parts += ["<h2>Confusion matrices</h2>", '<div class="charts">', svg_confusions(cmp.confusions, cmp.labels, names), "</div>",
              "<h2>Calibration</h2>", '<div class="charts">', svg_reliability(cmp.reliability, eces), "</div>"]
    if efficiency is not None and has_curve(efficiency):
        parts += ["<h2>Data efficiency</h2>", '<div class="charts">', svg_efficiency(efficiency), "</div>"]
    a, b = names[0], names[1]
    parts += [f"<h2>Agreement: {_e(a)} vs {_e(b)}</h2>", table_html(agreement_table(cmp.joined, a, b), index=True)]
    errors = error_cases(cmp.joined, names)
    errors = errors[errors["agreement"] != AGREEMENT_CELLS[0]].head(top_errors)
    errors = errors.assign(agreement=errors["agreement"].str.replace(" A ", f" {a} ").str.replace(" B ", f" {b} "))
    errors[[f"confidence@{n}" for n in names]] = errors[[f"confidence@{n}" for n in names]].round(3)
    cols = ["id", "text", "label", "agreement"] + [c for n in names for c in (f"pred@{n}", f"confidence@{n}")]
    parts += [f"<h2>Top {len(errors)} error cases (most confident first)</h2>", table_html(errors[cols])]
    parts += [section_html(*section) for section in sections or []]
    parts += ["<h2>Reproduce</h2>"] + [f"<p><b>{_e(n)}</b>: <code>{_e(r.config.get('command', '(no command recorded)'))}</code></p>"
                                        for n, r in zip(names, cmp.runs, strict=True)]
    return f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Comparison report</title><style>{CSS}</style></head><body>{"".join(parts)}</body></html>'


def section_html(title: str, table: pd.DataFrame, note: str = "") -> str:
    """One more section of the report: a heading, an escaped note and an escaped table."""
    return f"<h2>{_e(title)}</h2>" + (f'<p class="note">{_e(note)}</p>' if note else "") + table_html(table)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as the start of a formula (OWASP CSV injection)


def _not_a_formula(value):
    """A text cell a spreadsheet would run as a formula, with a leading ' so it shows as text; numbers stay as they are."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    try:
        float(value)
        return value  # '-1' or '+2.5' is a number, not a formula
    except ValueError:
        return "'" + value


def export_csv(frame: pd.DataFrame) -> str:
    """Every CSV handed to people (CLI --csv, download buttons): formula-like text cells and headers neutralised."""
    safe = frame.rename(columns=lambda c: _not_a_formula(str(c))).map(_not_a_formula)
    return safe.to_csv(index=False, quoting=csv.QUOTE_ALL)  # every cell quoted: a lone \r would otherwise end a row


def write_report(path: str | Path, text: str) -> Path:
    """Write the report (or a CSV) atomically, explaining a bad path in one sentence."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"The folder {path.parent} does not exist, so {path.name} cannot be written there.")
    try:
        write_atomic(path, text)
    except OSError as e:
        raise UserError(f"Could not write {path}: {e.strerror}.") from None
    return path
