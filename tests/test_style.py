"""The code base has one style: `ruff format` (line length 130, pyproject.toml) and `ruff check` (E501 included) both pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_format_and_check_pass_on_the_whole_repository():
    pytest.importorskip("ruff", reason="ruff is not installed (requirements-dev.txt)")
    failures = []
    # --no-cache: ruff's cache can call a file formatted that a fresh clone's check would reformat
    for args in (["format", "--check", "--no-cache", "."], ["check", "--no-cache", "."]):
        done = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            failures.append(f"$ ruff {' '.join(args)} (exit {done.returncode})\n{done.stdout}{done.stderr}")
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
