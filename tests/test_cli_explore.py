"""`python -m core slices` (and the explorer's other commands): output and one-sentence errors with exit status 2."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.cli import main
from tests.compare_fixtures import make_run


def test_slices_prints_one_row_per_slice_and_run(runs_dir, capsys, tmp_path):
    a = make_run(runs_dir, "prompt-a", 0.9, seed=1)
    b = make_run(runs_dir, "ft-b", 0.4, kind="finetune", seed=2)
    out_csv = tmp_path / "slices.csv"
    html = tmp_path / "report.html"
    assert (
        main(["slices", str(a), str(b), "--by", "label", "--resamples", "100", "--csv", str(out_csv), "--html", str(html)]) == 0
    )
    out = capsys.readouterr().out
    assert "60 evaluation examples in 3 slices by label" in out
    lines = [line for line in out.splitlines() if line.strip().startswith(("negative", "neutral", "positive"))]
    assert len(lines) == 6 and all("[" in line for line in lines)
    table = pd.read_csv(out_csv)
    assert set(table["run"]) == {"prompt-a", "ft-b"} and {"p_holm", "macro_f1_low"} <= set(table.columns)
    text = html.read_text()
    section = text.split("<h2>Slices by label</h2>")[1].split("<h2>")[0]
    assert section.count("<td>neutral</td>") == 2 and "<script" not in text  # one row per run


def test_slices_by_a_column_of_the_evaluation_file(runs_dir, capsys, tmp_path):
    a = make_run(runs_dir, "prompt-a", 0.9, seed=1)
    texts = pd.read_csv(a / "predictions.csv")["text"]
    extra = tmp_path / "eval.csv"
    pd.DataFrame({"text": texts, "label": "x", "channel": ["web", "mail", "phone"] * 20}).to_csv(extra, index=False)
    assert main(["slices", str(a), "--by", "column:channel", "--data", str(extra), "--resamples", "100"]) == 0
    assert "channel = mail" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (
            ["--by", "size"],
            "Slices are by length, label, negation, numbers, column:NAME, regex:PATTERN; 'size' is none of these.",
        ),
        (["--by", "regex:(oops"], "The regular expression '(oops' is not valid"),
        (["--by", "column:stars"], "Slicing by a column needs the file that holds it: add --data FILE."),
    ],
)
def test_slices_refuses_bad_specs_with_one_sentence(runs_dir, capsys, args, sentence):
    a = make_run(runs_dir, "prompt-a", 0.9, seed=1)
    assert main(["slices", str(a), *args]) == 2
    err = capsys.readouterr().err
    assert sentence in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_slices_refuses_an_unknown_column_naming_the_others(runs_dir, capsys, tmp_path):
    a = make_run(runs_dir, "prompt-a", 0.9, seed=1)
    extra = tmp_path / "eval.csv"
    pd.DataFrame({"text": ["t"], "label": ["x"], "channel": ["web"]}).to_csv(extra, index=False)
    assert main(["slices", str(a), "--by", "column:stars", "--data", str(extra)]) == 2
    err = capsys.readouterr().err
    assert "There is no column 'stars' to slice by; the extra columns are: channel." in err and len(err.strip().splitlines()) == 1


def test_label_errors_prints_and_writes_the_top_suspects(tiny_bert_dir, capsys, tmp_path):
    from tests.conftest import CORPUS

    source, out_csv = tmp_path / "short.csv", tmp_path / "rows.csv"
    texts = [f"{t} {i}" for i, t in enumerate(CORPUS[:90])]  # short texts: the tiny encoder reads 128 positions
    labels = [("good", "bad", "meh")[i % 3] for i in range(90)]  # each sentence (i % 9) has one label ...
    for i in (3, 13, 23, 33):
        labels[i] = "good" if labels[i] != "good" else "bad"  # ... except four planted flips
    pd.DataFrame({"text": texts, "label": labels, "split": ["train"] * 60 + ["test"] * 30}).to_csv(source, index=False)
    assert main(["label-errors", str(source), "--encoder", str(tiny_bert_dir), "--top", "3", "--out", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert "rows look mislabelled: train " in out and "of 60, test " in out and "of 30" in out
    rows = pd.read_csv(out_csv)
    assert list(rows.columns) == [
        "rank",
        "split",
        "id",
        "text",
        "label",
        "suspected_label",
        "label_probability",
        "suspected_probability",
    ]
    assert 1 <= len(rows) <= 3 and (rows["label"] != rows["suspected_label"]).all()
    assert set(rows["text"]) <= {texts[i] for i in (3, 13, 23, 33)}


def test_label_errors_refuses_an_unknown_split(capsys):
    assert main(["label-errors", "reviews", "--splits", "dev"]) == 2
    assert "reviews has no split 'dev'; its splits are: train, validation, test." in capsys.readouterr().err


@pytest.fixture
def tiny_runs(runs_dir, tiny_bert_dir, tiny_llama_dir) -> list[Path]:
    """A 2-shot prompt run of the tiny Llama on 8 reviews test rows and a head-only fine-tune of the tiny BERT."""
    assert (
        main(
            [
                "prompt",
                "--train",
                "reviews",
                "--eval",
                "reviews",
                "--model",
                str(tiny_llama_dir),
                "--shots",
                "2",
                "--calibrate",
                "none",
                "--max-eval-examples",
                "8",
                "--out",
                "tiny-2shot",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "finetune",
                "--train",
                "reviews",
                "--eval",
                "reviews",
                "--model",
                str(tiny_bert_dir),
                "--method",
                "head",
                "--epochs",
                "1",
                "--max-train-examples",
                "32",
                "--out",
                "tiny-head",
            ]
        )
        == 0
    )
    return [runs_dir / "tiny-2shot", runs_dir / "tiny-head"]


def test_run_predictors_reproduce_each_run_s_own_predictions(tiny_runs):
    from core import explore

    for path in tiny_runs:
        preds = pd.read_csv(path / "predictions.csv", dtype=str, keep_default_na=False)
        assert explore.run_predictor(path)(preds["text"].tolist()) == preds["pred"].tolist()


def test_robustness_prints_each_run_s_share_of_unchanged_predictions(tiny_runs, capsys, tmp_path):
    out_csv = tmp_path / "robust.csv"
    html = tmp_path / "report.html"
    assert (
        main(
            [
                "robustness",
                *map(str, tiny_runs),
                "--perturbations",
                "typos",
                "case",
                "--max-examples",
                "5",
                "--csv",
                str(out_csv),
                "--html",
                str(html),
            ]
        )
        == 0
    )
    assert "<h2>Robustness to perturbed text</h2>" in html.read_text()
    assert "5 of 8 evaluation examples, 2 perturbation(s)" in capsys.readouterr().out
    table = pd.read_csv(out_csv)
    assert (
        len(table) == 4
        and set(table["run"]) == {"tiny-2shot", "tiny-head"}
        and table["unchanged predictions"].between(0, 1).all()
    )
    assert "flipped (expected)" not in table  # no negation asked for


def test_robustness_refuses_an_unknown_perturbation_and_a_run_without_a_model(runs_dir, capsys):
    a = make_run(runs_dir, "ft-b", 0.8, kind="finetune", seed=2)
    assert main(["robustness", str(a), "--perturbations", "emoji"]) == 2
    assert (
        "Perturbations are typos, case, punctuation, irrelevant sentence, negation, numbers; 'emoji' is none"
        in capsys.readouterr().err
    )
    assert main(["robustness", str(a)]) == 2
    err = capsys.readouterr().err
    assert "The model folder of run ft-b is missing" in err and len(err.strip().splitlines()) == 1
