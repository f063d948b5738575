"""Self-contained HTML report of a comparison: a Jinja2 template (templates/report.html, autoescaped) with the Compare page's
own Altair charts rendered to inline SVG by vl-convert, so the report and the page draw the same charts; no scripts, fonts or
images from anywhere."""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core import charts, charts_search
from core.comparison.evaluate import (
    AGREEMENT_CELLS,
    Comparison,
    agreement_table,
    error_cases,
    format_metrics_table,
    has_curve,
    most_confused,
    per_class_table,
)
from core.comparison.verdict import format_p, verdict
from core.errors import UserError
from core.runs import write_atomic

TEMPLATES = Path(__file__).parent / "templates"
ROOT_NAMESPACES = re.compile(r'^<svg( xmlns(:xlink)?="[^"]*")+')  # inline SVG in HTML needs no namespaces (and links none)


LOCAL_IDS = re.compile(r'(id="|url\(#)')  # an SVG's own ids (gradients, clips) and the references to them


def svg(chart, key: str) -> str:
    """An Altair chart as an inline SVG element (vl-convert runs Vega in-process: nothing is fetched); its ids get the
    prefix key, so two charts in one page cannot take each other's gradients or clip paths."""
    import vl_convert

    text = ROOT_NAMESPACES.sub(f'<svg class="chart" aria-label="{key}"', vl_convert.vegalite_to_svg(chart.to_json()))
    return LOCAL_IDS.sub(lambda m: f"{m.group(1)}{key}-", text)


def _cell(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _table(df: pd.DataFrame, index: bool = False) -> dict:
    """A DataFrame as the template's table macro reads it (the template escapes every cell)."""
    head = ([""] if index else []) + [str(c) for c in df.columns]
    rows = [(_cell(i), [_cell(v) for v in row]) for i, row in zip(df.index, df.itertuples(index=False), strict=True)]
    return {"head": head, "rows": rows, "index": index}


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)


def build_report(
    cmp: Comparison,
    efficiency: pd.DataFrame | None = None,
    top_errors: int = 20,
    sections: list[tuple[str, pd.DataFrame, str]] | None = None,
    more_caveats: list[str] | None = None,
) -> str:
    """The whole report as one HTML string: the verdict and its caveats first, then metrics with the baselines, McNemar,
    the page's charts (confusion matrices up to charts.MAX_MATRIX_LABELS labels, the most confused pairs above, as on the
    page), agreement, top errors, the Fine-tune page's charts of each search a run came from (as its result or a trial),
    any extra sections (title, table, note: e.g. the explorer's slices and robustness) and reproduce commands."""
    from markupsafe import Markup

    names = cmp.names
    headline, caveats = verdict(cmp)
    caveats += more_caveats or []  # what the page knows beyond the runs, e.g. the Data page's suspected label errors
    eces = dict(zip(cmp.metrics["run"], cmp.metrics["ece"], strict=True))
    drawn = {"intervals": charts.metric_intervals(cmp.metrics), "reliability": charts.reliability_diagram(cmp.reliability, eces)}
    if len(cmp.labels) <= charts.MAX_MATRIX_LABELS:
        drawn["confusions"] = charts.confusion_heatmaps(cmp.confusions, cmp.labels)
    if efficiency is not None and has_curve(efficiency):
        drawn["efficiency"] = charts.efficiency_chart(efficiency)
    # SVG from vl-convert, which escapes the text inside it
    rendered = {key: Markup(svg(chart, key)) for key, chart in drawn.items()}  # noqa: S704
    searches = {}  # the folder of each search that a compared run came from (its result, or one of its trials): the runs
    for run in cmp.runs:
        if folder := charts_search.search_of(run.path):
            searches.setdefault(folder, []).append(run.name)
    searched = [
        {
            "name": folder.name,
            "runs": members,
            "finished": (folder / "metrics.json").is_file(),
            "charts": [
                Markup(svg(chart, f"search{i}-{j}"))  # noqa: S704 (as above)
                for j, chart in enumerate(charts_search.search_charts(folder))
            ],
        }
        for i, (folder, members) in enumerate(searches.items())
    ]
    a, b = names[0], names[1]
    errors = error_cases(cmp.joined, names)
    errors = errors[errors["agreement"] != AGREEMENT_CELLS[0]].head(top_errors)
    errors = errors.assign(agreement=errors["agreement"].str.replace(" A ", f" {a} ").str.replace(" B ", f" {b} "))
    errors[[f"confidence@{n}" for n in names]] = errors[[f"confidence@{n}" for n in names]].round(3)
    cols = ["id", "text", "label", "agreement"] + [c for n in names for c in (f"pred@{n}", f"confidence@{n}")]
    mcnemar = (
        _table(
            cmp.mcnemar.assign(
                p_value=cmp.mcnemar["p_value"].map(format_p), statistic=cmp.mcnemar["statistic"].map(lambda s: f"{s:.3f}")
            )
        )
        if len(cmp.mcnemar)
        else None
    )
    return (
        _environment()
        .get_template("report.html")
        .render(
            names=names,
            headline=headline,
            caveats=caveats,
            n_examples=len(cmp.joined),
            labels=cmp.labels,
            generated=time.strftime("%Y-%m-%d %H:%M"),
            charts={"confusions": None, "efficiency": None, **rendered},
            metrics=_table(format_metrics_table(cmp.metrics, cmp.baselines)),
            per_class=_table(per_class_table(cmp.metrics, cmp.baselines)),
            mcnemar=mcnemar,
            most_confused=_table(most_confused(cmp.confusions, top=25)),
            run_a=a,
            run_b=b,
            agreement=_table(agreement_table(cmp.joined, a, b), index=True),
            errors=_table(errors[cols]),
            searches=searched,
            sections=[{"title": title, "table": _table(table), "note": note} for title, table, note in sections or []],
            commands=[(n, r.config.get("command", "(no command recorded)")) for n, r in zip(names, cmp.runs, strict=True)],
        )
    )


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
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UserError(
            f"{path} is a link or not a regular file, so it is not replaced; give the path of a new or ordinary file."
        )
    try:
        write_atomic(path, text)
    except OSError as e:
        raise UserError(f"Could not write {path}: {e.strerror}.") from None
    return path
