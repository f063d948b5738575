"""AppTest of the Apply page: no runs yet, a finished predict job's counts, chart, surge flags and download; and the
background job the page starts (core.predict.start_job) writing the labelled file."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from core import predict
from core.cli import main
from core.runs import RunDir


@pytest.fixture
def logreg_run(runs_dir, tiny_bert_dir):
    argv = [
        "finetune",
        "--train",
        "reviews",
        "--eval",
        "reviews",
        "--model",
        str(tiny_bert_dir),
        "--method",
        "logreg",
        "--max-train-examples",
        "48",
        "--dev",
        "none",
        "--out",
        "lr",
    ]
    assert main(argv) == 0
    return runs_dir / "lr"


def news(tmp_path):
    """Ten days of six rows; on day 9 the texts say 'awful' (negative for the stand-in scorer below)."""
    days = pd.date_range("2026-03-01", periods=10, freq="D")
    rows = [
        ("awful **day** <b>x</b>" if d == days[8] and k < 4 else "a [fine](http://x) day", str(d.date()))
        for d in days
        for k in range(6)
    ]
    path = tmp_path / "news.csv"
    pd.DataFrame(rows, columns=["text", "date"]).to_csv(path, index=False)
    return path


def test_without_finished_runs_the_page_says_where_to_start(runs_dir, open_page):
    at = open_page("app_pages/apply.py")
    assert not at.exception and "No finished run yet" in at.info[0].value


def test_a_finished_job_shows_counts_chart_flags_and_download(logreg_run, runs_dir, tmp_path, open_page, monkeypatch):
    import numpy as np

    real = predict.load_predictor

    def by_word(run_ref, device="auto"):  # the tiny random model labels at random: a scorer that reads the word instead
        p = real(run_ref, device)
        p.score = lambda texts: np.array([[0.9, 0.05, 0.05] if "awful" in t else [0.1, 0.1, 0.8] for t in texts])
        return p

    monkeypatch.setattr(predict, "load_predictor", by_word)
    assert (
        main(
            [
                "predict",
                "lr",
                str(news(tmp_path)),
                "--out",
                str(runs_dir / "predict-lr-1" / "labelled.csv"),
                "--time-col",
                "date",
                "--job",
                "predict-lr-1",
            ]
        )
        == 0
    )
    job = RunDir(runs_dir / "predict-lr-1")
    assert job.status["state"] == "succeeded", job.status
    assert json.loads((job.path / "metrics.json").read_text())["rows"] == 60
    at = open_page("app_pages/apply.py")
    assert not at.exception
    assert [s.value for s in at.selectbox if s.key == "apply_past"] == ["predict-lr-1"]
    at.selectbox(key="apply_alert_label_predict-lr-1").set_value("negative").run()
    at.number_input(key="apply_threshold_predict-lr-1").set_value(40.0).run()
    assert not at.exception
    assert any("1 day(s) where the share of negative surged by more than 40 points" in w.value for w in at.warning)
    flagged = [d.value for d in at.dataframe if "jump" in d.value.columns][0]
    assert list(flagged["period"]) == [pd.Timestamp("2026-03-09")] and flagged["jump"].iloc[0] == 66.7
    preview = [d.value for d in at.dataframe if "prob_negative" in d.value.columns][0]
    assert preview["text"].iloc[0] == "a [fine](http://x) day"  # shown as data in a table
    assert len(at.get("download_button")) == 1
    assert [c for c in at.get("vega_lite_chart") if "share of rows" in c.proto.spec]  # the share over time
    at.number_input(key="apply_threshold_predict-lr-1").set_value(70.0).run()
    assert any("No day where the share of negative surged" in s.value for s in at.success)


def test_the_page_job_labels_the_uploaded_file_in_the_background(logreg_run, runs_dir, tmp_path):
    raw = news(tmp_path).read_bytes()
    job = predict.start_job(raw, "news.csv", "lr", "text", "date", runs_dir)
    deadline = time.time() + 300  # a generous bound on waiting, not a speed claim
    while RunDir(job).status.get("state") in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
    status = RunDir(job).status
    assert status["state"] == "succeeded", (status, (job / "log.txt").read_text()[-2000:])
    labelled = pd.read_csv(job / predict.JOB_OUTPUT)
    assert len(labelled) == 60 and {"row", "text", "date", "label", "prob_positive"} <= set(labelled.columns)
    assert (job / "shares.csv").exists() and RunDir(job).config["run"] == "lr"
    assert json.loads((job / "job.json").read_text())["time-col"] == "date"
