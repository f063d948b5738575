"""Faults: a full disk or a permission error while saving a run, corrupt or vanished run folders, a killed job."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from core import runs
from core.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {"kind": "prompt", "model": "tiny", "method": "0-shot", "dataset": {"name": "reviews", "eval_sha256": "abc"}}
METRICS = {"accuracy": 0.5, "macro_f1": 0.4, "labels": ["neg", "pos"], "n_examples": 2}


def finished_run(root: Path, name: str) -> runs.RunDir:
    """A complete, succeeded run (config, status, metrics, predictions)."""
    run = runs.RunDir(root / name).create(CONFIG)
    preds = pd.DataFrame(
        {
            "id": ["t-0", "t-1"],
            "text": ["good", "bad"],
            "label": ["pos", "neg"],
            "pred": ["pos", "pos"],
            "confidence": [0.9, 0.6],
            "prob_neg": [0.1, 0.4],
            "prob_pos": [0.9, 0.6],
        }
    )
    runs.finish_with_metrics(run, METRICS, preds)
    return run


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes), ignoring the SQLite index."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and "index.sqlite" not in p.name
    }


def leftovers(root: Path) -> list[str]:
    """Temp files an interrupted atomic write would leave behind."""
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".convert-")]


def raise_os_error(code: int):
    """A replacement for a file operation that fails as a full disk or a forbidden folder would."""

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_disk_full_while_writing_a_run_file(runs_dir, monkeypatch, code):
    earlier = finished_run(runs_dir, "earlier")
    before = snapshot(runs_dir)
    run = runs.RunDir(runs_dir / "new").create(CONFIG)
    monkeypatch.setattr(runs.os, "replace", raise_os_error(code))
    with pytest.raises(UserError, match=rf"Could not save metrics.json in .*new: {os.strerror(code)}\."):
        run.write("metrics.json", METRICS)
    with pytest.raises(UserError, match=os.strerror(code)):
        run.set_status("running", progress=0.5)
    monkeypatch.undo()
    assert leftovers(runs_dir) == []
    assert {k: v for k, v in snapshot(runs_dir).items() if k.startswith("earlier")} == before
    assert runs.RunDir(runs_dir / "new").status["state"] == "queued"  # the old status survived, not half a new one
    assert earlier.metrics == {
        **METRICS,
        "peak_memory_mb": earlier.metrics["peak_memory_mb"],
    }  # finish_with_metrics adds the peak


def test_disk_full_while_writing_bytes_leaves_no_temp_file(runs_dir, monkeypatch):
    run = runs.RunDir(runs_dir / "new").create(CONFIG)
    real_fdopen = os.fdopen

    def fdopen_that_fills_the_disk(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        f.write = raise_os_error(errno.ENOSPC)
        return f

    monkeypatch.setattr(runs.os, "fdopen", fdopen_that_fills_the_disk)
    with pytest.raises(UserError, match="No space left on device"):
        run.write("metrics.json", METRICS)
    monkeypatch.undo()
    assert leftovers(runs_dir) == []
    assert not (runs_dir / "new" / "metrics.json").exists()


def test_disk_full_while_saving_predictions_is_a_clear_error(runs_dir, monkeypatch):
    earlier = finished_run(runs_dir, "earlier")
    run = runs.RunDir(runs_dir / "new").create(CONFIG)
    monkeypatch.setattr(runs.os, "replace", raise_os_error(errno.ENOSPC))
    with pytest.raises(UserError, match="No space left on device"):
        runs.finish_with_metrics(run, METRICS, earlier.predictions())
    monkeypatch.undo()
    assert leftovers(runs_dir) == []
    assert run.status["state"] == "queued"  # never marked succeeded without its files
    assert runs.RunRegistry(runs_dir).list().set_index("name").loc["earlier", "state"] == "succeeded"


def test_permission_error_creating_the_run_folder(runs_dir, monkeypatch):
    finished_run(runs_dir, "earlier")
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.name == "new":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(UserError, match=r"Could not create the run folder .*new: Permission denied\."):
        runs.RunDir(runs_dir / "new").create(CONFIG)
    monkeypatch.undo()
    listed = runs.RunRegistry(runs_dir).list()
    assert listed["name"].tolist() == ["earlier"] and listed["state"].tolist() == ["succeeded"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_runs_folder(runs_dir):
    finished_run(runs_dir, "earlier")
    runs_dir.chmod(0o555)
    try:
        with pytest.raises(UserError, match="Could not create the run folder"):
            runs.RunDir(runs_dir / "new").create(CONFIG)
    finally:
        runs_dir.chmod(0o755)


@pytest.mark.parametrize(
    ("damage", "state"),
    [
        (lambda run: (run.path / "metrics.json").write_text("{not json"), "broken"),
        (lambda run: (run.path / "metrics.json").write_text('{"accuracy": "high"}'), "broken"),
        (lambda run: (run.path / "metrics.json").unlink(), "broken"),
        (lambda run: (run.path / "config.json").write_text("[1, 2"), "broken"),
        (lambda run: (run.path / "config.json").write_bytes(b"\xff\xfe\x00garbage"), "broken"),
        (lambda run: (run.path / "status.json").write_text(""), "broken"),
        (lambda run: (run.path / "status.json").unlink(), "broken"),
        (lambda run: (run.path / "config.json").write_text(json.dumps({"kind": 3, "dataset": "not a dict"})), "succeeded"),
        (lambda run: [p.unlink() for p in run.path.iterdir()], "broken"),
    ],
    ids=[
        "metrics-not-json",
        "metrics-wrong-type",
        "metrics-missing",
        "config-not-json",
        "config-binary",
        "status-empty",
        "status-missing",
        "config-odd-types",
        "folder-emptied",
    ],
)
def test_damaged_run_is_listed_as_broken_and_the_rest_works(runs_dir, damage, state):
    for name in ("a-good", "b-damaged", "c-good"):
        finished_run(runs_dir, name)
    damage(runs.RunDir(runs_dir / "b-damaged"))
    registry = runs.RunRegistry(runs_dir)
    listed = registry.list().set_index("name")
    assert sorted(listed.index) == ["a-good", "b-damaged", "c-good"]
    assert listed.loc["b-damaged", "state"] == state
    assert listed.loc[["a-good", "c-good"], "state"].tolist() == ["succeeded", "succeeded"]
    assert listed.loc["a-good", "accuracy"] == 0.5
    registry.delete("b-damaged")  # the broken run can be cleaned up from the list
    assert sorted(registry.list()["name"]) == ["a-good", "c-good"]


def test_run_folder_removed_behind_the_registrys_back(runs_dir):
    for name in ("a-good", "b-gone"):
        finished_run(runs_dir, name)
    registry = runs.RunRegistry(runs_dir)
    assert len(registry.list()) == 2
    shutil.rmtree(runs_dir / "b-gone")
    assert registry.list()["name"].tolist() == ["a-good"]
    with pytest.raises(UserError, match="There is no run named 'b-gone'"):
        registry.delete("b-gone")
    with pytest.raises(UserError, match="There is no run folder"):
        runs.open_run("b-gone")


def test_corrupt_index_is_rebuilt_from_the_folders(runs_dir):
    finished_run(runs_dir, "a-good")
    runs.RunRegistry(runs_dir).list()
    (runs_dir / "index.sqlite").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (runs_dir / f"index.sqlite{suffix}").unlink(missing_ok=True)
    try:
        listed = runs.RunRegistry(runs_dir).list()
    except Exception as e:  # the index is only a cache: a corrupt one must not take the run list down
        pytest.fail(f"a corrupt index.sqlite breaks the run list: {type(e).__name__}: {e}")
    assert listed["name"].tolist() == ["a-good"]


def test_half_written_history_line_is_skipped(runs_dir):
    run = runs.RunDir(runs_dir / "train").create({**CONFIG, "kind": "finetune"})
    run.append_history({"step": 1, "loss": 1.0})
    with open(run.path / "history.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 2, "lo')  # the writer was killed mid-line
    assert run.history()["step"].tolist() == [1]


def test_disk_full_while_creating_a_run_leaves_no_partial_files(runs_dir, monkeypatch):
    finished_run(runs_dir, "earlier")
    monkeypatch.setattr(runs.os, "replace", raise_os_error(errno.ENOSPC))
    with pytest.raises(UserError, match=r"Could not save config.json in .*new: No space left on device\."):
        runs.RunDir(runs_dir / "new").create(CONFIG)
    monkeypatch.undo()
    assert leftovers(runs_dir) == []
    assert not (runs_dir / "new").exists()  # the half-made run is removed
    listed = runs.RunRegistry(runs_dir).list().set_index("name")
    assert listed.loc["earlier", "state"] == "succeeded" and "new" not in listed.index


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    """Poll condition() until it returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def finetune_argv(model: Path, out: str, seconds: int, epochs: int) -> list[str]:
    """A small fine-tune of the tiny BERT on the reviews sample."""
    return [
        "finetune",
        "--train",
        "reviews",
        "--eval",
        "reviews",
        "--model",
        str(model),
        "--method",
        "head",
        "--epochs",
        str(epochs),
        "--max-train-seconds",
        str(seconds),
        "--max-length",
        "32",
        "--patience",
        "0",
        "--out",
        out,
    ]


