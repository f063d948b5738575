"""Hostile input: the data loader either loads a valid Dataset or raises UserError with a message, never anything else."""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import string
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core import data
from core.errors import UserError

MAX_EXAMPLES = 1000  # per property; the four properties together take ~20 s on 2 CPUs
TRIED: dict[str, int] = {}  # property name -> examples tried, printed at the end (pytest -s)

SUFFIXES = [".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet", ".xlsx", "", ".CSV"]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]
COLUMN_NAMES = ["text", "label", "Text", " label ", "sentence", "category", "split", "id", "", "text", "ça", "标签", "a,b", 'q"t']
NON_ASCII = "éüßçñ€“”…漢字😀\u200b\t"
SPLIT_VALUES = ["train", "test", "validation", "dev", "", "TRAIN"]

cell = st.text(alphabet=string.ascii_letters + string.digits + " ,;\t\"'\n\r|" + NON_ASCII, max_size=30)
label_cell = st.one_of(st.sampled_from(["pos", "neg", "neu", "", " ", "1", "2", "1.0", "NaN", "null", "x" * 120]), cell)


def check_outcome(load) -> str:
    """Run one load; a Dataset must be valid, an error must be a UserError with a message. Returns 'loaded' or 'refused'."""
    try:
        ds = load()
    except UserError as e:
        assert str(e).strip(), "UserError without a message"
        return "refused"
    assert isinstance(ds, data.Dataset)
    assert len(ds.label_names) >= 2
    assert ds.splits, "a Dataset with no splits"
    for name, frame in ds.splits.items():
        assert len(frame) > 0, f"split {name} is empty"
        assert list(frame.columns[:3]) == ["id", "text", "label"], (name, list(frame.columns))
        assert frame["id"].is_unique
        assert all(isinstance(t, str) and t.strip() for t in frame["text"]), "empty or non-string text kept"
        assert set(frame["label"]) <= set(ds.label_names)
        assert not frame.duplicated(subset=["text", "label"]).any(), "duplicate rows kept"
    return "loaded"


@st.composite
def tables(draw) -> tuple[bytes, str]:
    """A table with random column names, rows, delimiter, quoting, encoding and file suffix, as bytes + filename."""
    plausible = draw(st.booleans())  # half the time a nearly right table, so loading (not only refusing) is exercised
    if plausible:
        columns = [draw(st.sampled_from(["text", "Text", "sentence"])), draw(st.sampled_from(["label", " label ", "category"]))]
        columns += draw(st.lists(st.sampled_from(["split", "id", "ça", "a,b"]), max_size=1))
        columns = draw(st.permutations(columns))
    else:
        n_cols = draw(st.integers(1, 4))
        columns = draw(st.lists(st.sampled_from(COLUMN_NAMES), min_size=n_cols, max_size=n_cols))
    labels = st.sampled_from(["pos", "neg", "neu", "ça va", ""]) if plausible else label_cell
    n_rows = draw(st.integers(8 if plausible else 0, 60 if plausible else 40))
    rows = []
    for _ in range(n_rows):
        rows.append(
            [
                draw(
                    labels
                    if c.strip().lower() in ("label", "category")
                    else st.sampled_from(SPLIT_VALUES)
                    if c == "split"
                    else cell
                )
                for c in columns
            ]
        )
    fmt = draw(st.sampled_from(["csv", "jsonl", "json", "parquet"]))
    suffix = (
        draw(st.sampled_from(SUFFIXES))
        if draw(st.booleans())
        else {"csv": ".csv", "jsonl": ".jsonl", "json": ".json", "parquet": ".parquet"}[fmt]
    )
    if fmt == "parquet":
        frame = pd.DataFrame(rows, columns=[f"{c}_{i}" if columns.count(c) > 1 else c for i, c in enumerate(columns)])
        buf = io.BytesIO()
        try:
            frame.to_parquet(buf)
        except Exception:  # a column name parquet cannot store: send the CSV instead
            return draw_csv(draw, columns, rows, suffix)
        return buf.getvalue(), f"upload{suffix}"
    if fmt == "jsonl":
        text = "\n".join(json.dumps(dict(zip(columns, r)), ensure_ascii=draw(st.booleans())) for r in rows)
        return encode(draw, text), f"upload{suffix}"
    if fmt == "json":
        text = json.dumps([dict(zip(columns, r)) for r in rows])
        return encode(draw, text), f"upload{suffix}"
    return draw_csv(draw, columns, rows, suffix)


