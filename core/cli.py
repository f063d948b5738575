"""The CLI: `python -m core` or `pft` data|models|prompt|finetune|compare ... (the app's other face).

Bad input ends with exit status 2 and one sentence on stderr, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no weight-loading bars in the terminal or a job's log

from core.errors import UserError  # noqa: E402


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
    parser = argparse.ArgumentParser(prog="python -m core", description="Prompt it, or fine-tune it? Command-line face of the app.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("data", help="describe a dataset")
    p.add_argument("source", help="sample name, file, or Hugging Face dataset name")
    p.add_argument("--text-col")
    p.add_argument("--label-col")
    p.set_defaults(func=cmd_data)
    p = sub.add_parser("models", help="list bundled models, or describe one")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_models)
    from core import cli_compare, cli_continual, cli_finetune, cli_prompt

    for module in (cli_prompt, cli_finetune, cli_compare, cli_continual):
        module.add_cli_args(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse argv, run the command, turn UserError into one line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130
