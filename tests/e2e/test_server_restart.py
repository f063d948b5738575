"""kill -9 of the real app server while a fine-tune runs, then a restart: the job lives on in its own session, the
restarted app reattaches to it, the run ends complete, and the registry agrees with the run folders."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from core import jobs
from core.runs import RunDir, RunRegistry
from tests.app_server import serve_app
from tests.e2e.test_demo import ARTIFACTS, SLOW_STEP_MS, Demo, expect

pytestmark = pytest.mark.browser


def test_kill_9_of_the_server_during_a_finetune_then_restart(browser, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "server-restart.log"

    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    with serve_app(runs, log, PFT_MAX_JOBS="1") as url:
        demo = Demo(page, url)
        demo.open()
        demo.go("Fine-tune")
        demo.fill("Time budget (s, 0 = none)", "40")
        demo.click("Start fine-tuning")
        expect(demo.main()).to_contain_text(re.compile(r"step (\d+) of (\d+)"), timeout=SLOW_STEP_MS)
        (run_path,) = [p for p in runs.iterdir() if p.is_dir() and p.name.startswith("finetune-")]
        job_pid = RunDir(run_path).status["pid"]
        os.kill(url.process.pid, signal.SIGKILL)  # the server dies mid-run, with no chance to clean up
        url.process.wait(timeout=10)
        assert jobs.pid_alive(job_pid), "the job died with the server"

    page.close()
    page = context.new_page()
    with serve_app(runs, log, PFT_MAX_JOBS="1") as url:
        demo = Demo(page, url)
        demo.open()
        demo.go("Fine-tune")
        # the restarted app finds the job from the run folders and follows it to the end
        expect(demo.main()).to_contain_text(run_path.name, timeout=60_000)
        expect(demo.main()).to_contain_text(re.compile(rf"{re.escape(run_path.name)} · succeeded"), timeout=SLOW_STEP_MS)
        demo.settle()
        demo.assert_healthy()
        page.screenshot(path=str(ARTIFACTS / "08-restart-reattached.png"), full_page=True)
    context.close()

    run = RunDir(run_path)
    assert run.status["state"] == "succeeded" and run.metrics["n_examples"] > 0
    assert (run_path / "predictions.csv").exists() and (run_path / "model").is_dir()
    assert not [p for p in run_path.rglob("*.tmp")], "a partial file was left behind"
    listed = RunRegistry(runs).list()
    assert listed.set_index("name").loc[run_path.name, "state"] == "succeeded"
    deadline = time.time() + 10
    while jobs.pid_alive(job_pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not jobs.pid_alive(job_pid)