def draw_csv(draw, columns, rows, suffix) -> tuple[bytes, str]:
    """Rows as delimited text with a random delimiter, quoting and line ending."""
    delimiter = draw(st.sampled_from([",", "\t", ";", "|"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC, csv.QUOTE_NONE]))
    buf = io.StringIO()
    writer = csv.writer(
        buf, delimiter=delimiter, quoting=quoting, escapechar="\\", lineterminator=draw(st.sampled_from(["\n", "\r\n"]))
    )
    try:
        writer.writerow(columns)
        writer.writerows(rows)
    except csv.Error:  # QUOTE_NONE cannot write some cells: write them raw, as a careless exporter would
        buf = io.StringIO("\n".join(delimiter.join([*columns]) for _ in [0]) + "\n" + "\n".join(delimiter.join(r) for r in rows))
    return encode(draw, buf.getvalue()), f"upload{suffix}"


def encode(draw, text: str) -> bytes:
    """text in a random encoding (non-UTF-8 encodings may fail on some characters: then replaced)."""
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", *ENCODINGS]))
    return text.encode(encoding, errors="replace")


def _count(name: str, outcome: str) -> None:
    TRIED[f"{name} {outcome}"] = TRIED.get(f"{name} {outcome}", 0) + 1


@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tables())
def test_random_tables_load_or_refuse_clearly(upload):
    raw, filename = upload
    _count("tables", check_outcome(lambda: data.load_upload(raw, filename)))


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(SUFFIXES))
def test_random_bytes_load_or_refuse_clearly(raw, suffix):
    _count("bytes", check_outcome(lambda: data.load_upload(raw, f"upload{suffix}")))


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(
    st.lists(st.tuples(cell, st.one_of(st.sampled_from(["a", "b", "c"]), label_cell)), min_size=0, max_size=60),
    st.sampled_from(["text", "Text", "review"]),
    st.sampled_from(["label", "category", "intent"]),
)
def test_random_frames_load_or_refuse_clearly(rows, text_col, label_col):
    frame = pd.DataFrame(rows, columns=[text_col, label_col]) if rows else pd.DataFrame(columns=[text_col, label_col])
    _count("frames", check_outcome(lambda: data.from_frame(frame, "frame", "frame")))


VALID_CSV = "text,label\n" + "".join(
    f"review number {i} was {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}\n" for i in range(30)
)


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(VALID_CSV) - 1), st.binary(min_size=0, max_size=4)), min_size=1, max_size=6),
    st.sampled_from([".csv", ".tsv", ".jsonl", ""]),
)
def test_corrupted_valid_file_loads_or_refuses_clearly(edits, suffix):
    raw = bytearray(VALID_CSV.encode())
    for position, replacement in edits:  # overwrite (or delete) a few bytes of a good file, as a broken transfer would
        raw[position : position + len(replacement) or position + 1] = replacement
    _count("corrupted", check_outcome(lambda: data.load_upload(bytes(raw), f"upload{suffix}")))


# ---- issue 13: hostile command lines, Markdown and spreadsheet cells ---------------------------------------------

