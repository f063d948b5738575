"""The job watcher the Prompting, Fine-tune and Continual pages share (ui.jobs): it reattaches to a job found from the run
folders, shows its progress and ETA, cancels it, and says how it ended."""

from __future__ import annotations

import subprocess

from streamlit.testing.v1 import AppTest

from core.runs import RunDir


def _watcher():
    from core.runs import runs_root
    from ui import jobs as job_watcher

    job_watcher.panel("finetune", runs_root())


def test_the_watcher_reattaches_to_a_running_job_and_cancels_it(runs_dir):
    job = subprocess.Popen(["sleep", "120"], start_new_session=True)  # stands in for a job started from another tab
    try:
        run = RunDir(runs_dir / "from-another-tab").create({"kind": "finetune", "dataset": {"eval_sha256": "abc"}})
        run.set_status("running", pid=job.pid, progress=0.5, done=10, total=20, eta_seconds=30.0)
        at = AppTest.from_function(_watcher, default_timeout=60).run()
        assert not at.exception
        assert at.subheader[0].value == "Run `from-another-tab` · running"  # found from the run folders, nothing in the session
        assert at.get("progress")[0].proto.text == "step 10 of 20 · about 30 s left"
        assert at.session_state["finetune_job"] == ["from-another-tab"]  # remembered: it stays shown once it has ended
        at.button(key="finetune_cancel_from-another-tab").click().run()
        assert not at.exception
        assert job.wait(timeout=10) is not None and run.status["state"] == "cancelled"
        at.run()
        assert at.subheader[0].value == "Run `from-another-tab` · cancelled" and not at.button
        assert at.warning[0].value.startswith("Cancelled. Cancelled by the user at step 10 of 20")
    finally:
        job.kill()
        job.wait()


def test_a_job_of_another_kind_is_named_and_not_watched(runs_dir):
    RunDir(runs_dir / "prompt-job").create({"kind": "prompt"})  # queued
    at = AppTest.from_function(_watcher, default_timeout=60).run()
    assert not at.exception and not at.subheader
    assert "A prompt job is running (prompt-job); a finetune run can start when it ends." in at.info[0].value


def test_progress_words_per_kind():
    from ui.jobs import progress_line

    assert progress_line("prompt", {"state": "running", "progress": 0.5, "done": 6, "total": 12, "of": 99}) == (
        0.5,
        "example 6 of 12 (a sample of 99)",
    )
    assert progress_line("continual", {"state": "running", "progress": 0.5, "done": 3, "total": 6, "task": 2, "tasks": 2}) == (
        0.75,
        "task 2 of 2 · step 3 of 6",
    )
    assert progress_line("finetune", {"state": "queued"}) == (0.0, "starting (loading data and the model)…")
