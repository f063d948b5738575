"""Background runs: launch a CLI subprocess, read its status, cancel it, and notice when it died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.runs import FINAL_STATES, RunDir


def launch(argv: list[str], run_dir: Path, env: dict | None = None) -> int:
    """Start `python -m core ARGV` detached from this process (own session), logging to run_dir/log.txt; returns its pid."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir / "log.txt", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "core", *argv],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # survives a Streamlit rerun or reload; killable as a group
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    return proc.pid


def pid_alive(pid: int | None) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def refresh(run: RunDir) -> dict:
    """The run's status, marking it failed when its process died without saying so (kill -9, OOM, power loss)."""
    status = run.status
    if status.get("state") in ("queued", "running") and status.get("pid") and not pid_alive(status["pid"]):
        time.sleep(0.2)  # the process may have written its final status just now
        status = run.status
        if status.get("state") in ("queued", "running"):
            status = run.set_status("failed", error="The job's process ended without finishing (killed or crashed).")
    return status


def cancel(run: RunDir, grace_seconds: float = 5.0) -> dict:
    """Ask the job to stop (SIGTERM to its process group), then force it (SIGKILL) after the grace period."""
    status = run.status
    pid = status.get("pid")
    if status.get("state") in FINAL_STATES or not pid:
        return status
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.time() + grace_seconds
    while time.time() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    status = run.status
    if status.get("state") not in FINAL_STATES:
        status = run.set_status("cancelled", error="Cancelled by the user.")
    return status
