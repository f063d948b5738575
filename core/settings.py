"""Settings that carry their own flag, type, choices and help: a config dataclass is the one source of its CLI flags,
its page form's defaults and limits, and the keys a --config file may set."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re

from core.errors import UserError


def number(kind: type = int, low: float = 0, high: float | None = None, above: bool = False, below: bool = False):
    """An argparse type: a finite int or float from low to high (above: strictly more than low; below: strictly less than
    high), refused in one sentence otherwise. Its limits stay readable as attributes (kind, low, high, above, below): the
    page widgets and a config's own check (check_fields) use the same ones."""
    what = "a whole number" if kind is int else "a number"
    low_text, high_text = (str(int(x)) if float(x).is_integer() else f"{x:g}" for x in (low, 0 if high is None else high))
    floor = f"above {low_text}" if above else f"of at least {low_text}"
    if high is None:
        limits = floor
    elif above or below:
        limits = f"{floor} and {'below' if below else 'at most'} {high_text}"
    else:
        limits = f"from {low_text} to {high_text}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:30]!r} is not {what}") from None
        if (
            not math.isfinite(value)
            or value < low
            or (above and value == low)
            or (high is not None and value > high)
            or (below and value == high)
        ):
            raise argparse.ArgumentTypeError(f"must be {what} {limits} (got {text[:30]!r})")
        return value

    parse.kind, parse.low, parse.high, parse.above, parse.below = kind, low, high, above, below
    return parse


SEED = number(int, 0, 2**32 - 1)  # what numpy and torch accept as a seed
DEVICE = re.compile(r"(auto|cpu|mps|cuda(:\d{1,2})?)\Z")


def device_name(text: str) -> str:
    """--device: auto, cpu, mps, cuda or cuda:N (torch's other devices, such as meta, cannot run a model)."""
    device = str(text).strip().lower()
    if not DEVICE.match(device):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda, cuda:N or mps (got {str(text)[:30]!r})")
    return device


def setting(default=None, flag: str | None = None, **meta):
    """A dataclass field whose metadata names its CLI flag and argparse options (help, type, choices, nargs, action,
    metavar); without a flag it is set from --config files only."""
    meta = {"flag": flag, **meta} if flag else meta
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def same_as(cls, name: str, default=dataclasses.MISSING, **meta):
    """A field declared as cls's field `name` (its default, flag, type, limits and help), for a config that shares the
    setting; default and meta (e.g. help) change only what differs."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return setting(default_of(f) if default is dataclasses.MISSING else default, **{**f.metadata, **meta})


ARGPARSE_KEYS = ("help", "type", "choices", "nargs", "action", "metavar")


def default_of(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def split_list(values) -> list[str]:
    """The items of a many-valued flag (`--sizes 8pc all`), accepting the older comma form (`--sizes 8pc,all`) too."""
    return [t.strip() for v in ([values] if isinstance(values, str) else values) for t in str(v).split(",") if t.strip()]


def whole_numbers(values, what: str, low: int = 0, high: int = 10**6) -> list[int]:
    """'0, 4 8' or ['0', '4,8'] -> [0, 4, 8] (duplicates dropped, order kept): a list of counts, shots or seeds typed on a
    page or given to a many-valued flag; one clear sentence when it is not that."""
    text = " ".join(map(str, values)) if isinstance(values, (list, tuple)) else str(values)
    out: list[int] = []
    for part in text.replace(";", " ").replace(",", " ").split():
        if not part.lstrip("-").isdigit() or not low <= int(part) <= high:
            raise UserError(
                f"{what} must be whole numbers from {low} to {high}, separated by spaces or commas; '{part[:30]}' is not."
            )
        if int(part) not in out:
            out.append(int(part))
    if not out:
        raise UserError(f"Give at least one value for {what.lower()}.")
    return out


def as_list(value) -> list:
    """A value for a many-valued flag: a list as is, a dict as KEY=VALUE items, a scalar (--shots 4) as one item."""
    if isinstance(value, dict):
        return [f"{k}={v}" for k, v in value.items()]
    return list(value) if isinstance(value, list) else [value]


def add_flags(parser: argparse.ArgumentParser, cls) -> None:
    """One flag per field of a config dataclass that names one (dest: the field's name, so a run's config.json can
    serve as a --config file); the other fields become plain defaults that --config files may set."""
    for f in dataclasses.fields(cls):
        default = default_of(f)
        if "flag" not in f.metadata:
            parser.set_defaults(**{f.name: default})
            config_only(parser)[f.name] = argparse.Action(
                [], f.name, default=default, type=f.metadata.get("type"), choices=f.metadata.get("choices")
            )
            continue
        options = {k: f.metadata[k] for k in ARGPARSE_KEYS if k in f.metadata}
        if "choices" not in options and "action" not in options:
            options.setdefault("metavar", f.metadata["flag"].lstrip("-").upper().replace("-", "_"))
        if options.get("nargs") in ("+", "*"):
            default = as_list(default)
        parser.add_argument(f.metadata["flag"], dest=f.name, default=default, **options)


def check_fields(config) -> None:
    """Refuse, in one sentence naming its flag, a field of a config dataclass whose value its metadata does not allow (a
    choice not listed, a number out of its limits), as the flag and a --config file refuse it: the one check of a
    setting, whoever sets it (CLI, --config, a page, Python). None passes where it is the default."""
    for f in dataclasses.fields(config):
        value, name = getattr(config, f.name), f.metadata.get("flag") or f"'{f.name}'"
        if value is None and default_of(f) is None:
            continue
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise UserError(f"Unknown {name} {str(value)[:40]!r}; choose one of: {', '.join(map(str, choices))}.")
        if isinstance(value, list) and "list" not in str(f.type):
            raise UserError(f"{name} takes one value, not a list (got {str(value)[:40]}).")
        kind = f.metadata.get("type")
        if getattr(kind, "kind", None) is None:
            continue
        for item in value if isinstance(value, list) else [value]:  # a many-valued setting: each value
            try:
                kind(item if isinstance(item, str) else repr(item) if isinstance(item, bool) else str(item))
            except argparse.ArgumentTypeError as e:
                raise UserError(f"{name} {e}.") from None


def config_only(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The settings of a parser that have no flag, as actions (type, choices, default) that check a --config file's value."""
    return parser.__dict__.setdefault("config_only_actions", {})


def from_args(cls, args: argparse.Namespace, **overrides):
    """The config dataclass from parsed flags: every field that has a value in args (validated on creation)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**values, **overrides})


def widget_options(cls, name: str) -> dict:
    """A field's default, limits, choices and help for a page widget (what the CLI flag uses too)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    kind = f.metadata.get("type")
    out = {"value": default_of(f), "help": (f.metadata.get("help") or "").replace("%%", "%") or None}
    if getattr(kind, "kind", None):
        out.update(min_value=kind.kind(kind.low), max_value=None if kind.high is None else kind.kind(kind.high))
    if "choices" in f.metadata:
        out["options"] = list(f.metadata["choices"])
    return out
