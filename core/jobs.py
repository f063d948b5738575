"""Background runs: launch a CLI subprocess, read its status, cancel it, and notice when it died.

Policies (for prompting and fine-tuning jobs alike):
- launch reserves the run folder (a .reserved file with a token the job presents), so the job's own
  RunDir.create accepts it, and the page sees the run as queued from the first instant;
- at most PFT_MAX_JOBS (default 1) jobs run per runs folder: another start is refused with a message,
  decided under a file lock so two starts at the same moment cannot both pass;
- a job whose process died without a final status is marked failed, with the last `error:` line of its log;
- cancel sends SIGTERM (the job stops at its next step and marks itself cancelled), then SIGKILL after a grace period.

Inside the job, every command that writes a run folder runs in `with run_job(...)`: the one place a run ends as
failed (a UserError: one sentence), cancelled (SIGTERM from cancel, or Ctrl-C) or crashed (traceback.txt kept).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
from filelock import FileLock

from core.errors import JobEnded, UserError
from core.runs import (
    FINAL_STATES,
    RESERVATION,
    RUN_NAME,
    RunDir,
    RunRecord,
    not_a_link,
    reached,
    reservation,
    reserved_for_this_process,
    runs_root,
    write_atomic,
    write_json,
)

ACTIVE_STATES = ("queued", "running")
DIED = "The job's process ended without finishing (killed or crashed)."
JOB_SETTINGS = "job.json"  # the settings a page started a job with (its --config file), kept in the run folder


def max_jobs() -> int:
    """How many jobs may run at once in one runs folder (PFT_MAX_JOBS, default 1)."""
    try:
        return max(1, int(os.environ.get("PFT_MAX_JOBS", "1")))
    except ValueError:
        return 1


def _jobs_lock(root: Path) -> FileLock:
    """An exclusive lock over the runs folder (filelock), held while deciding whether a job may start."""
    root.mkdir(parents=True, exist_ok=True)
    return FileLock(not_a_link(root / ".jobs.lock"))  # filelock truncates its file: never one a link points to


def launch(argv: list[str], run_dir: Path, env: dict | None = None, settings: dict | None = None) -> int:
    """Start `python -m core ARGV` detached from this process (own session), logging to run_dir/log.txt; returns its pid.
    With settings, they are saved as run_dir/job.json first and the job reads them (`--config job.json`).

    Refused (UserError) when run_dir exists or when PFT_MAX_JOBS jobs are already active in its runs folder."""
    root = Path(run_dir).parent.resolve()
    run_dir = not_a_link(root / Path(run_dir).name)  # never resolved through a link: a dangling one would lead outside
    with _jobs_lock(root):
        active = active_runs(root)
        if len(active) >= max_jobs():
            raise UserError(
                f"A job is already running ({active[0].name}); wait for it to finish or cancel it before starting another."
            )
        try:
            run_dir.mkdir()  # exclusive: an existing folder, file or link of that name is refused
        except FileExistsError:
            raise UserError(f"A run named '{run_dir.name}' already exists; choose another name.") from None
        token = uuid.uuid4().hex
        if settings is not None:
            write_json(run_dir / JOB_SETTINGS, settings)
            argv = [argv[0], "--config", str(run_dir / JOB_SETTINGS), *argv[1:]]
        write_json(run_dir / RESERVATION, {"token": token, "pid": None, "argv": list(argv)})
        RunDir(run_dir).set_status("queued")
        with open(run_dir / "log.txt", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "core", *argv],
                cwd=Path(__file__).resolve().parent.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives a Streamlit rerun or reload; killable as a group
                env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1", "PFT_RUN_TOKEN": token, "PFT_RUNS_DIR": str(root)},
            )
        # the pid goes to the reservation, not status.json, so it can never overwrite what the job already wrote
        write_json(run_dir / RESERVATION, {"token": token, "pid": proc.pid, "argv": list(argv)})
    return proc.pid


def pid_alive(pid: int | None) -> bool:
    """True when a process with this pid exists and is not a zombie (a dead child of ours is reaped here)."""
    if not pid:
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child
    except OSError:
        pass
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists, but not ours to inspect
        return True


def job_pid(run: RunDir) -> int | None:
    """The pid of the run's process: what the job wrote to status.json, else what launch recorded."""
    return run.status.get("pid") or reservation(run.path).get("pid")


