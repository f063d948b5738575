"""Config forms: page widgets whose defaults, limits, choices and help come from a config dataclass's field metadata
(core.settings, the same source as the CLI flags), and jobs started from the config they fill, never from hand-built argv."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pandas as pd
import streamlit as st

from core import data, jobs, prompting
from core.runs import resolve_out, runs_root
from core.settings import widget_options


def number(cls, name: str, label: str, where=st, **overrides):
    """A number_input for a numeric field: its default, limits and help; overrides win (value, limits, step, key...)."""
    options = {**widget_options(cls, name), **overrides}
    options.pop("options", None)
    kind = float if any(isinstance(options.get(k), float) for k in ("value", "min_value", "max_value")) else int
    for k in ("value", "min_value", "max_value"):  # one numeric type, as Streamlit requires
        if options.get(k) is not None:
            options[k] = kind(options[k])
    return where.number_input(label, **options)


def choice(cls, name: str, label: str, where=st, **overrides):
    """A selectbox over a field's choices, on its default."""
    options = {**widget_options(cls, name), **overrides}
    default = options.pop("value")
    options.setdefault("index", options["options"].index(default) if default in options["options"] else 0)
    return where.selectbox(label, **options)


def text(cls, name: str, label: str, where=st, **overrides):
    """A text_input for a text field, on its default."""
    options = {**widget_options(cls, name), **overrides}
    return where.text_input(label, **options)


def dataset_settings(ds: data.Dataset, eval_split: str = "test", train_split: str = "train") -> dict:
    """train/eval (and the columns) that make a background job read exactly this dataset's splits: a sample by name,
    anything else saved as files under the runs folder."""
    if ds.source in data.list_samples():
        return {"train": f"{ds.source}:{train_split}", "eval": f"{ds.source}:{eval_split}"}
    paths = data.save_splits(ds, runs_root() / "_data" / ds.fingerprint(eval_split)[:16])
    return {"train": str(paths[train_split]), "eval": str(paths[eval_split]), "text_col": "text", "label_col": "label"}


def label_words(label_names: list[str], key: str, warn_where=st) -> dict[str, str]:
    """The label-word table (what the model answers for each label; open when a default is a number or code) and the
    words changed from the defaults; one warning in warn_where while any word is a number or code."""
    defaults = [prompting.default_word(lab) for lab in label_names]
    with st.expander(
        "Label words (what the model should answer for each label)", expanded=any(map(prompting.is_opaque, defaults))
    ):
        # one table for all labels, keyed by the dataset so another dataset never inherits these words
        edited = st.data_editor(
            pd.DataFrame({"label": label_names, "word": defaults}),
            hide_index=True,
            width="stretch",
            disabled=["label"],
            key=key,
            column_config={
                "label": st.column_config.TextColumn("label"),
                "word": st.column_config.TextColumn("label word", help="what the model should answer"),
            },
        )
    words = {
        lab: str(word).strip()
        for lab, word, default in zip(edited["label"], edited["word"], defaults, strict=True)
        if word is not None and str(word).strip() and str(word).strip() != default
    }
    opaque = [lab for lab, default in zip(label_names, defaults, strict=True) if prompting.is_opaque(words.get(lab, default))]
    if opaque:  # one warning, no dataset text in it (label names are listed as plain text in the table)
        warn_where.warning(
            f"{len(opaque)} of {len(label_names)} label words are numbers or codes, so the model cannot tell what "
            "they mean: prompting lands near chance and prompt learning starts from nothing. Give each label a word "
            "that means something in the table (e.g. 0 → negative, 1 → positive).",
            icon="⚠️",
        )
    return words


def cli_data_args(ds: data.Dataset | None) -> str:
    """--train/--eval naming the sidebar's dataset in a command a page suggests: a sample or Hub id, else the uploaded
    file's name (the user has that file); shown in a Markdown code span, so a name with a backtick becomes FILE."""
    source = "reviews" if ds is None else "FILE" if "`" in ds.source else shlex.quote(ds.source)
    return f"--train {source} --eval {source}"


def start_job(command: str, config, out: str, root: Path | None = None, first_run: str | None = None, **extra) -> Path:
    """Start `python -m core COMMAND --config RUN/job.json --out OUT`: the config's fields and the extra settings (dataset,
    grid) saved in the run folder reserved for the job (OUT, or a grid's first run); returns that folder."""
    run_dir = resolve_out(first_run or out, root)
    jobs.launch([command, "--out", out], run_dir, settings={**dataclasses.asdict(config), **extra})
    return run_dir