NUMERIC_FLAGS = {
    "prompt": ["--seed", "--batch-size", "--max-eval-examples"],
    "finetune": [
        "--epochs",
        "--lr",
        "--batch-size",
        "--weight-decay",
        "--warmup-ratio",
        "--patience",
        "--max-train-examples",
        "--max-train-seconds",
        "--max-length",
        "--lora-r",
        "--lora-alpha",
        "--lora-dropout",
        "--seed",
    ],
    "compare": ["--resamples", "--seed"],
    "efficiency": ["--max-train-seconds", "--max-seconds"],
    "predict": ["--alert-threshold", "--batch-rows"],
}
COMMAND_BASE = {
    "prompt": ["prompt", "--train", "r", "--eval", "r"],
    "finetune": ["finetune", "--train", "r", "--eval", "r"],
    "compare": ["compare", "a", "b"],
    "efficiency": ["efficiency", "--train", "r", "--eval", "r"],
    "predict": ["predict", "a", "b.csv"],
}
number_text = st.one_of(
    st.sampled_from(
        [
            "-1",
            "0",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e309",
            "1e-9",
            "0x10",
            "1_000",
            " 3",
            "",
            "4294967296",
            "-0",
            "1.5",
            "١٢",
            "+7",
            "--1",
        ]
    ),
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=8),
)


@functools.lru_cache(maxsize=1)
def _parser():
    from core.cli import build_parser

    return build_parser()


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(st.sampled_from(sorted(NUMERIC_FLAGS)), st.data())
def test_random_numeric_flags_parse_to_finite_values_or_one_sentence(command, draw):
    """Every numeric flag takes a finite number in range, or is refused as a UserError of one line (exit 2)."""
    from core.cli import attach_dash_values

    flag = draw.draw(st.sampled_from(NUMERIC_FLAGS[command]))
    value = draw.draw(number_text)
    try:
        args = _parser().parse_args(attach_dash_values([*COMMAND_BASE[command], f"{flag}={value}"]))
    except UserError as e:
        assert str(e).strip() and "\n" not in str(e)
        _count("cli flags", "refused")
        return
    parsed = getattr(args, _parser().commands[command]._option_string_actions[flag].dest)  # --patience: early_stopping_patience
    parsed = parsed[0] if isinstance(parsed, list) else parsed
    assert math.isfinite(parsed) and parsed >= 0, (flag, value, parsed)
    _count("cli flags", "parsed")


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(st.text(alphabet=string.printable + NON_ASCII + "！［］＊", max_size=80))
@example("0\r#")  # a lone carriage return ends a Markdown line: this rendered as a heading
def test_plain_text_renders_as_exactly_that_text(text):
    """ui.state.plain: CommonMark renders the escaped text as one paragraph of the same characters, with no markup."""
    import html as html_module
    import re

    from markdown_it import MarkdownIt

    from ui.state import plain

    rendered = MarkdownIt("commonmark").render(plain(text))
    tags = set(re.findall(r"</?([a-z0-9]+)", rendered))
    assert tags <= {"p", "br"}, (text, rendered)
    shown = html_module.unescape(re.sub(r"<[^>]+>", "", rendered))
    assert " ".join(shown.split()) == " ".join(text.split()), (text, rendered)
    _count("markdown", "literal")


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(st.lists(st.text(alphabet=string.printable + NON_ASCII, max_size=20), min_size=1, max_size=8))
def test_exported_csv_cells_never_start_a_formula(cells):
    from core.comparison import report

    frame = pd.DataFrame({"text": cells, "n": range(len(cells))})
    rows = list(csv.reader(io.StringIO(report.export_csv(frame), newline="")))
    assert len(rows) == len(cells) + 1
    for (cell, _), original in zip(rows[1:], cells):
        if cell.startswith(report.FORMULA_START):
            float(cell)  # only a plain number may start with + or -
        assert cell == original or cell == "'" + original
    _count("csv cells", "neutral")


