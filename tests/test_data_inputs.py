"""The data layer's bad inputs, each answered by its own sentence (and the good-but-awkward ones loaded with a note)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core import data
from core.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def csv_bytes(rows: list[tuple[str, str]], header: str = "text,label") -> bytes:
    """A small UTF-8 CSV."""
    return (header + "\n" + "".join(f'"{t}",{lab}\n' for t, lab in rows)).encode()


GOOD_ROWS = [(f"review number {i} of the kettle", "pos" if i % 2 else "neg") for i in range(30)]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "upload.csv is empty."),
        (b"   \n\n", "upload.csv is empty."),
        (b"text,label\n", "upload.csv has no rows."),
        (
            csv_bytes(GOOD_ROWS, header="body_text,label"),
            r"No text column found among: body_text, label; name it with --text-col.",
        ),
        (csv_bytes(GOOD_ROWS, header="text,verdict"), r"No label column found among: text, verdict; name it with --label-col."),
        (
            b"text,label\n" + b"".join(f"row {i},\n".encode() for i in range(20)),
            r"Every row of upload.csv is missing its label in column 'label'.",
        ),
        (
            csv_bytes([(f"row {i}", "pos") for i in range(20)]),
            r"upload.csv has only one class \('pos'\); classification needs at least two.",
        ),
        (
            "text,label\ncafé,pos\nnaïve,neg\n".encode("latin-1"),
            r"upload.csv is not UTF-8 text \(byte 0xe9 at position 14\); save it as UTF-8 and try again.",
        ),
        ("text,label\ncafé,pos\n".encode("utf-16"), r"upload.csv is not UTF-8 text \(byte 0xff at position 0\)"),
        (
            csv_bytes([*GOOD_ROWS[:-1], ("long label row", "x" * 500)]),
            r"A label in column 'label' is 500 characters long; that looks like text, not a label, "
            r"so pick the label column with --label-col.",
        ),
        (
            b"text,label\n" + b"".join(f",{'pos' if i % 2 else 'neg'}\n".encode() for i in range(20)),
            r"Every text in column 'text' of upload.csv is empty.",
        ),
        (csv_bytes(GOOD_ROWS[:6]), r"upload.csv has 6 usable rows; at least 10 are needed to make train and test splits."),
        (b"text\x00,label\nx,y\n", "contains NUL bytes"),
        (b'text,label\n"unclosed,pos\nmore,neg\n', r"upload.csv could not be parsed as csv"),
        (
            b"text,text,label\na,b,pos\n",
            r"upload.csv names the column 'text' more than once in its header; give every column its own name.",
        ),
        (
            b"text,label\n" + b"".join(f"review {i}, with a comma {i},{'pos' if i % 2 else 'neg'}\n".encode() for i in range(20)),
            r"Row 1 of upload.csv has 3 fields but the header has 2; "
            r"a text probably contains an unquoted comma \(put such texts in double quotes\).",
        ),
        (
            b"text,label\n"
            + b"".join(f'"quoted {i}",{"pos" if i % 2 else "neg"}\n'.encode() for i in range(20))
            + b"late, comma,pos\n",
            r"Row 21 of upload.csv has 3 fields but the header has 2",
        ),
        (
            b"text,label\n" + b"".join(f"row {i},L{i}\n".encode() for i in range(1500)),
            r"upload.csv has 1500 distinct labels in column 'label'; the limit is 1000, so it is probably not a label column.",
        ),
    ],
    ids=[
        "empty",
        "blank",
        "header-only",
        "no-text-column",
        "no-label-column",
        "no-labels",
        "one-class",
        "latin-1",
        "utf-16",
        "500-char-label",
        "all-texts-empty",
        "too-few-rows",
        "nul-bytes",
        "unclosed-quote",
        "repeated-columns",
        "unquoted-commas",
        "one-late-unquoted-comma",
        "1500-labels",
    ],
)
def test_bad_upload_is_answered_by_its_message(raw, message):
    with pytest.raises(UserError, match=message):
        data.load_upload(raw, "upload.csv")


def test_unsupported_file_type_is_named():
    with pytest.raises(UserError, match=r"unsupported file type '.xlsx'; use CSV, TSV, JSONL or Parquet"):
        data.load_upload(b"PK\x03\x04 not really a spreadsheet", "sheet.xlsx")


def test_rows_missing_a_label_are_dropped_with_a_count():
    rows = GOOD_ROWS + [(f"unlabelled {i}", "") for i in range(3)]
    ds = data.load_upload(csv_bytes(rows), "upload.csv")
    assert "Dropped 3 rows with no label." in ds.notes
    assert sum(len(f) for f in ds.splits.values()) == 30


def test_duplicated_rows_are_dropped_with_a_count():
    rows = GOOD_ROWS + GOOD_ROWS[:4] + GOOD_ROWS[:1]
    ds = data.load_upload(csv_bytes(rows), "upload.csv")
    assert "Dropped 5 exact duplicate rows." in ds.notes
    assert sum(len(f) for f in ds.splits.values()) == 30


def test_rows_with_empty_text_are_dropped_with_a_count():
    rows = GOOD_ROWS + [("", "pos"), ("   ", "neg")]
    ds = data.load_upload(csv_bytes(rows), "upload.csv")
    assert "Dropped 2 rows with empty text." in ds.notes
    assert all(t.strip() for f in ds.splits.values() for t in f["text"])


def test_too_few_rows_per_label_for_test_split_is_refused():
    rows = [(f"row {i}", f"class{i % 5}") for i in range(10)]
    with pytest.raises(UserError, match=r"too few rows per label \(10 rows, 5 labels\) to make validation and test splits"):
        data.load_upload(csv_bytes(rows), "upload.csv")


def test_bare_carriage_returns_in_quoted_cells_load():
    raw = b"text,label\n" + b"".join(f'"line one\rline two {i}",{"pos" if i % 2 else "neg"}\n'.encode() for i in range(20))
    ds = data.load_upload(raw, "upload.csv")
    assert sum(len(f) for f in ds.splits.values()) == 20
    mac = b"text,label\r" + b"".join(f"old mac row {i},{'pos' if i % 2 else 'neg'}\r".encode() for i in range(20))
    assert sum(len(f) for f in data.load_upload(mac, "mac.csv").splits.values()) == 20


def test_twelve_megabyte_upload_loads_under_the_default_limit(tmp_path):
    assert data.MAX_FILE_MB >= 50 or pytest.skip("PFT_MAX_UPLOAD_MB is set below 50 here")
    line = '"a fairly long product review that goes on about the kettle, the toaster and the delivery van {i}",{label}\n'
    body = "".join(line.format(i=i, label=("pos", "neg", "neu")[i % 3]) for i in range(125_000))
    path = tmp_path / "big.csv"
    path.write_text("text,label\n" + body, encoding="utf-8")
    size_mb = path.stat().st_size / 2**20
    assert size_mb > 10
    ds = data.load(str(path))
    assert sum(len(f) for f in ds.splits.values()) == 125_000
    assert ds.label_names == ["neg", "neu", "pos"]


def test_cli_answers_a_bad_file_with_one_sentence(tmp_path):
    path = tmp_path / "one-class.csv"
    path.write_bytes(csv_bytes([(f"row {i}", "pos") for i in range(20)]))
    out = subprocess.run([sys.executable, "-m", "core", "data", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: one-class.csv has only one class ('pos'); classification needs at least two."


def test_many_real_labels_load():
    """A 300-intent file (more than Banking77 or CLINC150) is a real label set, not an id column."""
    rows = [(f"utterance {i} for intent {i % 300}", f"intent_{i % 300}") for i in range(3000)]
    ds = data.load_upload(csv_bytes(rows), "intents.csv")
    assert len(ds.label_names) == 300


@pytest.mark.parametrize(
    ("suffix", "frame", "message"),
    [
        (
            ".parquet",
            {"text": [["a", "list"], ["b"]] * 10, "label": ["pos", "neg"] * 10},
            r"Row 1 of cells.parquet holds a list or object in column 'text' \(\['a' 'list'\]\), not a single text or label",
        ),
        (
            ".parquet",
            {"text": [f"row {i}" for i in range(20)], "label": [[i % 2] for i in range(20)]},
            r"Row 1 of cells.parquet holds a list or object in column 'label' \(\[0\]\)",
        ),
        (
            ".jsonl",
            {"text": [f"row {i}" for i in range(20)], "label": [{"a": i % 2} for i in range(20)]},
            r"Row 1 of cells.jsonl holds a list or object in column 'label' \(\{'a': 0\}\)",
        ),
    ],
    ids=["parquet-list-text", "parquet-list-label", "json-object-label"],
)
def test_list_and_object_cells_are_refused(tmp_path, suffix, frame, message):
    import pandas as pd

    path = tmp_path / f"cells{suffix}"
    df = pd.DataFrame(frame)
    df.to_parquet(path) if suffix == ".parquet" else df.to_json(path, orient="records", lines=True)
    with pytest.raises(UserError, match=message):
        data.load(str(path))


def _write(tmp_path, name: str, rows: list[tuple[str, str]]) -> str:
    path = tmp_path / name
    path.write_bytes(csv_bytes(rows))
    return str(path)


def test_one_class_train_file_is_refused_but_one_class_eval_file_is_allowed(tmp_path):
    one = _write(tmp_path, "one.csv", [(f"row {i}", "pos") for i in range(20)])
    with pytest.raises(UserError, match=r"one.csv has only one class \('pos'\); classification needs at least two."):
        data.load_split(one, "train")
    eval_ds, split = data.load_split(one, "test")  # a test file of one class is legitimate when training has more
    train_ds, _ = data.load_split(_write(tmp_path, "two.csv", GOOD_ROWS), "train")
    assert data.combined_labels(train_ds, eval_ds) == ["neg", "pos"]
    with pytest.raises(UserError, match="has only one class"):
        data.combined_labels(eval_ds, eval_ds)


def test_split_column_file_with_a_one_class_train_split_is_refused(tmp_path):
    path = tmp_path / "splits.csv"
    body = "".join(f"train row {i},pos,train\n" for i in range(10)) + "".join(
        f"test row {i},{'pos' if i % 2 else 'neg'},test\n" for i in range(10)
    )
    path.write_text("text,label,split\n" + body)
    with pytest.raises(UserError, match=r"The 'train' split of splits.csv has only one class \('pos'\)"):
        data.load_split(str(path), "train")


@pytest.mark.parametrize("flag", ["--train", "--eval"])
def test_cli_refuses_a_file_with_too_many_labels_on_train_and_eval(tmp_path, flag, capsys):
    from core.cli import main

    many = _write(tmp_path, "many.csv", [(f"row {i}", f"L{i}") for i in range(1500)])
    argv = ["prompt", "--train", "reviews", "--eval", "reviews", "--model", "smollm2"]
    argv[argv.index(flag) + 1] = many
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "error: many.csv has 1500 distinct labels in column 'label'; the limit is 1000, so it is probably not a label column."
    )


def test_cli_refuses_a_one_class_train_file(tmp_path, runs_dir, capsys):
    from core.cli import main

    one = _write(tmp_path, "one.csv", [(f"row {i}", "pos") for i in range(20)])
    assert main(["finetune", "--train", one, "--eval", "reviews", "--out", "never"]) == 2
    assert "one.csv has only one class ('pos')" in capsys.readouterr().err


def test_hugging_face_class_label_names_become_the_labels(monkeypatch):
    import datasets

    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])}
    )
    rows = {"sentence": [f"film {i}" for i in range(20)], "label": [i % 2 for i in range(20)]}
    fake = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features)})
    monkeypatch.setattr(datasets, "load_dataset", lambda name: fake)
    monkeypatch.setattr("core.models.hub_reachable", lambda: True)
    ds = data.load_hub("someone/sst2")
    assert ds.label_names == ["negative", "positive"]


def test_an_empty_split_column_is_ignored_and_the_rows_are_split():
    """Found by the random-table test: a split column with no values used to load as a dataset with no splits at all."""
    raw = "text,label,split\n" + "".join(f"text number {i} here,{'ab'[i % 2]},\n" for i in range(20))
    ds = data.load_upload(raw.encode(), "blank_split.csv")
    assert set(ds.splits) == {"train", "validation", "test"}
    assert sum(len(f) for f in ds.splits.values()) == 20
    assert "Ignored the empty column 'split'." in ds.notes


def test_a_split_column_with_a_gap_is_refused_naming_the_row():
    raw = "text,label,split\nhello there,a,train\nbye now,b,\nthird one,a,test\nfourth one,b,test\n"
    with pytest.raises(UserError, match=r"^Row 2 of gap\.csv has no value in column 'split'"):
        data.load_upload(raw.encode(), "gap.csv")
