"""The real app for browser tests: `streamlit run` on a free localhost port with its own runs folder, stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("PFT_CHROMIUM", "/usr/bin/chromium"))
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer(str):
    """The app's URL, with the server's process (for tests that kill it)."""

    process: subprocess.Popen


@contextlib.contextmanager
def serve_app(runs: Path, log_path: Path, **extra_env: str):
    """Yield the URL of the app served from this checkout (offline, runs under `runs`, output appended to log_path)."""
    env = {
        **os.environ,
        "PFT_RUNS_DIR": str(runs),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
        **extra_env,
    }
    with open(log_path, "ab") as log:
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "streamlit_app.py",
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = AppServer(f"http://127.0.0.1:{port}")
        url.process = server
        try:
            deadline = time.time() + 90
            while True:
                try:
                    urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read()
                    break
                except OSError:
                    if server.poll() is not None or time.time() > deadline:
                        pytest.fail(f"the app did not start; see {log_path}")
                    time.sleep(0.5)
            yield url
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)  # the server's process group (jobs run in sessions of their own)
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