SERVER = """
import sys, time
from pathlib import Path
from core import jobs
print(jobs.launch(sys.argv[2:], Path(sys.argv[1])), flush=True)
time.sleep(600)
"""


def test_kill_9_of_the_app_server_during_a_finetune(runs_dir, tiny_bert_dir):
    from core import jobs

    finished_run(runs_dir, "earlier")
    run_path = runs_dir / "ft-survives"
    # a stand-in for the Streamlit server: it starts the job exactly as the Fine-tune page does, then is killed -9
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(run_path), *finetune_argv(tiny_bert_dir, "ft-survives", 60, 3)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    job_pid = int(server.stdout.readline())
    run = runs.RunDir(run_path)
    wait_for(lambda: run.status.get("state") != "queued", 120, "the fine-tune to start")
    assert run.status["state"] == "running", (run.status, (run_path / "log.txt").read_text()[-2000:])
    os.kill(server.pid, signal.SIGKILL)
    server.wait(timeout=10)
    server.stdout.close()
    # "restart": a new process looks at the runs folder; the job runs on in its own session and finishes
    registry = runs.RunRegistry(runs_dir)
    assert registry.list().set_index("name").loc["ft-survives", "state"] in ("queued", "running")
    status = wait_for(lambda: (s := jobs.refresh(run)).get("state") in runs.FINAL_STATES and s, 240, "the job to finish")
    assert status["state"] == "succeeded", (status, (run_path / "log.txt").read_text()[-2000:])
    wait_for(lambda: not jobs.pid_alive(job_pid), 30, "the finished job's process to exit")
    listed = registry.list().set_index("name")
    assert listed.loc["ft-survives", "state"] == "succeeded" and listed.loc["ft-survives", "accuracy"] is not None
    assert listed.loc["earlier", "state"] == "succeeded"
    assert {"config.json", "status.json", "metrics.json", "predictions.csv", "history.jsonl"} <= {
        p.name for p in run_path.iterdir()
    }
    assert leftovers(runs_dir) == []


