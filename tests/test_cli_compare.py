"""`python -m core compare` and `python -m core efficiency`: outputs, files, and one-sentence errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from core.cli import compare as cli_compare
from core.cli import main
from tests.compare_fixtures import make_run

ROOT = Path(__file__).resolve().parent.parent


def test_compare_prints_table_and_writes_report_and_csv(runs_dir, tmp_path, capsys):
    a = make_run(runs_dir, "prompt-a", 0.8, seed=1)
    b = make_run(runs_dir, "ft-b", 0.6, kind="finetune", seed=2, n_train_examples=64)
    html, csv = tmp_path / "report.html", tmp_path / "joined.csv"
    assert main(["compare", str(a), str(b), "--html", str(html), "--csv", str(csv), "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "prompt-a" in out and "ft-b" in out and "McNemar" in out and "[" in out
    joined = pd.read_csv(csv)
    assert len(joined) == 60 and {"pred@prompt-a", "pred@ft-b", "correct@ft-b"} <= set(joined.columns)
    text = html.read_text()
    assert "<svg" in text and "http://" not in text and "https://" not in text and "<script" not in text
    assert "python -m core finetune" in text  # reproduce commands


def test_compare_accepts_run_names_under_the_runs_folder(runs_dir, capsys):
    make_run(runs_dir, "one", 0.8, seed=1)
    make_run(runs_dir, "two", 0.7, seed=2)
    assert main(["compare", "one", "two", "--resamples", "100"]) == 0


def test_compare_refuses_mismatched_splits_with_exit_2(runs_dir, tmp_path):
    a = make_run(runs_dir, "a", 0.8)
    b = make_run(runs_dir, "b", 0.8, eval_sha256="other")
    proc = subprocess.run(
        [sys.executable, "-m", "core", "compare", str(a), str(b)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PFT_RUNS_DIR": str(runs_dir)},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: These runs were evaluated on different splits") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "'b' on other" in proc.stderr  # one sentence naming the odd run out


def test_compare_refuses_missing_run_and_bad_report_folder(runs_dir, tmp_path, capsys):
    a = make_run(runs_dir, "a", 0.8)
    assert main(["compare", str(a), str(tmp_path / "nope")]) == 2
    assert "There is no run folder" in capsys.readouterr().err
    b = make_run(runs_dir, "b", 0.7, seed=3)
    assert main(["compare", str(a), str(b), "--html", str(tmp_path / "missing" / "r.html"), "--resamples", "100"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_efficiency_plan_builds_prompt_and_finetune_commands():
    plan = cli_compare.EfficiencyPlan(
        prefix="eff", data_argv=["--train", "reviews", "--eval", "reviews"], sizes=[16, 64], shots=[0, 4], max_train_seconds=30
    )
    cmds = dict(plan.commands())
    assert cmds["eff-prompt-4shot"][:1] == ["prompt"] and "--shots" in cmds["eff-prompt-4shot"]
    ft = cmds["eff-full-64"]
    assert ft[ft.index("--max-train-examples") + 1] == "64" and ft[ft.index("--max-train-seconds") + 1] == "30"
    assert ft[-2:] == ["--out", "eff-full-64"]


def test_efficiency_runs_each_command_and_prints_the_table(runs_dir, monkeypatch, capsys):
    started = []

    def fake_run(cmd, timeout, capture_output, text):
        name = cmd[cmd.index("--out") + 1]
        started.append(cmd[3])
        if name.endswith("full-64"):
            return subprocess.CompletedProcess(cmd, 2, "", "error: out of time.")
        kind = "prompt" if cmd[3] == "prompt" else "finetune"
        make_run(runs_dir, name, 0.7, kind=kind, n_train_examples=int(name.rsplit("-", 1)[1].replace("shot", "")))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(cli_compare.subprocess, "run", fake_run)
    assert (
        main(
            [
                "efficiency",
                "--train",
                "reviews",
                "--eval",
                "reviews",
                "--sizes",
                "16,64",
                "--shots",
                "0,4",
                "--methods",
                "full",
                "--prefix",
                "eff",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert started == ["prompt", "prompt", "finetune", "finetune"]
    assert "failed eff-full-64: error: out of time." in out and "eff-full-16" in out


def test_efficiency_refuses_bad_counts(capsys):
    assert main(["efficiency", "--train", "reviews", "--eval", "reviews", "--shots", "a,b"]) == 2
    assert (
        "--shots must be whole numbers from 0 to 1000000, separated by spaces or commas; 'a' is not." in capsys.readouterr().err
    )


def test_compare_prints_the_verdict_first_then_caveats_and_the_baseline_rows(runs_dir, capsys):
    a = make_run(runs_dir, "prompt-a", 0.0, seed=1)  # always wrong: below the majority baseline
    b = make_run(
        runs_dir,
        "ft-b",
        0.8,
        kind="finetune",
        seed=2,
        config_extra={"epochs": 3.0},
        metrics_extra={"stopped_by": "max_train_seconds", "epochs_done": 1.6},
    )
    assert main(["compare", str(a), str(b), "--resamples", "100"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0].startswith("Verdict: Fine-tuning beats prompting: the best fine-tune run 'ft-b' reaches macro-F1")
        and "McNemar p" in lines[0]
    )
    caveats = [line for line in lines if line.startswith("caveat: ")]
    assert lines[1 : 1 + len(caveats)] == caveats and len(caveats) == 3  # 60 examples, time budget, below majority
    rows = {}
    for line in lines:  # the first table (metrics) names each run first; per-class F1 follows
        if line.split()[:1] in (["prompt-a"], ["ft-b"], ["majority"], ["stratified"]):
            rows.setdefault(line.split()[0], line)
    assert "below majority" in rows["prompt-a"] and "time budget" in rows["ft-b"]
    assert "baseline" in rows["majority"] and "baseline" in rows["stratified"]
