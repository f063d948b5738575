"""The CLI: `python -m core` or `pft` data|models|prompt|finetune|compare ... (the app's other face).

Bad input ends with exit status 2 and one sentence on stderr, never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no weight-loading bars in the terminal or a job's log

from core import progress  # noqa: E402
from core.errors import JobEnded, UserError  # noqa: E402
from core.settings import SEED, as_list, config_only, number  # noqa: E402,F401  (flag types, kept importable from here)


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one sentence (a UserError: exit status 2), not a usage screen."""

    def error(self, message: str):
        message = " ".join(message.split())  # one line, whatever was typed
        message = re.sub(r"^argument (-[\w-]+)(?:/[\w-]+)*: must be ", r"\1 must be ", message)  # as a config's own check says it
        raise UserError(f"{message[:1].upper()}{message[1:].rstrip('.')} (see {self.prog} --help).")


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
    p.add_argument(
        "--eval",
        required=True,
        help="evaluation data: a file or a sample name (sample default: its test split; reviews:validation picks another)",
    )
    p.add_argument("--text-col", default=None, help="text column (detected when unambiguous)")
    p.add_argument("--label-col", default=None, help="label column (detected when unambiguous)")


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # ESC and the other control characters but tab and newline


def for_terminal(text: str) -> str:
    """Text from a dataset as a terminal shows it literally: control characters (an ESC starting a colour, a title or a
    cursor move) written as \\xNN."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def cmd_data(args) -> int:
    """Describe a dataset: splits, labels, cleaning notes (labels and names are data: control characters are shown escaped)."""
    from core import data

    ds = data.load(args.source, args.text_col, args.label_col)
    print(for_terminal(f"{ds.name}: text column '{ds.text_col}', label column '{ds.label_col}', {len(ds.label_names)} labels"))
    for note in ds.notes:
        print(for_terminal(f"note: {note}"))
    print(for_terminal(data.summary(ds).pivot_table(index="label", columns="split", values="count", fill_value=0).to_string()))
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
        print(
            f"{info.key:10} {info.role:8} {info.name:24} {info.params:>6} params, "
            f"{info.layers} layers, {info.heads} heads, {info.tokenizer_kind}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """All subcommands; prompt, finetune and compare register their flags in core/cli_*.py."""
    from core import data

    parser = Parser(prog="python -m core", description="Prompt it, or fine-tune it? Command-line face of the app.")
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars (given before the command; bars are drawn only when stderr is a terminal anyway)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("data", help="describe a dataset")
    p.add_argument("source", help="sample name, file, or Hugging Face dataset name")
    p.add_argument("--text-col")
    p.add_argument("--label-col")
    p.add_argument(
        "--duplicates", action="store_true", help="also count exact and near-duplicate pairs within and across splits (leakage)"
    )
    p.add_argument(
        "--threshold",
        type=number(float, 0, 1),
        default=data.NEAR_DUPLICATE_THRESHOLD,
        help="near-duplicate word 3-gram Jaccard threshold (default %(default)s)",
    )
    p.set_defaults(func=cmd_data)
    p = sub.add_parser("models", help="list bundled models, or describe one")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_models)
    from core.cli import compare, continual, explore, export, finetune, predict, prompt, runs, search

    for module in (prompt, finetune, compare, continual, runs, predict, export, explore, search):
        module.add_cli_args(sub)
    for name, p in sub.choices.items():
        if name != "models":
            p.add_argument(
                "--config",
                metavar="FILE",
                default=None,
                help="a JSON file of settings (keys: flag names, e.g. a run's config.json); flags given here override it",
            )
    parser.commands = sub.choices
    return parser


MAX_CONFIG_BYTES = 1_000_000  # a settings file is a few hundred bytes; a larger one is a mistake (or /dev/zero)


def read_config_file(path: str) -> dict:
    """The settings object of a --config file (a regular file of at most MAX_CONFIG_BYTES), or one sentence about why it
    cannot be used (a FIFO or device is never opened: reading one could wait forever or never end)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise UserError(f"The config file {path} is not a regular file.")
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise UserError(
                f"The config file {path} is larger than {MAX_CONFIG_BYTES:,} bytes, too large for a file of settings."
            )
        obj = json.loads(raw.decode("utf-8"))
    except OSError as e:
        raise UserError(f"Could not read the config file {path}: {e.strerror or e}.") from None
    except RecursionError:
        raise UserError(f"The config file {path} nests its values too deeply to be a file of settings.") from None
    except ValueError as e:  # JSON, or UTF-8
        raise UserError(f"The config file {path} is not valid JSON ({str(e).split(':')[0]}).") from None
    if not isinstance(obj, dict):
        raise UserError(f'The config file {path} must hold a JSON object of settings, such as {{"epochs": 3}}.')
    return obj


