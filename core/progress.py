"""Progress bars for the command line (tqdm), drawn on stderr only when it is a terminal: a job started by a page
writes its log to a file, which must not fill with bar redraws; `python -m core --quiet ...` turns them off too."""

from __future__ import annotations

import os
import sys
import time

from tqdm import tqdm

QUIET = False  # set by the global --quiet flag (core.cli.main)


def bar(desc: str, total: int | None = None, unit: str = "example") -> tqdm:
    """A bar counting `unit`s with its ETA; a no-op bar when stderr is not a terminal or --quiet was given."""
    stream = sys.stderr
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=stream,
        dynamic_ncols=True,
        disable=QUIET or not getattr(stream, "isatty", lambda: False)(),
    )


def advance(progress_bar: tqdm, done: int, total: int | None = None) -> None:
    """Move a bar to `done` of `total` (callbacks report absolute counts; tqdm counts increments)."""
    if total is not None and progress_bar.total != total:
        progress_bar.total = total
    progress_bar.update(max(0, done - progress_bar.n))


class Reporter:
    """A run's progress, reported once to both places that show it: the terminal bar (drawn as bar() draws one) and
    the run's status.json (progress, done, total, eta_seconds, pid), which pages and `jobs` read. Where the bar runs,
    the ETA is tqdm's own remaining time (its smoothed rate); elsewhere the average rate since the reporter started."""

    def __init__(
        self,
        run=None,
        desc: str | None = None,
        total: int | None = None,
        unit: str = "example",
        budget_seconds: float = 0.0,
        every_seconds: float = 0.0,
        done_before: int = 0,
    ):
        self.run = run  # a RunDir, or None: the bar only
        self.bar = bar(desc, total, unit) if desc else None  # no desc: status.json only (its caller prints lines instead)
        self.started = time.time()
        self.budget_seconds = budget_seconds  # a time budget caps the ETA (fine-tuning's --max-train-seconds)
        self.every_seconds = every_seconds  # status.json written at most this often (the bar moves every call)
        self.done_before = done_before  # done when the reporter started (a resumed search): not counted in the rate
        self.last_write = 0.0

    def __call__(self, done: int, total: int | None, shown: int | None = None, force: bool = False, **fields) -> None:
        """done of total, for status.json; shown: the bar's count where it counts another unit (examples per step)."""
        if self.bar is not None:
            advance(self.bar, done if shown is None else shown, total if shown is None else None)
        now = time.time()
        if self.run is None or (not force and now - self.last_write < self.every_seconds):
            return
        self.last_write = now
        self.run.set_status(
            "running",
            progress=round(done / total, 4) if total else 0.0,
            done=done,
            total=total,
            eta_seconds=self.eta_seconds(done, total),
            pid=os.getpid(),
            **fields,
        )

    def eta_seconds(self, done: int, total: int | None) -> float | None:
        """Seconds left, or None before there is a rate to go by."""
        elapsed = time.time() - self.started
        left = None
        if self.bar is not None and not self.bar.disable and self.bar.total:
            numbers = self.bar.format_dict
            rate = numbers["rate"] or (numbers["n"] / numbers["elapsed"] if numbers["elapsed"] else None)
            left = (numbers["total"] - numbers["n"]) / rate if rate else None
        elif total and done > self.done_before and elapsed > 0:
            left = elapsed * (total - done) / (done - self.done_before)
        if left is not None and self.budget_seconds:
            left = min(left, max(0.0, self.budget_seconds - elapsed))
        return None if left is None else round(max(left, 0.0), 1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