def last_error_line(run: RunDir) -> str | None:
    """The last `error: ...` sentence in the job's log.txt (what the CLI printed before exiting), if any."""
    try:
        with open(run.path / "log.txt", "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 20000))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: ") :].strip()[:500]
    return None


def refresh(run: RunDir) -> dict:
    """The run's status, marking it failed when its process died without saying so (kill -9, OOM, power loss)."""
    status = run.status
    if status.get("state") in ACTIVE_STATES:
        pid = job_pid(run)
        if pid and not pid_alive(pid):
            time.sleep(0.2)  # the process may have written its final status just now
            status = run.status
            if status.get("state") in ACTIVE_STATES:
                status = run.set_status("failed", error=last_error_line(run) or DIED)
    return status


def active_runs(root: Path) -> list[RunDir]:
    """Runs in root whose job is queued or running (dead ones are marked failed on the way), oldest first."""
    runs = []
    root = Path(root)
    if not root.is_dir():
        return runs
    for p in root.iterdir():
        if p.is_dir() and RUN_NAME.match(p.name) and (p / "status.json").exists():
            run = RunDir(p)
            if refresh(run).get("state") in ACTIVE_STATES:
                runs.append(run)
    return sorted(runs, key=lambda r: r.status.get("created", 0))


def refresh_all(root: Path | None = None) -> None:
    """Reconcile the runs folder (every entry point does, before anything else): a run whose process died is marked
    failed, and an empty .ckpt-* folder of a run that is not active is removed."""
    root = Path(root or runs_root())
    active = {r.name for r in active_runs(root)}
    for ckpt in root.glob(".ckpt-*") if root.is_dir() else []:
        if ckpt.name.removeprefix(".ckpt-") not in active and ckpt.is_dir() and not any(ckpt.iterdir()):
            shutil.rmtree(ckpt, ignore_errors=True)