def test_kill_9_of_a_finetune_job_marks_it_failed(runs_dir, tiny_bert_dir):
    from core import jobs

    finished_run(runs_dir, "earlier")
    run_path = runs_dir / "ft-killed"
    pid = jobs.launch(finetune_argv(tiny_bert_dir, "ft-killed", 120, 100), run_path)
    run = runs.RunDir(run_path)
    wait_for(lambda: run.status.get("state") != "queued" and len(run.history()) > 0, 180, "training steps to be logged")
    assert run.status["state"] == "running", (run.status, (run_path / "log.txt").read_text()[-2000:])
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not jobs.pid_alive(pid), 10, "the job to die")
    status = jobs.refresh(run)
    assert status["state"] == "failed" and "ended without finishing" in status["error"]
    listed = runs.RunRegistry(runs_dir).list().set_index("name")
    assert listed.loc["ft-killed", "state"] == "failed" and listed.loc["earlier", "state"] == "succeeded"
    assert not (run_path / "metrics.json").exists()  # never a half-finished result that looks complete
    assert leftovers(runs_dir) == []
    assert jobs.active_runs(runs_dir) == []  # the dead job does not block the next one


STARTER = """
import sys, time
from pathlib import Path
from core import jobs
from core.errors import UserError
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))  # both sessions press Start at the same instant
try:
    print("started", jobs.launch(sys.argv[3:], Path(sys.argv[2])), flush=True)
except UserError as e:
    print("refused", e, flush=True)
"""


