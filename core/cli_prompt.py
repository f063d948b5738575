"""CLI flags and entry point of `python -m core prompt` (imports heavy modules only when run)."""

from __future__ import annotations


def add_cli_args(sub) -> None:
    """Register the prompt subcommand."""
    p = sub.add_parser("prompt", help="(not yet available)")
    p.set_defaults(func=lambda args: print("not yet available") or 1)