def config_defaults(p: argparse.ArgumentParser, command: str, obj: dict, path: str) -> dict:
    """A --config file's settings as defaults of the subcommand's parser (keys: a flag's name or its field name; a run's
    config.json also works: its record-only keys are skipped and its dataset gives --train/--eval). Every value is
    checked as its flag's text is (a setting without a flag by its field's type), see config_value."""
    from core.runs import RECORD_KEYS

    actions = {**config_only(p), **{a.dest: a for a in p._actions if a.dest not in ("help", "config")}}
    names = {**{d: d for d in p._defaults if d != "func"}, **{d: d for d in actions}}
    names.update({o.lstrip("-").replace("-", "_"): a.dest for a in actions.values() for o in a.option_strings})
    if "kind" in obj:  # a run's config.json
        if obj["kind"] != command:
            raise UserError(f"The config file {path} is the config of a {str(obj['kind'])[:40]} run, not of {command}.")
        dataset = obj.get("dataset") if isinstance(obj.get("dataset"), dict) else {}
        obj = {
            **{k: dataset[k] for k in ("train", "eval") if k in dataset and k in names},
            **{k: v for k, v in obj.items() if k not in RECORD_KEYS or k in names},
        }
    unknown = [k for k in obj if str(k).replace("-", "_") not in names]
    if unknown:
        raise UserError(
            f"The config file {path} has setting{'s' if len(unknown) > 1 else ''} that {command} does not know: "
            f"{', '.join(str(k)[:40] for k in unknown[:5])}."
        )
    values = {}
    for key, value in obj.items():
        dest = names[key.replace("-", "_")]
        action = actions.get(dest)
        if action is not None:
            value = config_value(action, key, value, path)
            action.required = action.required and value is None
        values[dest] = value
    return values


def config_value(action: argparse.Action, key: str, value, path: str):
    """One value of a --config file for the flag (or flagless setting) action: a switch takes only true or false (or
    those words as text), null only where the default is null, one value (text or a number, never true/false, a list or
    an object) where the flag takes one, and each value is then parsed and checked as its text on a command line would be."""
    where = f"In the config file {path}, '{key}'"
    if action.nargs == 0:  # a switch such as --chat or --yes
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise UserError(f"{where} must be true or false (got {shown(value)}).")
        return value
    if value is None:
        if action.default is None:
            return None
        raise UserError(f"{where} cannot be null; give it a value or leave it out.")
    many = action.nargs in ("+", "*")
    items = as_list(value) if many else [value]
    for item in items:
        if item is None or isinstance(item, (bool, list, dict)):
            raise UserError(
                f"{where} must be {'a list of texts or numbers' if many else 'one text or number'} (got {shown(value)})."
            )
    if action.nargs == "+" and not items and action.default not in (None, [], (), {}):  # --seed: a grid of no seeds
        raise UserError(f"{where} needs at least one value (got an empty list).")
    parsed = [checked(action, key, item, path) for item in items]
    return parsed if many else parsed[0]


def shown(value) -> str:
    """A config value as a short piece of JSON for an error sentence."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def checked(action: argparse.Action, key: str, value, path: str):
    """One value from a --config file, parsed and checked as the flag's text on a command line would be."""
    try:
        value = action.type(str(value)) if action.type else str(value)
    except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
        raise UserError(f"In the config file {path}, '{key}' {e}.") from None
    if action.choices is not None and value not in action.choices:
        raise UserError(
            f"In the config file {path}, '{key}' must be one of: {', '.join(map(str, action.choices))} (got {value!r})."
        )
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse argv; a --config FILE after the subcommand sets that subcommand's defaults first, so flags override it."""
    parser = build_parser()
    argv = attach_dash_values(argv)
    command = parser.commands.get(argv[0]) if argv else None
    if command is not None and "--config" in {a.split("=")[0] for a in argv[1:]}:
        pre = Parser(prog=command.prog, add_help=False)
        pre.add_argument("--config")
        path = pre.parse_known_args(argv[1:])[0].config
        if path:
            command.set_defaults(**config_defaults(command, argv[0], read_config_file(path), path))
    return parser.parse_args(argv)


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
        args = parse_args(argv)
        args.argv = argv
        progress.QUIET = args.quiet
        reconcile()
        return int(args.func(args) or 0)
    except UserError as e:
        print(for_terminal(f"error: {e}"), file=sys.stderr)
        return 2
    except JobEnded as e:  # cancelled or crashed, already recorded in the run's folder
        print(for_terminal(e.message), file=sys.stderr)
        return e.code
    except KeyboardInterrupt:  # outside a run (a run's own cancel ends in JobEnded)
        print("error: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head -1` closed the pipe: stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not complain either
        return 141
