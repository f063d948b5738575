"""Dead jobs are reconciled by every entry point, and `python -m core runs` lists and prunes (issue 13 item 9)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from core import runs
from core.cli import main
from tests.test_faults import CONFIG, finished_run


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


@pytest.fixture
def killed_job(runs_dir):
    """A fine-tune that was kill -9'd: status 'running' with a dead pid, and its empty .ckpt folder; plus a live one."""
    finished_run(runs_dir, "earlier")
    dead = runs.RunDir(runs_dir / "ft-killed").create({**CONFIG, "kind": "finetune"})
    dead.set_status("running", pid=dead_pid(), done=7, total=100)
    (runs_dir / ".ckpt-ft-killed").mkdir()
    live = runs.RunDir(runs_dir / "ft-live").create({**CONFIG, "kind": "finetune"})
    import os

    live.set_status("running", pid=os.getpid())
    (runs_dir / ".ckpt-ft-live").mkdir()
    return runs_dir


def test_any_cli_command_reconciles_dead_jobs(killed_job, capsys):
    assert main(["models"]) == 0
    status = json.loads((killed_job / "ft-killed" / "status.json").read_text())
    assert status["state"] == "failed" and "ended without finishing" in status["error"]
    assert not (killed_job / ".ckpt-ft-killed").exists()
    assert (killed_job / ".ckpt-ft-live").is_dir()  # a live job's folder is kept
    assert json.loads((killed_job / "ft-live" / "status.json").read_text())["state"] == "running"


def test_app_entry_point_reconciles_dead_jobs(killed_job, open_page):
    at = open_page("app_pages/data.py")
    assert not at.exception
    assert json.loads((killed_job / "ft-killed" / "status.json").read_text())["state"] == "failed"
    assert not (killed_job / ".ckpt-ft-killed").exists()


def test_runs_lists_state_and_metrics(killed_job, capsys):
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == {"earlier", "ft-killed", "ft-live"}
    assert "succeeded" in lines["earlier"] and "0.500" in lines["earlier"] and "failed" in lines["ft-killed"]


def test_prune_without_yes_on_a_pipe_removes_nothing(killed_job, capsys, monkeypatch):
    (killed_job / ".ckpt-gone").mkdir()
    (killed_job / ".ckpt-gone" / "weights.bin").write_bytes(b"x")  # non-empty leftover of a run that no longer exists
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["runs", "--prune"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert (killed_job / "ft-killed").is_dir() and (killed_job / ".ckpt-gone").is_dir()


def test_prune_with_yes_removes_failed_runs_and_leftovers(killed_job, capsys):
    (killed_job / ".ckpt-gone").mkdir()
    (killed_job / ".ckpt-gone" / "weights.bin").write_bytes(b"x")
    assert main(["runs", "--prune", "--yes"]) == 0
    names = sorted(p.name for p in killed_job.iterdir() if p.is_dir())
    assert names == [".ckpt-ft-live", "earlier", "ft-live"]
    assert "removed 1 runs and 1 leftover folders" in capsys.readouterr().out


def test_prune_removes_a_failed_continual_run_with_its_step_runs(runs_dir, capsys):
    from tests.test_runs import make_continual_run

    make_continual_run(runs_dir, "seq")
    runs.RunDir(runs_dir / "seq").set_status("failed", error="x")  # step 2 crashed after step 1 and 2 were saved
    runs.RunDir(runs_dir / "seq.step2").set_status("failed")  # doomed twice over: removed once
    assert main(["runs", "--prune", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "run seq (failed) with its step runs seq.step1, seq.step2" in out and "removed 3 runs" in out
    assert not any(p.name.startswith("seq") for p in runs_dir.iterdir())


def test_prune_removes_a_failed_search_with_its_trial_runs(runs_dir, capsys):
    from tests.test_runs import make_search

    make_search(runs_dir, "s")
    runs.RunDir(runs_dir / "s").set_status("failed", error="x")  # its re-training failed after two trials
    assert main(["runs", "--prune", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "run s (failed) with its 2 trial runs s.trial*" in out and "removed 3 runs" in out
    assert not any(p.name.startswith("s") for p in runs_dir.iterdir())


# ---- issue 13 item 12: cancelled runs say so, and how far they got ------------------------------------------------


def test_cancelled_prompt_run_says_where_it_stopped(runs_dir, tiny_llama_dir, monkeypatch, capsys):
    from core import prompting

    def interrupted(config, train, eval_df, labels, progress):
        progress(3, 6)
        raise KeyboardInterrupt  # what SIGTERM from jobs.cancel becomes

    monkeypatch.setattr(prompting, "run_prompting", interrupted)
    assert main(["prompt", "--train", "reviews", "--eval", "reviews", "--model", str(tiny_llama_dir), "--out", "stopped"]) == 130
    status = runs.RunDir(runs_dir / "stopped").status
    assert status["state"] == "cancelled" and status["error"] == "Cancelled at row 3 of 6."


def test_runs_page_shows_cancelled_with_the_step_reached(runs_dir, open_page):
    finished_run(runs_dir, "earlier")
    run = runs.RunDir(runs_dir / "ft-stopped").create({**CONFIG, "kind": "finetune"})
    run.set_status("running", done=40, total=100)
    run.set_status("cancelled", error="Cancelled by the user at step 40 of 100.")
    at = open_page("app_pages/runs.py", runs_this_dataset=False)  # these runs record no dataset the sidebar loads
    assert not at.exception
    table = at.dataframe[0].value.set_index("name")
    assert table.at["ft-stopped", "state"] == "cancelled at step 40 of 100" and table.at["earlier", "state"] == "succeeded"
    assert table["accuracy"].isna()["ft-stopped"]  # shown as the table's placeholder, not 'None'