def _signal(pid: int, sig: int) -> None:
    """Signal the job's process group when it leads one (launched by us), else just the process."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def cancel(run: RunDir, grace_seconds: float = 5.0) -> dict:
    """Ask the job to stop (SIGTERM to its process group), then force it (SIGKILL) after the grace period."""
    status = run.status
    pid = job_pid(run)
    if status.get("state") in FINAL_STATES or not pid:
        return status
    _signal(pid, signal.SIGTERM)
    deadline = time.time() + grace_seconds
    while time.time() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        _signal(pid, signal.SIGKILL)
        deadline = time.time() + 2
        while time.time() < deadline and pid_alive(pid):
            time.sleep(0.05)
    status = run.status
    if status.get("state") not in FINAL_STATES:
        where = reached(status, run.config.get("kind", ""))
        status = run.set_status("cancelled", error=f"Cancelled by the user{' at ' + where if where else ''}.")
    return status


# ---- inside the job: one lifecycle for every command that writes a run folder -----------------------------------

CRASHED = {
    "prompt": "Prompting crashed ({}).",
    "finetune": "Training crashed ({}).",
    "continual": "Training crashed ({}).",
    "predict": "Labelling crashed ({}).",
    "search": "The search crashed ({}); run it again to resume.",
}


class Cancelled(Exception):
    """Raised by a run that saw job.stop set and stopped where it could (training, between steps)."""


@dataclass
class Job:
    """The run a `with run_job(...)` block works on (run is None for a command that only prints, such as predict
    without --job)."""

    run: RunDir | None
    kind: str
    stop: threading.Event  # set by SIGTERM (cancel); training polls it between steps
    main: bool = True  # rank 0 (the only process that writes the folder under torchrun)
    made: bool = False  # this process created the folder

    @property
    def ours(self) -> bool:
        """Whether this process may write into the folder: it made it, or launch reserved it for it; never through a link."""
        return (
            self.run is not None
            and self.main
            and (self.made or reserved_for_this_process(self.run.path))
            and self.run.path.is_dir()
            and not self.run.path.is_symlink()
        )

    def create(self, record: RunRecord, settings: dict) -> RunDir:
        """Make the run folder with config.json (record and settings, see RunRecord.config) and a queued status."""
        self.run.create(record.config(settings))
        self.made = True
        return self.run

    def start(self, **fields) -> None:
        """status.json: running under this process, nothing done yet."""
        self.run.set_status("running", pid=os.getpid(), progress=0.0, done=0, total=None, eta_seconds=None, error=None, **fields)

    def end(self, state: str, error: str, rest=()) -> None:
        """A final state for the run (and for rest, the runs of a grid it never reached), unless another process has
        written one already; a failed write never hides the error that ended the run."""
        if not self.ours:
            return
        try:
            if self.run.status.get("state") not in FINAL_STATES:
                self.run.set_status(state, error=error)
            for later in rest:
                later.set_status(state, error=f"Not run: {self.run.name} {state} first ({error}).")
        except Exception:
            pass


def crash_sentence(kind: str, exc: BaseException) -> str:
    """An unexpected exception as one line for status.json and stderr."""
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return CRASHED[kind].format(f"{type(exc).__name__}{': ' + first if first else ''}")


def keep_traceback(job: Job, exc: BaseException) -> None:
    """traceback.txt in the run folder, only in a folder this run made or was reserved (atomic: a link planted under that
    name is replaced, never followed)."""
    if job.ours:
        try:
            write_atomic(job.run.path / "traceback.txt", "".join(traceback.format_exception(exc)))
        except OSError:
            pass


@contextmanager
def run_job(run: RunDir | None, kind: str, graceful: bool = False, made: bool = False, rest=()) -> Iterator[Job]:
    """The lifecycle of one run: SIGTERM (cancel) sets job.stop, and raises KeyboardInterrupt unless graceful (the body
    polls job.stop and raises Cancelled). The block then ends the run one way per outcome:
    - a UserError: failed with its sentence, re-raised (exit status 2);
    - Cancelled or KeyboardInterrupt: cancelled, saying how far it got ("Cancelled by the user at step 40 of 100." for
      SIGTERM, "Cancelled at ..." for Ctrl-C), JobEnded with exit status 130;
    - anything else: its traceback in traceback.txt, failed with one sentence, JobEnded with exit status 1.
    made: the folder was created before the block (by this process); rest: the later runs of a grid, ended with this one."""
    from core.distributed import is_main_process

    job = Job(run, kind, threading.Event(), is_main_process(), made)

    def on_sigterm(signum, frame) -> None:
        job.stop.set()
        if not graceful:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield job
    except UserError as e:
        job.end("failed", str(e), rest)
        raise
    except (Cancelled, KeyboardInterrupt):
        where = (reached(job.run.status, kind) or "the start") if job.ours else ""  # no folder: no count to go by
        message = f"Cancelled{' by the user' if job.stop.is_set() else ''}{' at ' + where if where else ''}."
        job.end("cancelled", message, rest)
        kept = f"; what was saved is kept in {job.run.path}" if job.ours else ""
        raise JobEnded(f"{message[:-1]}{kept}.", 130) from None
    except Exception as e:
        sentence = crash_sentence(kind, e)
        keep_traceback(job, e)
        job.end("failed", sentence, rest)
        raise JobEnded(f"error: {sentence}", 1) from e
    finally:
        signal.signal(signal.SIGTERM, previous)
