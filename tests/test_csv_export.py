"""Exported CSVs neutralise spreadsheet formulas (issue 13 item 4): the CLI's joined CSV and every download button."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from core.cli import main
from core.comparison import report
from tests.compare_fixtures import make_run

FORMULAS = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\tTAB", "\rCR"]


def test_formula_cells_and_headers_get_a_leading_quote():
    frame = pd.DataFrame({"text": FORMULAS + ["plain", "-1", "+2.5"], "=head": range(9), "score": [-0.5] * 9})
    rows = list(csv.reader(io.StringIO(report.export_csv(frame), newline="")))
    back = pd.DataFrame(rows[1:], columns=rows[0])
    assert list(back.columns) == ["text", "'=head", "score"]
    assert list(back["text"][:6]) == ["'" + f for f in FORMULAS]
    assert list(back["text"][6:]) == ["plain", "-1", "+2.5"]  # numbers and ordinary text are left alone
    assert set(back["score"]) == {"-0.5"}


def _formula_runs(runs_dir):
    for name, acc, seed in (("a", 0.5, 1), ("b", 0.8, 2)):
        path = make_run(runs_dir, name, acc, seed=seed)
        preds = pd.read_csv(path / "predictions.csv")
        preds["text"] = [FORMULAS[i % 5] + f" {i}" for i in range(len(preds))]  # no lone \r: pandas writes it unquoted
        preds.to_csv(path / "predictions.csv", index=False)


def test_cli_joined_csv_is_neutralised(runs_dir, tmp_path):
    _formula_runs(runs_dir)
    out = tmp_path / "joined.csv"
    assert main(["compare", "a", "b", "--csv", str(out), "--resamples", "100"]) == 0
    texts = pd.read_csv(out, keep_default_na=False)["text"]
    assert len(texts) == 60 and all(t.startswith("'") for t in texts)


@pytest.mark.parametrize("page", ["app_pages/compare.py", "app_pages/runs.py"])
def test_page_downloads_go_through_export_csv(runs_dir, open_page, monkeypatch, page):
    _formula_runs(runs_dir)
    exported = []
    real = report.export_csv
    monkeypatch.setattr(report, "export_csv", lambda frame: exported.append(frame) or real(frame))
    at = open_page(page)
    assert not at.exception
    assert exported, "the page's CSV download does not go through report.export_csv"
