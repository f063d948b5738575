"""CLI of `python -m core runs`: every run with its state and metrics; --prune removes failed and orphan folders."""

from __future__ import annotations

import shutil
import sys

from core.errors import UserError

PRUNED_STATES = ("failed", "broken")


def add_cli_args(sub) -> None:
    """Register the runs subcommand."""
    p = sub.add_parser("runs", help="list runs with their state and metrics; --prune removes failed and orphan folders")
    p.add_argument("--prune", action="store_true", help="remove failed and broken runs and leftover .ckpt-*/.deleted-* folders")
    p.add_argument("--yes", action="store_true", help="with --prune: do not ask for confirmation")
    p.set_defaults(func=cmd_runs)


def cmd_runs(args) -> int:
    """List the runs folder (already reconciled by main), or prune it."""
    import pandas as pd

    from core import jobs, runs

    registry = runs.RunRegistry()
    table = registry.list()
    if not args.prune:
        if table.empty:
            print(f"no runs in {registry.root}")
            return 0
        shown = table[["name", "kind", "state", "accuracy", "macro_f1", "model", "method"]].copy()
        shown["state"] = [runs.state_label(s, p, k) for s, p, k in zip(table["state"], table["path"], table["kind"], strict=True)]
        shown["created"] = pd.to_datetime(table["created"], unit="s").dt.strftime("%Y-%m-%d %H:%M")
        with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 40):
            print(shown.to_string(index=False, na_rep="-", float_format=lambda x: f"{x:.3f}"))
        return 0
    active = {r.name for r in jobs.active_runs(registry.root)}
    doomed = table[table["state"].isin(PRUNED_STATES)]["name"].tolist()
    # a continual run's step runs and a search's trial runs go with it
    steps = {name: registry.step_runs(name) for name in doomed}
    trials = {name: registry.trial_runs(name) for name in doomed}
    n_runs = len(set(doomed).union(*steps.values(), *trials.values()))
    orphans = [
        p
        for p in sorted(registry.root.glob(".ckpt-*")) + sorted(registry.root.glob(".deleted-*"))
        if p.is_dir() and not p.is_symlink() and p.name.removeprefix(".ckpt-") not in active
    ]  # a link is not ours to remove
    if not doomed and not orphans:
        print("nothing to prune")
        return 0
    for name in doomed:
        with_parts = runs.parts_phrase(name, steps[name], trials[name], "with")
        print(f"run {name} ({table.set_index('name').at[name, 'state']}){with_parts}")
    for path in orphans:
        print(f"leftover {path.name}")
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"Nothing was removed: confirm with --yes to remove these {n_runs + len(orphans)} folders.")
        if input(f"Remove these {n_runs + len(orphans)} folders? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 0
    for name in doomed:
        if (registry.root / name).is_dir():  # not already gone as the step run of another doomed run
            registry.delete(name)
    for path in orphans:
        shutil.rmtree(path, ignore_errors=True)
    print(f"removed {n_runs} runs and {len(orphans)} leftover folders")
    return 0