@settings(max_examples=MAX_EXAMPLES // 2, deadline=None)
@given(
    st.dictionaries(
        st.text(alphabet=string.ascii_letters + string.digits + "-_ .=", min_size=1, max_size=12).filter(
            lambda s: s.strip() and "=" not in s and s.strip() == s
        ),
        st.text(alphabet=string.ascii_letters + "-= ", min_size=1, max_size=8).filter(lambda s: s.strip() == s and s),
        min_size=1,
        max_size=4,
    )
)
def test_label_words_round_trip_through_the_apps_config_file(words):
    """Whatever labels the app saves (e.g. '-1', '--x'), `prompt --config` parses the same label words back."""
    import tempfile

    from core import prompting
    from core.cli import parse_args
    from core.cli import prompt as cli_prompt

    config = prompting.PromptConfig(label_words=words)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "job.json")
        with open(path, "w") as f:
            json.dump(config.to_dict(), f)
        args = parse_args([*COMMAND_BASE["prompt"], "--config", path])
    assert cli_prompt.build_config(args, 0, 0).label_words == words
    _count("label words", "round trip")


def test_report_examples_tried():
    """Print how many hostile inputs each property tried (run with -s to see it)."""
    print(f"\nhostile inputs tried: {TRIED} = {sum(TRIED.values())}")
    if TRIED:
        assert all(n >= 1 for n in TRIED.values())


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1", "cp1252"])
def test_non_utf8_encodings_are_refused_with_a_hint(encoding):
    raw = "text,label\ncafé crème brûlée très bon,pos\nnaïve façade,neg\n".encode(encoding)
    with pytest.raises(UserError, match="not UTF-8"):
        data.load_upload(raw, "reviews.csv")


@pytest.fixture
def one_mb_limit(monkeypatch):
    """A 1 MB upload limit, and reading any file's bytes made to fail, to prove big files are refused before reading."""
    monkeypatch.setattr(data, "MAX_FILE_MB", 1.0)


def test_big_file_is_refused_from_its_size_before_reading(tmp_path, monkeypatch, one_mb_limit):
    big = tmp_path / "huge.csv"
    with open(big, "wb") as f:  # sparse: 5 GB on paper, nothing on disk
        f.write(b"text,label\n")
        f.truncate(5 * 2**30)
    read = []
    monkeypatch.setattr(type(big), "read_bytes", lambda self: read.append(self) or b"")
    for load in (lambda: data.read_file(big), lambda: data.load(str(big)), lambda: data.load_split(str(big), "train")):
        with pytest.raises(UserError, match=r"huge.csv is 5120.0 MB; the limit is 1 MB"):
            load()
    assert read == [], "the file was read before its size was checked"


def test_big_upload_bytes_are_refused(one_mb_limit):
    with pytest.raises(UserError, match="the limit is 1 MB"):
        data.load_upload(b"text,label\n" + b"x" * (2 * 2**20) + b",pos\n", "big.csv")


def test_upload_limit_comes_from_the_environment():
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", "from core import data; print(data.MAX_FILE_MB)"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PFT_MAX_UPLOAD_MB": "3"},
        check=True,
    )
    assert out.stdout.strip() == "3.0"


@pytest.mark.parametrize(
    ("env", "expected"), [({"PFT_MAX_UPLOAD_MB": "100"}, ["--server.maxUploadSize=100", "--x"]), ({}, ["--x"])]
)
def test_run_sh_hands_the_upload_limit_to_the_server(env, expected):
    """Issue 13 item 11: scripts/run.sh passes PFT_MAX_UPLOAD_MB to streamlit as server.maxUploadSize (one setting)."""
    root = Path(__file__).resolve().parent.parent
    line = next(x for x in (root / "scripts" / "run.sh").read_text().splitlines() if x.startswith("exec "))
    probe = line.replace("exec .venv/bin/python -m streamlit run streamlit_app.py", "printf '%s\\n'")
    clean = {k: v for k, v in os.environ.items() if k != "PFT_MAX_UPLOAD_MB"}
    out = subprocess.run(
        ["bash", "-uc", probe, "run.sh", "--x"], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == expected