def test_two_sessions_starting_jobs_at_the_same_time(runs_dir, tiny_bert_dir):
    from core import jobs

    start_at = time.time() + 3
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(start_at), str(runs_dir / name), *finetune_argv(tiny_bert_dir, name, 30, 100)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("session-a", "session-b")
    ]
    outputs = [s.communicate(timeout=60)[0].strip() for s in starters]
    started = [o for o in outputs if o.startswith("started")]
    refused = [o for o in outputs if o.startswith("refused")]
    assert len(started) == 1 and len(refused) == 1, outputs
    assert "A job is already running" in refused[0]
    winner = next(runs.RunDir(runs_dir / n) for n, o in zip(("session-a", "session-b"), outputs) if o.startswith("started"))
    assert jobs.cancel(winner)["state"] in ("cancelled", "succeeded", "failed")
    assert sorted(runs.RunRegistry(runs_dir).list()["name"]) == [winner.name]  # the refused start left no folder behind
    assert leftovers(runs_dir) == []


# ---- issue 13 item 8: an index of another schema or version, and a locked index ----------------------------------


@pytest.mark.parametrize(
    "foreign",
    [
        "create table runs(name text primary key, state text)",
        "create table runs(name text primary key, kind text, model text, method text, dataset text, eval_sha256 text, "
        "state text, accuracy real, macro_f1 real, created real, path text); pragma user_version = 1",
    ],
)
def test_index_of_another_schema_or_version_is_rebuilt(runs_dir, foreign):
    finished_run(runs_dir, "a-good")
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(runs_dir / "index.sqlite")) as con:
        con.executescript(foreign + "; insert into runs(name, state) values ('ghost', 'running');")
    listed = runs.RunRegistry(runs_dir).list()
    assert listed["name"].tolist() == ["a-good"] and listed["state"].tolist() == ["succeeded"]
    with closing(sqlite3.connect(runs_dir / "index.sqlite")) as con:
        assert con.execute("pragma user_version").fetchone()[0] == runs.RunRegistry.VERSION


def test_locked_index_is_read_from_the_folders(runs_dir, monkeypatch):
    import sqlite3

    finished_run(runs_dir, "a-good")
    runs.RunRegistry(runs_dir).list()
    finished_run(runs_dir, "b-new")
    monkeypatch.setattr(runs.RunRegistry, "LOCK_WAIT_S", 0.1)
    holder = sqlite3.connect(runs_dir / "index.sqlite", isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("DELETE FROM runs")  # another process holds the index mid-write
    try:
        listed = runs.RunRegistry(runs_dir).list()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert sorted(listed["name"]) == ["a-good", "b-new"] and set(listed["state"]) == {"succeeded"}


# ---- issue 13 item 10: disk full while writing predictions -------------------------------------------------------


def disk_fills_at(filename: str, monkeypatch):
    """os.replace that fails with ENOSPC from the first write of filename on (the disk stays full)."""
    real_replace, full = os.replace, []

    def replace(src, dst, *args, **kwargs):
        if full or Path(dst).name == filename:
            full.append(dst)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(runs.os, "replace", replace)
    return full


def test_final_status_is_written_even_when_the_disk_is_full(runs_dir, monkeypatch):
    run = runs.RunDir(runs_dir / "new").create(CONFIG)
    run.set_status("running", pid=os.getpid())
    disk_fills_at("status.json", monkeypatch)
    with pytest.raises(UserError, match="No space left"):
        run.set_status("running", progress=0.5)  # progress may be lost
    run.set_status("failed", error="Could not save predictions.csv")  # the final state may not
    monkeypatch.undo()
    assert run.status["state"] == "failed" and leftovers(runs_dir) == []


def test_disk_full_during_a_prompt_run_reports_the_first_failure(runs_dir, tiny_llama_dir, monkeypatch, capsys):
    from core.cli import main

    full = disk_fills_at("predictions.csv", monkeypatch)
    code = main(
        [
            "prompt",
            "--train",
            "reviews",
            "--eval",
            "reviews",
            "--model",
            str(tiny_llama_dir),
            "--max-eval-examples",
            "6",
            "--out",
            "full",
        ]
    )
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()[-1]  # (in-process, weight-loading bars may come first)
    assert full and code == 2 and err.startswith("error: ")
    assert "Could not save predictions.csv" in err and "No space left on device" in err and "status.json" not in err
    status = runs.RunDir(runs_dir / "full").status
    assert status["state"] == "failed" and "predictions.csv" in status["error"]
    assert leftovers(runs_dir) == []
