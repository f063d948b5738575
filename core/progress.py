"""Progress bars for the command line (tqdm), drawn on stderr only when it is a terminal: a job started by a page
writes its log to a file, which must not fill with bar redraws; `python -m core --quiet ...` turns them off too."""

from __future__ import annotations

import sys

from tqdm import tqdm

QUIET = False  # set by the global --quiet flag (core.cli.main)


def bar(desc: str, total: int | None = None, unit: str = "example") -> tqdm:
    """A bar counting `unit`s with its ETA; a no-op bar when stderr is not a terminal or --quiet was given."""
    stream = sys.stderr
    return tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True,
                disable=QUIET or not getattr(stream, "isatty", lambda: False)())


def advance(progress_bar: tqdm, done: int, total: int | None = None) -> None:
    """Move a bar to `done` of `total` (callbacks report absolute counts; tqdm counts increments)."""
    if total is not None and progress_bar.total != total:
        progress_bar.total = total
    progress_bar.update(max(0, done - progress_bar.n))
