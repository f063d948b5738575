"""`python -m core prompt`: the run directory it writes (tiny Llama), a grid of runs, and bad inputs answered in one sentence."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.cli import main


def _argv(model, *extra) -> list[str]:
    return [
        "prompt",
        "--train",
        "reviews",
        "--eval",
        "reviews",
        "--model",
        str(model),
        "--max-eval-examples",
        "12",
        "--batch-size",
        "8",
        *extra,
    ]


def test_prompt_writes_the_run_contract(tiny_llama_dir, runs_dir, capsys, monkeypatch):
    monkeypatch.chdir(runs_dir.parent)  # so that --out runs/NAME lies inside the runs folder, as it does by default
    assert (
        main(
            _argv(
                tiny_llama_dir,
                "--shots",
                "3",
                "--selection",
                "balanced",
                "--calibrate",
                "contextual",
                "--seed",
                "4",
                "--label-words",
                "negative=bad",
                "--out",
                "runs/first",
            )
        )
        == 0
    )
    run = runs_dir / "first"
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "prompt" and config["method"] == "3-shot balanced +contextual"
    assert config["n_train_examples"] == 3 and config["seed"] == 4 and config["label_words"] == {"negative": "bad"}
    assert config["dataset"]["name"] == "reviews" and len(config["dataset"]["eval_sha256"]) == 64
    assert config["command"].startswith("python -m core prompt --train reviews")
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "succeeded" and status["progress"] == 1.0 and status["done"] == status["total"]
    assert status["total"] == 12 and status["of"] > 12  # examples (not internal rows), and the cap: 12 of the split's examples
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_examples"] == 12 and {"accuracy", "macro_f1", "seconds", "examples_per_second", "total_params"} <= set(
        metrics
    )
    preds = pd.read_csv(run / "predictions.csv")
    assert list(preds.columns[:5]) == ["id", "text", "label", "pred", "confidence"]
    assert np.allclose(preds[["prob_negative", "prob_neutral", "prob_positive"]].sum(axis=1), 1, atol=1e-4)
    demos = json.loads((run / "demonstrations.json").read_text())["demos"]
    assert sorted(d["label"] for d in demos) == ["negative", "neutral", "positive"]
    assert "accuracy" in capsys.readouterr().out


def test_several_shots_and_seeds_make_a_grid_of_runs(tiny_llama_dir, runs_dir):
    assert main(_argv(tiny_llama_dir, "--shots", "0", "2", "--seed", "1", "2", "--out", "grid")) == 0
    names = sorted(p.name for p in runs_dir.iterdir() if p.is_dir())
    assert names == ["grid-0shot-seed1", "grid-0shot-seed2", "grid-2shot-seed1", "grid-2shot-seed2"]
    config = json.loads((runs_dir / "grid-2shot-seed2" / "config.json").read_text())
    assert config["shots"] == 2 and config["seed"] == 2 and len(config["grid"]) == 4
    assert all(json.loads((runs_dir / n / "status.json").read_text())["state"] == "succeeded" for n in names)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shots", "-1"], "--shots must be a whole number from 0 to 64 (got '-1')"),
        (["--train", "no_such_file.csv"], "There is no file at no_such_file.csv"),
        (["--label-words", "negative"], "is not LABEL=WORD"),
        (["--label-words", "happy=yes"], "labels the dataset does not have"),
        (["--query-template", "Answer:"], "must contain {text}"),
        (["--shots", "999"], "--shots must be a whole number from 0 to 64 (got '999')"),
        (["--out", "../../etc"], "outside it"),
    ],
)
def test_bad_input_ends_with_one_sentence_and_exit_2(tiny_llama_dir, runs_dir, capsys, extra, message):
    assert main(_argv(tiny_llama_dir, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_existing_run_is_not_overwritten(tiny_llama_dir, runs_dir, capsys):
    (runs_dir / "taken").mkdir()
    (runs_dir / "taken" / "config.json").write_text("{}")
    assert main(_argv(tiny_llama_dir, "--out", "taken")) == 2
    assert "already exists" in capsys.readouterr().err


def test_run_below_the_majority_class_prints_a_warning_and_flags_metrics(tiny_llama_dir, runs_dir, tmp_path, capsys):
    """An evaluation file of one class (legitimate: training has three): always answering it scores macro-F1 1.0."""
    one = tmp_path / "all-positive.csv"
    one.write_text("text,label\n" + "".join(f"a lovely kettle number {i},positive\n" for i in range(12)))
    assert main(_argv(tiny_llama_dir, "--eval", str(one), "--calibrate", "none", "--out", "flagged")) == 0
    err = capsys.readouterr().err
    assert "warning: flagged: macro-F1" in err and "does not beat the majority class" in err
    metrics = json.loads((runs_dir / "flagged" / "metrics.json").read_text())
    assert metrics["below_majority"] is True and metrics["majority_macro_f1"] == 1.0


def test_run_above_the_majority_class_is_not_flagged(runs_dir):
    from core.comparison import evaluate

    metrics = {"macro_f1": 0.8, "accuracy": 0.8}
    assert evaluate.flag_below_majority(metrics, ["a", "a", "a", "b"], ["a", "b"]) is None
    assert metrics["below_majority"] is False and metrics["majority_accuracy"] == 0.75
    assert metrics["majority_macro_f1"] == pytest.approx(0.4286, abs=1e-4)  # mean of F1 'a' 0.857 and 'b' 0 (never predicted)


def test_auto_template_and_calibration_are_printed_and_recorded(tiny_llama_dir, runs_dir, capsys):
    assert main(_argv(tiny_llama_dir, "--template", "auto", "--out", "auto")) == 0  # --calibrate auto is the default
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("auto: auto: template '"))
    assert "training rows, best" in line and "candidates: category/contextual" in line
    config = json.loads((runs_dir / "auto" / "config.json").read_text())
    record = config["auto"]
    assert record["requested"] == {"calibration": "auto", "template": "auto"}
    assert config["calibration"] == record["calibration"] != "auto" and config["method"].endswith(
        f"+{record['calibration']} (auto)"
    )
    assert len(record["candidates"]) == 12 and record["slice_rows"] > 0
    assert json.loads((runs_dir / "auto" / "metrics.json").read_text())["auto"] == record
    assert "--template auto" in config["command"]


def test_numeric_labels_print_one_line_naming_the_label_words_flag(tiny_llama_dir, runs_dir, tmp_path, capsys):
    """SST-2 as a TSV has labels 0/1: the run warns once on stderr and says how to give words."""
    tsv = tmp_path / "sst.tsv"
    tsv.write_text("sentence\tlabel\n" + "".join(f"a film number {i}\t{i % 2}\n" for i in range(16)))
    assert main(_argv(tiny_llama_dir, "--train", str(tsv), "--eval", str(tsv), "--calibrate", "none", "--out", "numeric")) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if "label words" in x]
    assert len(lines) == 1 and "0, 1 are numbers or codes" in lines[0] and "--label-words 0=WORD 1=WORD" in lines[0]
    assert (
        main(
            _argv(
                tiny_llama_dir,
                "--train",
                str(tsv),
                "--eval",
                str(tsv),
                "--calibrate",
                "none",
                "--out",
                "worded",
                "--label-words",
                "0=negative",
                "1=positive",
            )
        )
        == 0
    )
    assert "label words" not in capsys.readouterr().err


def test_one_file_as_train_and_eval_is_split_once_as_the_app_splits_it(tiny_llama_dir, runs_dir, tmp_path):
    """--train X.csv --eval X.csv, X without a split column: evaluated on X's held-out test split (the app's 70/15/15 of
    the same upload, so the run shows on that dataset's pages), never on rows it could train or draw demonstrations from."""
    from core import data

    csv = tmp_path / "mine.csv"
    csv.write_text(
        "text,label\n" + "".join(f"item {i} is {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}\n" for i in range(60))
    )
    assert (
        main(
            _argv(
                tiny_llama_dir,
                "--train",
                str(csv),
                "--eval",
                str(csv),
                "--max-eval-examples",
                "60",
                "--shots",
                "2",
                "--calibrate",
                "none",
                "--out",
                "one-file",
            )
        )
        == 0
    )
    app = data.load_upload(csv.read_bytes(), csv.name)
    config = json.loads((runs_dir / "one-file" / "config.json").read_text())
    assert config["dataset"]["eval_sha256"] == app.fingerprint("test")
    evaluated = set(pd.read_csv(runs_dir / "one-file" / "predictions.csv")["text"])
    assert evaluated == set(app.splits["test"]["text"]) and not evaluated & set(app.splits["train"]["text"])
