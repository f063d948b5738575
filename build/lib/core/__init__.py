"""Prompt it, or fine-tune it? The logic behind the app and the CLI (no UI code here)."""

from core.errors import UserError

__all__ = ["UserError"]
