"""`python -m core predict` and core.predict on tiny models: a run's predictions of its own evaluation split equal its
predictions.csv (prompt, logreg, bitfit, prompt-tuning), chunked reading and atomic writing, bad input in one sentence, the
surge rule."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core import data, predict
from core.cli import main


@pytest.fixture(scope="module")
def eval_file(tmp_path_factory):
    """24 rows of the reviews test split, as a file with its labels (a run's own evaluation split)."""
    frame = data.load_sample("reviews").splits["test"].head(24)[["id", "text", "label"]]
    path = tmp_path_factory.mktemp("eval") / "eval.csv"
    frame.to_csv(path, index=False)
    return path


def _assert_same_as_run(run_dir, out_path):
    preds = pd.read_csv(run_dir / "predictions.csv", dtype={"id": str, "pred": str})
    got = pd.read_csv(out_path, dtype=str) if out_path.suffix == ".csv" else pd.read_parquet(out_path)
    probs = [c for c in preds.columns if c.startswith("prob_")]
    assert len(got) == len(preds) and list(got["row"].astype(int)) == list(range(len(preds)))
    assert list(got["id"].astype(str)) == list(preds["id"])  # the input's own columns are kept
    assert list(got["label"]) == list(preds["pred"])
    np.testing.assert_allclose(got[probs].astype(float).to_numpy(), preds[probs].to_numpy(), atol=2e-4)
    assert "input_label" in got  # the file's own label column, renamed beside the prediction


def _finetune(runs_dir, model, eval_file, method, name, *extra):
    argv = [
        "finetune",
        "--train",
        "reviews",
        "--eval",
        str(eval_file),
        "--model",
        str(model),
        "--method",
        method,
        "--epochs",
        "1",
        "--max-train-examples",
        "48",
        "--dev",
        "none",
        "--out",
        name,
        *extra,
    ]
    assert main(argv) == 0
    return runs_dir / name


@pytest.mark.parametrize("method", ["logreg", "bitfit"])
def test_fine_tuned_run_predicts_its_own_split_as_its_predictions_csv(
    method, tiny_bert_dir, runs_dir, eval_file, tmp_path, capsys
):
    run = _finetune(runs_dir, tiny_bert_dir, eval_file, method, f"ft-{method}")
    out = tmp_path / "pred.csv"
    assert main(["predict", f"ft-{method}", str(eval_file), "--out", str(out), "--batch-rows", "7"]) == 0  # several chunks
    _assert_same_as_run(run, out)
    assert "labelled 24 rows" in capsys.readouterr().out


def test_prompt_run_predicts_its_own_split_as_its_predictions_csv(tiny_llama_dir, runs_dir, eval_file, tmp_path):
    assert (
        main(
            [
                "prompt",
                "--train",
                "reviews",
                "--eval",
                str(eval_file),
                "--model",
                str(tiny_llama_dir),
                "--shots",
                "2",
                "--calibrate",
                "contextual",
                "--label-words",
                "negative=bad",
                "--out",
                "p2",
            ]
        )
        == 0
    )
    out = tmp_path / "pred.parquet"
    assert main(["predict", "p2", str(eval_file), "--out", str(out), "--batch-rows", "10"]) == 0
    _assert_same_as_run(runs_dir / "p2", out)


def test_prompt_tuning_run_predicts_its_own_split_as_its_predictions_csv(tiny_llama_dir, runs_dir, eval_file, tmp_path):
    run = _finetune(runs_dir, tiny_llama_dir, eval_file, "prompt-tuning", "pt", "--batch-size", "8")
    out = tmp_path / "pred.csv"
    assert main(["predict", "pt", str(eval_file), "--out", str(out)]) == 0
    _assert_same_as_run(run, out)


@pytest.fixture
def logreg_run(tiny_bert_dir, runs_dir, eval_file):
    return _finetune(runs_dir, tiny_bert_dir, eval_file, "logreg", "lr")


def test_jsonl_in_and_out_skips_empty_texts_and_keeps_columns(logreg_run, tmp_path, capsys):
    src = tmp_path / "new.jsonl"
    rows = [
        {"message": "great kettle", "when": "2026-01-01"},
        {"message": "  ", "when": "2026-01-02"},
        {"message": None, "when": "2026-01-02"},
        {"message": "awful, it broke", "when": "2026-01-03"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    assert main(["predict", "lr", str(src), "--out", str(out), "--batch-rows", "2"]) == 0
    got = pd.read_json(out, lines=True)
    assert list(got["row"]) == [0, 3] and list(got["message"]) == ["great kettle", "awful, it broke"]
    assert set(got["label"]) <= {"negative", "neutral", "positive"}
    np.testing.assert_allclose(got[[c for c in got if c.startswith("prob_")]].sum(axis=1), 1, atol=1e-4)
    assert "skipped 2 rows with empty text (first: rows 1, 2" in capsys.readouterr().out


def _refused(argv, capsys, *sentence):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    for part in sentence:
        assert part in err, err
    return err


def test_bad_input_is_one_sentence_and_the_output_is_left_intact(logreg_run, runs_dir, tmp_path, capsys):
    out = tmp_path / "out.csv"
    out.write_text("precious\n")
    no_text = tmp_path / "no_text.csv"
    no_text.write_text("id,title\n1,hello\n")
    _refused(["predict", "lr", str(no_text), "--out", str(out)], capsys, "No text column found among: id, title")
    _refused(["predict", "lr", str(no_text), "--out", str(out), "--text-col", "body"], capsys, "There is no column 'body'")
    empty = tmp_path / "empty.csv"
    empty.write_text('text\n""\n" "\n')
    _refused(["predict", "lr", str(empty), "--out", str(out)], capsys, "Every text in column 'text'", "nothing to label")
    unseen = tmp_path / "unseen.csv"
    unseen.write_text("text,label\nfine,positive\nodd,furious\n")
    _refused(["predict", "lr", str(unseen), "--out", str(out)], capsys, "labels the run never saw (furious)")
    good = tmp_path / "good.csv"
    good.write_text("text\nfine\n")
    _refused(["predict", "nope", str(good), "--out", str(out)], capsys, "There is no run folder at nope")
    _refused(["predict", "lr", str(good), "--out", str(tmp_path / "x.xlsx")], capsys, "--out must end in .csv, .jsonl, .parquet")
    _refused(["predict", "lr", str(good)], capsys, "Give --out")
    _refused(["predict", "lr", str(good), "--out", str(out), "--alert-label", "positive"], capsys, "needs --time-col")
    assert out.read_text() == "precious\n"  # nothing written half, nothing lost
    assert not list(tmp_path.glob(".out.csv.*"))  # no temp file left behind


def test_unfinished_runs_and_deleted_models_are_refused(logreg_run, runs_dir, tmp_path, capsys):
    import shutil

    from core.runs import RunDir

    good = tmp_path / "good.csv"
    good.write_text("text\nfine\n")
    out = tmp_path / "out.csv"
    running = RunDir(runs_dir / "busy").create({"kind": "finetune"})
    running.set_status("running", pid=None)
    _refused(["predict", "busy", str(good), "--out", str(out)], capsys, "Run busy is still running")
    failed = RunDir(runs_dir / "broke").create({"kind": "finetune"})
    failed.set_status("failed", error="x")
    _refused(["predict", "broke", str(good), "--out", str(out)], capsys, "Run broke is failed, not finished")
    shutil.rmtree(logreg_run / "model")
    _refused(["predict", "lr", str(good), "--out", str(out)], capsys, "The model folder of run lr is missing")
    assert not out.exists()


def test_cancel_midway_leaves_no_output(logreg_run, tmp_path):
    predictor = predict.load_predictor("lr", "cpu")
    calls = []

    def score(texts):
        calls.append(len(texts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return np.full((len(texts), len(predictor.label_names)), 1 / len(predictor.label_names))

    predictor.score = score
    src = tmp_path / "in.csv"
    src.write_text("text\n" + "".join(f"row {i}\n" for i in range(10)))
    out = tmp_path / "out.parquet"
    with pytest.raises(KeyboardInterrupt):
        predict.predict_file(predictor, src, out, chunk_rows=4)
    assert calls == [4, 4] and not out.exists() and not list(tmp_path.glob(".out.parquet.*"))


def _by_word(texts):
    """A stand-in run: negative when the text says 'awful', else positive."""
    neg = np.array([0.9 if "awful" in t else 0.2 for t in texts])
    return np.stack([neg, 1 - neg], axis=1)


def test_time_column_counts_per_day_and_the_alert_flags_a_surge(logreg_run, tmp_path, capsys):
    days = pd.date_range("2026-03-01", periods=10, freq="D")
    texts = [
        ("awful broken kettle" if d == days[8] and k < 4 or k == 0 else "great kettle", f"{d.date()}T09:00:00")
        for d in days
        for k in range(6)
    ]
    src = tmp_path / "news.csv"
    pd.DataFrame(texts + [("great", "not a date")], columns=["text", "date"]).to_csv(src, index=False)
    predictor = predict.Predictor("fake", "classifier", ["negative", "positive"], _by_word)
    summary = predict.predict_file(predictor, src, tmp_path / "o.csv", time_col="date", chunk_rows=5)
    assert summary.daily["count"].sum() == 60 and summary.daily["day"].nunique() == 10 and summary.bad_times == 1
    assert predict.choose_period(summary.daily) == "D"
    share = predict.label_share(summary.daily, predictor.label_names, "D")
    assert share[share["label"] == "negative"]["share"].round(4).tolist() == [round(1 / 6, 4)] * 8 + [
        round(4 / 6, 4),
        round(1 / 6, 4),
    ]
    flags = predict.flag_surges(share, "negative", 40)
    assert flags[flags["flagged"]]["period"].tolist() == [days[8]]  # +50 points over the trailing mean of 1/6
    assert not predict.flag_surges(share, "negative", 55)["flagged"].any()
    weekly = predict.label_share(summary.daily, predictor.label_names, "W")
    assert weekly.groupby("period")["count"].sum().sum() == 60
    assert (
        main(
            [
                "predict",
                "lr",
                str(src),
                "--out",
                str(tmp_path / "o2.csv"),
                "--time-col",
                "date",
                "--alert-label",
                "negative",
                "--alert-threshold",
                "5",
            ]
        )
        == 0
    )
    assert "1 rows have no readable time in 'date'" in capsys.readouterr().out
    _refused(
        ["predict", "lr", str(src), "--out", str(tmp_path / "o3.csv"), "--time-col", "day"],
        capsys,
        "There is no time column 'day'",
    )
    _refused(
        ["predict", "lr", str(src), "--out", str(tmp_path / "o3.csv"), "--time-col", "date", "--alert-label", "furious"],
        capsys,
        "--alert-label 'furious' is not one of the run's labels",
    )


def test_surge_rule():
    share = pd.DataFrame(
        {
            "period": pd.date_range("2026-01-01", periods=6),
            "label": "neg",
            "share": [0.1, 0.1, 0.1, 0.1, 0.35, 0.9],
            "total": [10, 10, 10, 10, 10, 3],
        }
    )
    flags = predict.flag_surges(share, "neg", 20)
    assert flags["flagged"].tolist() == [False, False, False, False, True, False]  # +25 points; the last day has 3 rows
    assert flags["jump"].round(6).iloc[4] == 25.0
    assert not predict.flag_surges(share, "neg", 30)["flagged"].any()
    assert predict.choose_period(pd.DataFrame({"day": pd.to_datetime(["2026-01-01", "2026-06-01"])})) == "W"


def test_chunked_reading_matches_a_whole_read(tmp_path):
    frame = pd.DataFrame({"text": [f"text, with comma {i}\nand a line" for i in range(25)], "n": [str(i) for i in range(25)]})
    for name in ("a.csv", "a.parquet", "a.jsonl"):
        path = tmp_path / name
        {
            "a.csv": lambda p: frame.to_csv(p, index=False),
            "a.parquet": lambda p: frame.to_parquet(p),
            "a.jsonl": lambda p: frame.to_json(p, orient="records", lines=True),
        }[name](path)
        chunks = list(predict.read_chunks(path, 10))
        assert [len(c) for c in chunks] == [10, 10, 5]
        assert pd.concat(chunks)["text"].tolist() == frame["text"].tolist()
        assert predict.count_rows(path) >= 25


def test_torchrun_two_cpu_processes_predict_like_one(logreg_run, runs_dir, eval_file, tmp_path):
    """Each process scores every 2nd row of each chunk; rank 0 alone writes, and the file equals a single process's."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import ROOT

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and not shutil.which("torchrun"):
        pytest.skip("torchrun is not installed")
    sharded, single = tmp_path / "sharded.csv", tmp_path / "single.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PFT_RUNS_DIR": str(runs_dir)}
    cmd = [
        str(torchrun if torchrun.exists() else "torchrun"),
        "--nproc_per_node",
        "2",
        "--master_port",
        "29531",
        "-m",
        "core",
        "predict",
        "lr",
        str(eval_file),
        "--out",
        str(sharded),
        "--batch-rows",
        "5",
        "--device",
        "cpu",
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("labelled 24 rows") == 1  # rank 0 only
    assert main(["predict", "lr", str(eval_file), "--out", str(single), "--device", "cpu"]) == 0
    a, b = pd.read_csv(sharded), pd.read_csv(single)
    assert list(a["label"]) == list(b["label"]) and list(a["row"]) == list(b["row"])
    probs = [c for c in a.columns if c.startswith("prob_")]
    assert (a[probs] - b[probs]).abs().to_numpy().max() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize(("method", "model"), [("logreg", "minilm"), ("lora", "minilm")])
def test_bundled_model_runs_predict_their_own_split_as_their_predictions_csv(method, model, runs_dir, eval_file, tmp_path):
    run = _finetune(runs_dir, model, eval_file, method, f"slow-{method}")
    out = tmp_path / "pred.parquet"
    assert main(["predict", f"slow-{method}", str(eval_file), "--out", str(out), "--batch-rows", "10"]) == 0
    _assert_same_as_run(run, out)


def test_a_text_column_named_like_a_label_column_is_not_taken_for_labels(tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame({"text": ["awful", "fine"], "output": ["a long reply " * 20, "another long reply " * 20]}).to_csv(
        src, index=False
    )
    predictor = predict.Predictor("fake", "classifier", ["negative", "positive"], _by_word)
    summary = predict.predict_file(predictor, src, tmp_path / "out.csv")
    assert summary.rows == 2 and summary.label_counts == {"negative": 1, "positive": 1}
    assert list(pd.read_csv(tmp_path / "out.csv")["output"].str.len()) == [260, 380]


def test_continual_step_run_predicts_its_own_rows_as_its_predictions_csv(tiny_bert_dir, runs_dir, tmp_path, capsys):
    base = [
        "continual",
        "--train",
        "reviews",
        "finance_news:train",
        "--eval",
        "reviews:validation",
        "finance_news",
        "--model",
        str(tiny_bert_dir),
        "--epochs",
        "1",
        "--lr",
        "1e-3",
        "--max-train-examples",
        "32",
    ]
    assert main([*base, "--strategy", "naive", "--out", "seq"]) == 0
    rows = pd.read_csv(runs_dir / "seq.step2" / "predictions.csv", dtype=str, keep_default_na=False)[["id", "text", "label"]]
    src = tmp_path / "rows.csv"
    rows.to_csv(src, index=False)
    out = tmp_path / "pred.csv"
    assert main(["predict", "seq.step2", str(src), "--out", str(out)]) == 0
    _assert_same_as_run(runs_dir / "seq.step2", out)
    assert main([*base, "--strategy", "lora-per-task", "--out", "per-task"]) == 0
    capsys.readouterr()
    _refused(["predict", "per-task.step2", str(src), "--out", str(out)], capsys, "scores each task with its own adapter")
