"""One run lifecycle (core.jobs.run_job, core.runs.RunRecord, core.progress.Reporter): every command that writes a run
folder ends it the same way on failure, cancel and crash, records itself through one dataclass, and reports progress
and ETA through one reporter."""

from __future__ import annotations

import os
import signal

import pytest

from core import jobs, progress, runs
from core.cli import main
from core.errors import JobEnded, UserError
from tests.test_faults import CONFIG


def made_run(runs_dir, name="r") -> runs.RunDir:
    run = runs.RunDir(runs_dir / name).create(CONFIG)
    run.set_status("running", done=3, total=10)
    return run


# ---- RunRecord -----------------------------------------------------------------------------------------------------


def test_a_record_writes_kind_settings_then_what_it_knows_and_names_the_record_only_keys():
    record = runs.RunRecord("continual", {"name": "a → b"}, ["x", "y"], "python -m core continual", method="replay")
    config = record.config({"strategy": "replay", "method": "ignored", "epochs": 2})
    assert config == {
        "kind": "continual",
        "strategy": "replay",
        "method": "replay",
        "epochs": 2,
        "dataset": {"name": "a → b"},
        "labels": ["x", "y"],
        "command": "python -m core continual",
    }  # None fields (grid, auto, ...) left out
    assert {"kind", "dataset", "labels", "command", "grid", "auto", "endpoint", "world_size"} <= runs.RECORD_KEYS
    assert "epochs" not in runs.RECORD_KEYS


def test_a_runs_own_config_is_a_config_file_again():
    from core.cli import build_parser, config_defaults

    config = runs.RunRecord(
        "finetune",
        {"name": "reviews", "train": "reviews", "eval": "reviews"},
        ["neg", "pos"],
        "cmd",
        n_train_examples=40,
        dev_set="none",
        n_dev_examples=0,
        world_size=1,
    ).config({"method": "head", "epochs": 2})
    values = config_defaults(build_parser().commands["finetune"], "finetune", config, "config.json")
    assert values["method"] == "head" and values["epochs"] == 2 and values["train"] == "reviews"
    assert not {"labels", "command", "world_size", "n_dev_examples"} & set(values)


# ---- run_job -------------------------------------------------------------------------------------------------------


def test_a_user_error_fails_the_run_with_its_sentence(runs_dir):
    run = made_run(runs_dir)
    with pytest.raises(UserError), jobs.run_job(run, "prompt", made=True):
        raise UserError("No such file.")
    assert run.status["state"] == "failed" and run.status["error"] == "No such file."


def test_sigterm_on_an_interruptible_run_cancels_it_by_the_user(runs_dir):
    run = made_run(runs_dir)
    with pytest.raises(JobEnded) as ended, jobs.run_job(run, "prompt", made=True):
        os.kill(os.getpid(), signal.SIGTERM)  # what jobs.cancel sends
    assert ended.value.code == 130 and str(run.path) in ended.value.message
    assert run.status["state"] == "cancelled" and run.status["error"] == "Cancelled by the user at row 3 of 10."


def test_sigterm_on_a_graceful_run_only_sets_its_stop_event(runs_dir):
    run = made_run(runs_dir)
    run.set_status("running", done=4, total=10)
    with pytest.raises(JobEnded), jobs.run_job(run, "finetune", graceful=True, made=True) as job:
        os.kill(os.getpid(), signal.SIGTERM)
        assert job.stop.is_set() and run.status["state"] == "running"  # training goes on to its next step
        raise jobs.Cancelled
    assert run.status["error"] == "Cancelled by the user at step 4 of 10."


def test_ctrl_c_cancels_without_by_the_user_and_the_sigterm_handler_is_restored(runs_dir):
    before = signal.getsignal(signal.SIGTERM)
    run = made_run(runs_dir)
    with pytest.raises(JobEnded), jobs.run_job(run, "continual", graceful=True, made=True):
        raise KeyboardInterrupt
    assert run.status["error"] == "Cancelled at step 3 of 10."  # a continual run counts steps, not rows
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_crash_keeps_its_traceback_and_fails_the_run_and_the_rest_of_a_grid(runs_dir):
    run, later = made_run(runs_dir, "a"), made_run(runs_dir, "b")
    with pytest.raises(JobEnded) as ended, jobs.run_job(run, "predict", made=True, rest=[later]):
        raise RuntimeError("boom\nsecond line")
    assert ended.value.code == 1 and ended.value.message == "error: Labelling crashed (RuntimeError: boom)."
    assert (
        run.status["error"] == "Labelling crashed (RuntimeError: boom)."
        and "second line" in (run.path / "traceback.txt").read_text()
    )
    assert later.status["state"] == "failed" and later.status["error"].startswith("Not run: a failed first (Labelling crashed")


def test_a_final_state_written_by_another_process_is_kept(runs_dir):
    run = made_run(runs_dir)
    run.set_status("succeeded")  # e.g. the search's re-training subprocess finished the result run
    with pytest.raises(JobEnded), jobs.run_job(run, "search", made=True):
        raise RuntimeError("boom")
    assert run.status["state"] == "succeeded"


def test_a_prompt_crash_is_one_sentence_not_a_traceback(runs_dir, tiny_llama_dir, monkeypatch, capsys):
    from core import prompting

    def crashes(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(prompting, "run_prompting", crashes)
    assert main(["prompt", "--train", "reviews", "--eval", "reviews", "--model", str(tiny_llama_dir), "--out", "crashed"]) == 1
    run = runs.RunDir(runs_dir / "crashed")
    assert run.status["state"] == "failed" and run.status["error"] == "Prompting crashed (RuntimeError: boom)."
    assert "RuntimeError: boom" in (run.path / "traceback.txt").read_text()
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: Prompting crashed (RuntimeError: boom)."


# ---- Reporter ------------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_reporter_writes_progress_and_eta_at_the_average_rate(runs_dir, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "time", clock)
    run = made_run(runs_dir)
    report = progress.Reporter(run)
    clock.now += 10
    report(5, 20, of=30)
    status = run.status
    assert (status["progress"], status["done"], status["total"], status["of"]) == (0.25, 5, 20, 30)
    assert status["eta_seconds"] == 30.0 and status["pid"] == os.getpid()


def test_the_eta_is_capped_by_a_time_budget_and_ignores_work_done_before(runs_dir, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "time", clock)
    run = made_run(runs_dir)
    progress.Reporter(run, budget_seconds=12)(5, 20, force=True)  # no time passed: no rate yet
    assert run.status["eta_seconds"] is None
    capped, resumed = progress.Reporter(run, budget_seconds=12), progress.Reporter(run, done_before=4)
    clock.now += 10
    capped(5, 20)
    assert run.status["eta_seconds"] == 2.0  # 30 s at this rate, but the budget has 2 s left
    resumed(5, 20)
    assert run.status["eta_seconds"] == 150.0  # one trial in 10 s, 15 to go


def test_status_writes_are_throttled_but_not_the_bar(runs_dir, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "time", clock)
    run = made_run(runs_dir)
    report = progress.Reporter(run, every_seconds=1.0)
    clock.now += 2
    report(1, 10)
    clock.now += 0.5
    report(2, 10)
    assert run.status["done"] == 1
    report(3, 10, force=True)
    assert run.status["done"] == 3
