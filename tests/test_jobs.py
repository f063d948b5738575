"""Background jobs on the tiny BERT: cancel mid-run, kill -9, a crash inside training, two starts at once, a bad start.

In each case the run folder and the registry must agree and nothing already written may be lost."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from core import jobs
from core.errors import UserError
from core.runs import RunDir, RunRegistry, checkpoint_dir


def finetune_argv(model_dir: Path, name: str, epochs: int = 100) -> list[str]:
    return [
        "finetune",
        "--train",
        "reviews",
        "--eval",
        "reviews",
        "--model",
        str(model_dir),
        "--method",
        "full",
        "--epochs",
        str(epochs),
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
        "--seed",
        "1",
        "--out",
        name,
    ]


def wait_for(predicate, timeout: float = 90.0, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def training_started(run: RunDir) -> bool:
    status = run.status
    assert status.get("state") not in ("failed", "cancelled"), status
    return status.get("state") == "running" and not run.history().empty


def registry_state(root: Path, name: str) -> str:
    df = RunRegistry(root).list()
    return df.set_index("name").loc[name, "state"]


def test_cancel_mid_run_keeps_what_was_written(runs_dir, tiny_bert_dir):
    run = RunDir(runs_dir / "to-cancel")
    pid = jobs.launch(finetune_argv(tiny_bert_dir, run.name), run.path)
    assert registry_state(runs_dir, run.name) == "queued"  # visible from the first instant
    wait_for(lambda: training_started(run), what="training to start")
    lines_before = len(run.history())
    status = jobs.cancel(run, grace_seconds=20)
    assert status["state"] == "cancelled"
    assert not jobs.pid_alive(pid)
    assert re.fullmatch(r"Cancelled by the user at step \d+ of \d+\.", run.status["error"])  # where it stopped (issue 13 item 12)
    assert len(run.history()) >= lines_before and run.config["kind"] == "finetune"
    assert run.metrics is None and not (run.path / "model").exists()
    assert registry_state(runs_dir, run.name) == "cancelled"
    assert not checkpoint_dir(run.path).exists()
    assert (run.path / "log.txt").exists()


def test_kill_9_is_noticed_and_marked_failed(runs_dir, tiny_bert_dir):
    run = RunDir(runs_dir / "killed")
    pid = jobs.launch(finetune_argv(tiny_bert_dir, run.name), run.path)
    wait_for(lambda: training_started(run), what="training to start")
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not jobs.pid_alive(pid), 10, "the process to die")
    status = jobs.refresh(run)
    assert status["state"] == "failed" and "ended without finishing" in status["error"]
    assert not run.history().empty and run.config["kind"] == "finetune"
    assert registry_state(runs_dir, run.name) == "failed"
    RunRegistry(runs_dir).delete(run.name)  # a dead run can be cleaned up, its checkpoints too
    assert not run.path.exists() and not checkpoint_dir(run.path).exists()


def test_crash_inside_training_is_marked_failed_with_its_error(runs_dir, tiny_bert_dir, tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertModel

    # a model whose vocabulary is smaller than its tokenizer's: the first forward pass raises IndexError
    broken = tmp_path / "broken-bert"
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    BertModel(
        BertConfig(
            vocab_size=20, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64, pad_token_id=0
        )
    ).save_pretrained(broken)
    tokenizer.save_pretrained(broken)
    run = RunDir(runs_dir / "crashes")
    pid = jobs.launch(finetune_argv(broken, run.name, epochs=1), run.path)
    wait_for(lambda: run.status.get("state") == "failed", what="the crash to be recorded")
    wait_for(lambda: not jobs.pid_alive(pid), 20, "the process to exit")
    error = run.status["error"]
    assert error.startswith("Training crashed (IndexError") and "\n" not in error
    assert (run.path / "traceback.txt").exists()
    assert "error: Training crashed" in (run.path / "log.txt").read_text()
    assert registry_state(runs_dir, run.name) == "failed"
    assert not checkpoint_dir(run.path).exists()


def test_two_starts_at_once_only_one_runs(runs_dir, tiny_bert_dir):
    outcomes: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def start(name: str):
        barrier.wait()
        try:
            outcomes[name] = jobs.launch(finetune_argv(tiny_bert_dir, name), runs_dir / name)
        except UserError as e:
            outcomes[name] = e

    threads = [threading.Thread(target=start, args=(n,)) for n in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [n for n, v in outcomes.items() if isinstance(v, int)]
    refused = [v for v in outcomes.values() if isinstance(v, UserError)]
    assert len(started) == 1 and len(refused) == 1
    assert "already running" in str(refused[0])
    loser = ({"first", "second"} - set(started)).pop()
    assert not (runs_dir / loser).exists()  # the refused start left nothing behind
    with pytest.raises(UserError, match="already running"):
        jobs.launch(finetune_argv(tiny_bert_dir, "third"), runs_dir / "third")
    run = RunDir(runs_dir / started[0])
    assert jobs.cancel(run, grace_seconds=20)["state"] == "cancelled"
    assert list(RunRegistry(runs_dir).list()["name"]) == started
    assert jobs.active_runs(runs_dir) == []


def test_a_job_that_dies_before_writing_its_config_gets_its_error(runs_dir, tiny_bert_dir):
    run = RunDir(runs_dir / "bad-start")
    argv = ["finetune", "--train", "no-such-file.csv", "--eval", "reviews", "--model", str(tiny_bert_dir), "--out", run.name]
    pid = jobs.launch(argv, run.path)
    wait_for(lambda: not jobs.pid_alive(pid), 60, "the job to exit")
    status = jobs.refresh(run)
    assert status["state"] == "failed"
    assert "There is no file" in status["error"]
    assert registry_state(runs_dir, run.name) == "failed"
    with pytest.raises(UserError, match="already exists"):
        jobs.launch(argv, run.path)
