"""`python -m core search --backend ray`: the same trials run through Ray Tune (optional: Ray is not a requirement)."""

from __future__ import annotations

import importlib.util

from core.errors import UserError


def check_ray() -> None:
    """One sentence when Ray Tune cannot be imported."""
    if importlib.util.find_spec("ray") is None:
        raise UserError("--backend ray needs Ray, which is not installed (pip install 'ray[tune]'); without it, run trials with "
                        "--jobs, or share one study between machines with --storage.")
