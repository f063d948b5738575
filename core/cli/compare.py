"""CLI of `python -m core compare` (metrics table, HTML report, joined CSV) and `python -m core efficiency` (a batch of runs)."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from core.settings import split_list, whole_numbers


def shell_words(text: str) -> list[str]:
    """--prompt-args/--finetune-args: flags as a shell would split them (an unclosed quote is refused)."""
    try:
        return shlex.split(text)
    except ValueError as e:  # shlex: "No closing quotation"
        raise argparse.ArgumentTypeError(f"cannot be split into flags ({str(e).lower()})") from None


def add_cli_args(sub) -> None:
    """Register the compare and efficiency subcommands."""
    from core.cli import SEED, number

    p = sub.add_parser("compare", help="compare finished runs on one evaluation split (metrics, McNemar, report)")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (or run names under the runs folder), two or more")
    p.add_argument("--html", default=None, help="write a self-contained HTML report to this file")
    p.add_argument("--csv", default=None, help="write the joined predictions to this CSV file")
    p.add_argument(
        "--resamples",
        type=number(int, 100, 100_000),
        default=1000,
        help="bootstrap resamples for the 95%% intervals (default 1000)",
    )
    p.add_argument("--seed", type=SEED, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("efficiency", help="run fine-tuning at several sizes and prompting at several shot counts, time-bounded")
    p.add_argument("--train", required=True, help="training data: a file or a sample name (e.g. reviews)")
    p.add_argument("--eval", required=True, help="evaluation data: a file or a sample name")
    p.add_argument("--text-col", default=None)
    p.add_argument("--label-col", default=None)
    p.add_argument(
        "--sizes",
        nargs="+",
        default=["8pc", "32pc", "all"],
        metavar="SIZE",
        help="fine-tuning sizes: training rows, NNpc (NN per class) or all (default 8pc 32pc all)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(EFFICIENCY_METHODS),
        metavar="METHOD",
        help=f"fine-tune methods, cheapest first (default {' '.join(EFFICIENCY_METHODS)})",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        default=[str(EFFICIENCY_SEED)],
        metavar="S",
        help=f"seeds for every fine-tune run; several show as spread (default {EFFICIENCY_SEED})",
    )
    p.add_argument("--shots", nargs="+", default=["0", "4", "8"], metavar="K", help="prompting shot counts (default 0 4 8)")
    p.add_argument(
        "--max-train-seconds",
        type=number(float, 0, above=True),
        default=EFFICIENCY_TRAIN_SECONDS,
        help=f"training time limit per fine-tuning run (default {EFFICIENCY_TRAIN_SECONDS})",
    )
    p.add_argument(
        "--max-seconds",
        type=number(float),
        default=540,
        help="time limit for the whole batch; later runs are skipped (default 540)",
    )
    p.add_argument("--prefix", default=None, help="run name prefix (default efficiency-<time>)")
    p.add_argument("--prompt-args", default="", type=shell_words, help="extra flags for every prompt run, as one quoted string")
    p.add_argument(
        "--finetune-args", default="", type=shell_words, help="extra flags for every finetune run, as one quoted string"
    )
    p.set_defaults(func=cmd_efficiency)


def cmd_compare(args) -> int:
    """Print the verdict (first line), its caveats, the metrics table with the baselines, per-class F1 and McNemar tests;
    optionally write the HTML report and the joined CSV."""
    import pandas as pd

    from core import runs
    from core.comparison import evaluate, report
    from core.comparison.verdict import format_p, verdict

    cmp = evaluate.compare_runs(args.runs, n_resamples=args.resamples, seed=args.seed)
    headline, caveats = verdict(cmp)
    print(f"Verdict: {headline}")
    for caveat in caveats:
        print(f"caveat: {caveat}")
    print()
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(evaluate.format_metrics_table(cmp.metrics, cmp.baselines).to_string(index=False))
        print()
        print(evaluate.per_class_table(cmp.metrics, cmp.baselines).to_string(index=False))
        print()
        for _, m in cmp.mcnemar.iterrows():
            print(
                f"McNemar {m['run_a']} vs {m['run_b']}: only A right {m['only_a_right']}, only B right {m['only_b_right']}, "
                f"{format_p(m['p_value'])} ({m['method']})"
            )
    if args.csv:
        report.write_report(args.csv, report.export_csv(cmp.joined))
        print(f"joined predictions: {args.csv}")
    if args.html:
        same_split = (
            set(runs.comparable(runs.RunRegistry().list(), cmp.runs[0].eval_sha256)["path"].map(Path))
            if runs.runs_root().is_dir()
            else set()
        )
        efficiency = evaluate.efficiency_frame(sorted(same_split | {r.path for r in cmp.runs}))
        report.write_report(args.html, report.build_report(cmp, efficiency))
        print(f"report: {args.html}")
    return 0


def parse_sizes(items: list[str] | str, n_labels: int) -> list[int]:
    """['8pc', '100', 'all'] (or '8pc,100,all') -> training rows (0 = all), sorted with all last: NNpc is NN per class."""
    values = set()
    for token in (t.lower() for t in split_list(items)):
        if token == "all":
            values.add(0)
        elif token.endswith("pc") and token[:-2].isdigit() and int(token[:-2]) > 0:
            values.add(int(token[:-2]) * n_labels)
        elif token.isdigit() and int(token) > 0:
            values.add(int(token))
        else:
            raise UserError(f"--sizes takes positive whole numbers of rows, NNpc (per class) or all, not '{token}'.")
    if not values:
        raise UserError("--sizes must list at least one size.")
    return sorted(values, key=lambda n: (n == 0, n))


def parse_counts(items: list[str] | str, flag: str) -> list[int]:
    """['0', '4', '8'] (or '0,4,8') -> [0, 4, 8], sorted, refusing anything but non-negative integers."""
    return sorted(whole_numbers(items, flag))


EFFICIENCY_METHODS = ("logreg", "setfit", "lora", "full")  # cheapest first: a spent time budget skips the costliest
EFFICIENCY_SEED = 0
EFFICIENCY_TRAIN_SECONDS = 60


@dataclass
class EfficiencyPlan:
    """The runs one `efficiency` call starts, each a `python -m core ...` argv."""

    prefix: str  # run names are <prefix>-<method>-<n|all>[-s<seed>] and <prefix>-prompt-<k>shot
    data_argv: list[str]  # --train/--eval (and column) flags shared by all runs
    sizes: list[int]  # fine-tuning training rows (0 = all)
    shots: list[int]  # prompting shot counts
    max_train_seconds: float = EFFICIENCY_TRAIN_SECONDS  # per fine-tune run
    methods: list[str] = field(default_factory=lambda: list(EFFICIENCY_METHODS))  # fine-tune methods, in this order at each size
    seeds: list[int] = field(default_factory=lambda: [EFFICIENCY_SEED])
    prompt_extra: list[str] = field(default_factory=list)
    finetune_extra: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.max_train_seconds <= 0:
            raise UserError("--max-train-seconds must be positive.")
        from core.training.finetune import METHODS

        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise UserError(f"Unknown method '{(unknown or [''])[0]}' in --methods; choose from: {', '.join(METHODS)}.")

    def commands(self) -> list[tuple[str, list[str]]]:
        """(run name, argv) for every run, prompting first (cheaper), then fine-tuning from small to large."""
        out = [
            (f"{self.prefix}-prompt-{k}shot", ["prompt", *self.data_argv, "--shots", str(k), *self.prompt_extra])
            for k in self.shots
        ]
        for n in self.sizes:  # small to large, cheap methods first, so a spent time budget skips the costliest runs
            for method in self.methods:
                for seed in self.seeds:
                    name = f"{self.prefix}-{method}-{n or 'all'}" + (f"-s{seed}" if len(self.seeds) > 1 else "")
                    out.append(
                        (
                            name,
                            [
                                "finetune",
                                *self.data_argv,
                                "--method",
                                method,
                                "--max-train-examples",
                                str(n),
                                "--max-train-seconds",
                                f"{self.max_train_seconds:g}",
                                "--seed",
                                str(seed),
                                *self.finetune_extra,
                            ],
                        )
                    )
        return [(name, [*argv, "--out", name]) for name, argv in out]


def cmd_efficiency(args) -> int:
    """Start each run as a `python -m core` subprocess in turn, stopping when the time limit is spent; print macro-F1 per size."""
    from core import data, runs
    from core.comparison import evaluate

    if args.max_seconds <= 0:
        raise UserError("--max-seconds must be positive.")
    train_ds, _ = data.load_split(args.train, "train", args.text_col, args.label_col)
    data_argv = ["--train", args.train, "--eval", args.eval]
    data_argv += ["--text-col", args.text_col] if args.text_col else []
    data_argv += ["--label-col", args.label_col] if args.label_col else []
    plan = EfficiencyPlan(
        prefix=runs.check_run_name(args.prefix or f"efficiency-{time.strftime('%Y%m%d-%H%M%S')}"),
        data_argv=data_argv,
        sizes=parse_sizes(args.sizes, len(train_ds.label_names)),
        shots=parse_counts(args.shots, "--shots"),
        max_train_seconds=args.max_train_seconds,
        methods=[m.lower() for m in split_list(args.methods)],
        seeds=parse_counts(args.seeds, "--seeds"),
        prompt_extra=args.prompt_args,
        finetune_extra=args.finetune_args,
    )
    deadline = time.monotonic() + args.max_seconds
    finished = []
    for name, argv in plan.commands():
        left = deadline - time.monotonic()
        if left <= 1:
            print(f"skipped {name}: the --max-seconds limit is spent")
            continue
        print(f"running {name}: python -m core {shlex.join(argv)}", flush=True)
        try:
            proc = subprocess.run([sys.executable, "-m", "core", *argv], timeout=left, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            print(f"stopped {name}: the --max-seconds limit was reached")
            continue
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
            print(f"failed {name}: {last}")
            continue
        finished.append(runs.resolve_out(name))
    table = evaluate.efficiency_frame(finished)
    if table.empty:
        raise UserError("No run of the batch finished, so there is nothing to chart; see the messages above.")
    print(table[["run", "kind", "method", "n_train_examples", "macro_f1"]].to_string(index=False))
    return 0
