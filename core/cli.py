"""The CLI: `python -m core` or `pft` data|models|prompt|finetune|compare ... (the app's other face).

Bad input ends with exit status 2 and one sentence on stderr, never a traceback."""

from __future__ import annotations

import argparse
import math
import os
import sys

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no weight-loading bars in the terminal or a job's log

from core import progress  # noqa: E402
from core.errors import UserError  # noqa: E402


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one sentence (a UserError: exit status 2), not a usage screen."""

    def error(self, message: str):
        message = " ".join(message.split())  # one line, whatever was typed
        raise UserError(f"{message[:1].upper()}{message[1:].rstrip('.')} (see {self.prog} --help).")


def number(kind: type = int, low: float = 0, high: float | None = None):
    """An argparse type: a finite int or float in [low, high], refused in one sentence otherwise."""
    what = "a whole number" if kind is int else "a number"
    limits = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:30]!r} is not {what}") from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {what} {limits} (got {text[:30]!r})")
        return value

    return parse


SEED = number(int, 0, 2**32 - 1)  # what numpy and torch accept as a seed
DASH_VALUE_FLAGS = ("--label-words",)  # LABEL=WORD values whose label may start with '-' (argparse takes '-1=bad' for a flag)


def attach_dash_values(argv: list[str]) -> list[str]:
    """`--label-words a=b -1=c` -> `--label-words=a=b --label-words=-1=c` (action='extend'), so labels starting with '-' parse."""
    out, flag = [], None
    for arg in argv:
        if flag and "=" in arg and not arg.startswith("--"):
            if out[-1] == flag:
                out.pop()
            out.append(f"{flag}={arg}")
            continue
        flag = arg if arg in DASH_VALUE_FLAGS else None
        out.append(arg)
    return out


def add_data_args(p: argparse.ArgumentParser) -> None:
    """--train/--eval and column flags, shared by prompt and finetune."""
    p.add_argument("--train", required=True, help="training data: a file (csv/tsv/jsonl/parquet) or a sample name (e.g. reviews)")
    p.add_argument("--eval", required=True, help="evaluation data: a file or a sample name (sample default: its test split; reviews:validation picks another)")
    p.add_argument("--text-col", default=None, help="text column (detected when unambiguous)")
    p.add_argument("--label-col", default=None, help="label column (detected when unambiguous)")


def cmd_data(args) -> int:
    """Describe a dataset: splits, labels, cleaning notes."""
    from core import data

    ds = data.load(args.source, args.text_col, args.label_col)
    print(f"{ds.name}: text column '{ds.text_col}', label column '{ds.label_col}', {len(ds.label_names)} labels")
    for note in ds.notes:
        print(f"note: {note}")
    print(data.summary(ds).pivot_table(index="label", columns="split", values="count", fill_value=0).to_string())
    if args.duplicates:
        report = data.duplicate_report(ds, args.threshold)
        print(f"\nduplicate pairs (exact: same text up to case and spacing; near: word 3-gram Jaccard >= {args.threshold}):")
        print(report.summary.to_string(index=False) if len(report.summary) else "none")
        if report.capped:
            print(f"note: near-duplicate candidates were capped at {data.MAX_CANDIDATE_PAIRS:,}; near counts are a lower bound.")
    return 0


def cmd_models(args) -> int:
    """List the bundled models (or describe one)."""
    from core import models

    if args.name:
        print(models.model_card_json(models.describe(args.name)))
        return 0
    for info in models.BUNDLED.values():
        print(f"{info.key:10} {info.role:8} {info.name:24} {info.params:>6} params, {info.layers} layers, {info.heads} heads, {info.tokenizer_kind}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """All subcommands; prompt, finetune and compare register their flags in core/cli_*.py."""
    parser = Parser(prog="python -m core", description="Prompt it, or fine-tune it? Command-line face of the app.")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars (given before the command; bars are drawn only when stderr is a terminal anyway)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("data", help="describe a dataset")
    p.add_argument("source", help="sample name, file, or Hugging Face dataset name")
    p.add_argument("--text-col")
    p.add_argument("--label-col")
    p.add_argument("--duplicates", action="store_true", help="also count exact and near-duplicate pairs within and across splits (leakage)")
    p.add_argument("--threshold", type=float, default=0.8, help="near-duplicate word 3-gram Jaccard threshold (default 0.8)")
    p.set_defaults(func=cmd_data)
    p = sub.add_parser("models", help="list bundled models, or describe one")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_models)
    from core import cli_compare, cli_continual, cli_finetune, cli_prompt, cli_runs

    for module in (cli_prompt, cli_finetune, cli_compare, cli_continual, cli_runs):
        module.add_cli_args(sub)
    return parser


def reconcile() -> None:
    """Mark runs whose process died as failed and drop empty .ckpt-* folders, as every entry point does first."""
    from core import jobs

    try:
        jobs.refresh_all()
    except OSError:  # an unreadable runs folder is reported by the command that needs it, not here
        pass


def main(argv: list[str] | None = None) -> int:
    """Parse argv, run the command, turn UserError into one line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(attach_dash_values(argv))
        args.argv = argv
        progress.QUIET = args.quiet
        reconcile()
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head -1` closed the pipe: stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not complain either
        return 141
