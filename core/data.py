"""Load, validate, split and describe labelled text datasets -> a Dataset with text/label columns and label names."""

from __future__ import annotations

import collections
import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import UserError

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"
SPLITS = ("train", "validation", "test")
TEXT_COLUMNS = (
    "text",
    "sentence",
    "content",
    "review",
    "message",
    "utterance",
    "query",
    "question",
    "body",
    "document",
    "tweet",
    "headline",
    "comment",
    "input",
)
LABEL_COLUMNS = ("label", "labels", "category", "class", "intent", "sentiment", "target", "y", "gold", "output")
SPLIT_COLUMNS = ("split", "subset", "fold")
MAX_FILE_MB = float(os.environ.get("PFT_MAX_UPLOAD_MB", 50))  # larger files are refused before being read
MAX_LABEL_CHARS = 100  # a longer "label" is almost surely a text column picked by mistake
# Banking77 (77), CLINC150 (151) and large product or intent taxonomies (several hundred) stay well inside; a column with
# more distinct values than this is an id or free text, not labels (and prompting scores every label for every example)
MAX_CLASSES = 1000
MAX_COLUMNS = 1000  # a table for text classification needs two; a header of 100,000 names is refused before pandas parses it


@dataclass
class Dataset:
    """A labelled text dataset: one DataFrame per split with columns id, text, label (label names as strings)."""

    name: str  # sample name or file name
    source: str  # sample name, file path or hub id, as given
    splits: dict[str, pd.DataFrame]
    label_names: list[str]
    text_col: str = "text"  # column names in the original file
    label_col: str = "label"
    notes: list[str] = field(default_factory=list)  # what cleaning did, for the user to read

    def fingerprint(self, split: str) -> str:
        """sha256 of one split's texts and labels, in order; runs on the same split share it."""
        return fingerprint(self.splits[split])

    def split_names(self) -> list[str]:
        """Split names in the usual order."""
        return [s for s in SPLITS if s in self.splits] + [s for s in self.splits if s not in SPLITS]


def fingerprint(df: pd.DataFrame) -> str:
    """sha256 over the rows' text and label, in order."""
    h = hashlib.sha256()
    for text, label in zip(df["text"], df["label"]):
        h.update(f"{text}\t{label}\n".encode())
    return h.hexdigest()


def list_samples() -> list[str]:
    """Names of the bundled sample datasets."""
    return sorted(p.name for p in SAMPLE_DIR.iterdir() if (p / "train.csv").exists()) if SAMPLE_DIR.exists() else []


def sample_card(name: str) -> str:
    """The markdown card of a sample dataset."""
    card = SAMPLE_DIR / name / "README.md"
    return card.read_text(encoding="utf-8") if card.exists() else ""


def read_table(data: bytes, filename: str) -> pd.DataFrame:
    """Parse CSV/TSV/JSONL/JSON/Parquet bytes into a DataFrame of strings, with a clear error for anything else."""
    suffix = Path(filename).suffix.lower()
    if len(data) > MAX_FILE_MB * 1024 * 1024:
        raise UserError(
            f"{filename} is {len(data) / 2**20:.1f} MB; the limit is {MAX_FILE_MB:g} MB (set PFT_MAX_UPLOAD_MB to change it)."
        )
    if not data.strip():
        raise UserError(f"{filename} is empty.")
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(io.BytesIO(data))
        else:
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                raise UserError(
                    f"{filename} is not UTF-8 text (byte 0x{data[e.start]:02x} at position {e.start}); "
                    "save it as UTF-8 and try again."
                ) from None
            if "\x00" in text:
                raise UserError(f"{filename} contains NUL bytes, so it is not a text table.")
            if suffix in (".jsonl", ".ndjson"):
                check_json_lines(text, filename)
                df = pd.read_json(io.StringIO(text), lines=True, dtype=False)
            elif suffix == ".json":
                df = pd.read_json(io.StringIO(text), dtype=False)
            elif suffix in (".csv", ".tsv", ".txt", ""):
                sep = delimiter(text.split("\n", 1)[0], suffix)
                # the python engine refuses a bare CR inside a quoted cell, and old Mac files end lines with CR alone
                text = text.replace("\r\n", "\n").replace("\r", "\n")
                check_fields(text, sep, filename)
                df = pd.read_csv(
                    io.StringIO(text),
                    sep=sep,
                    dtype=str,
                    keep_default_na=False,
                    na_values=[""],
                    on_bad_lines="error",
                    engine="python",
                )
            else:
                raise UserError(f"{filename}: unsupported file type '{suffix}'; use CSV, TSV, JSONL or Parquet.")
    except UserError:
        raise
    except Exception as e:  # pandas/pyarrow raise many types for malformed files
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"{filename} could not be parsed as {suffix.lstrip('.') or 'a table'}: {first}") from None
    if not isinstance(df, pd.DataFrame) or df.empty or len(df.columns) == 0:
        raise UserError(f"{filename} has no rows.")
    too_many_columns(len(df.columns), filename)
    df.columns = [str(c).strip() for c in df.columns]
    if len(set(df.columns)) != len(df.columns):
        raise UserError(f"{filename} has repeated column names: {', '.join(df.columns)}.")
    return df


SEPARATOR_NAMES = {",": "comma", "\t": "tab", ";": "semicolon"}


def check_fields(text: str, sep: str, filename: str) -> None:
    """Refuse repeated header names and rows with more fields than the header (pandas would rename the one to 'text.1'
    and silently take the first column of the other as an index, cutting texts at an unquoted comma)."""
    rows = csv.reader(io.StringIO(text), delimiter=sep)
    try:
        header = [c.strip() for c in next(rows)]
        too_many_columns(len(header), filename)
        repeated = sorted(c for c, n in collections.Counter(header).items() if n > 1)  # one pass: a header may have 100,000 names
        if repeated:
            raise UserError(
                f"{filename} names the column '{repeated[0]}' more than once in its header; give every column its own name."
            )
        for n, row in enumerate(rows, start=1):  # data rows, counted from 1
            if len(row) > len(header):
                raise UserError(
                    f"Row {n} of {filename} has {len(row)} fields but the header has {len(header)}; a text probably contains an "
                    f"unquoted {SEPARATOR_NAMES.get(sep, repr(sep))} (put such texts in double quotes)."
                )
    except csv.Error as e:
        if "field larger than field limit" in str(e):
            raise UserError(
                f"{filename} has a cell longer than {csv.field_size_limit():,} characters, far beyond any text a "
                "classifier reads; shorten it or leave it out."
            ) from None
        return  # malformed quoting: pandas reports it with its own message


def check_json_lines(text: str, filename: str) -> None:
    """Refuse a JSON Lines file whose line is not a JSON object, naming that line (pandas names none)."""
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            raise UserError(
                f"Line {n} of {filename} is not valid JSON; each line must be one object such as "
                '{"text": "...", "label": "..."}.'
            ) from None
        if not isinstance(obj, dict):
            raise UserError(
                f"Line {n} of {filename} is a JSON {type(obj).__name__.replace('dict', 'object')}, not an object such as "
                '{"text": "...", "label": "..."}.'
            )


def too_many_columns(n: int, filename: str) -> None:
    """Refuse a table of more than MAX_COLUMNS columns in one sentence."""
    if n > MAX_COLUMNS:
        raise UserError(
            f"{filename} has {n:,} columns; the limit is {MAX_COLUMNS:,} (a text, a label and a few more are all this needs)."
        )


def delimiter(header: str, suffix: str) -> str:
    """Tab for .tsv; otherwise comma, unless the header line has none and uses tabs or semicolons (European Excel)."""
    if suffix == ".tsv":
        return "\t"
    if "," not in header:
        for sep in ("\t", ";"):
            if sep in header:
                return sep
    return ","


def read_file(path: str | Path) -> pd.DataFrame:
    """Read a table from disk, refusing large files before reading them."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"There is no file at {path}.")
    size = path.stat().st_size
    if size > MAX_FILE_MB * 1024 * 1024:
        raise UserError(
            f"{path.name} is {size / 2**20:.1f} MB; the limit is {MAX_FILE_MB:g} MB (set PFT_MAX_UPLOAD_MB to change it)."
        )
    return read_table(path.read_bytes(), path.name)


def detect_column(columns: list[str], candidates: tuple[str, ...], what: str, given: str | None) -> str:
    """The column named by the user, or the one candidate name present; a clear error when none or several."""
    if given:
        if given not in columns:
            raise UserError(f"There is no column '{given}'; the columns are: {', '.join(columns)}.")
        return given
    lower = {c.lower(): c for c in columns}
    found = [lower[c] for c in candidates if c in lower]
    if not found:
        raise UserError(f"No {what} column found among: {', '.join(columns)}; name it with --{what}-col.")
    return found[0]


def clean(df: pd.DataFrame, text_col: str, label_col: str, name: str) -> tuple[pd.DataFrame, list[str]]:
    """Normalise to text/label strings; drop empty texts, missing labels and exact duplicates, saying how many."""
    notes: list[str] = []
    extra = [c for c in df.columns if c.lower() in SPLIT_COLUMNS]
    out = pd.DataFrame({"text": df[text_col], "label": df[label_col]})
    for c in extra[:1]:
        blank = df[c].isna() | (df[c].astype(str).str.strip() == "")
        if blank.all():  # an empty split column says nothing: split the rows as if it were not there
            notes.append(f"Ignored the empty column '{c}'.")
            continue
        if blank.any():
            row = int(np.flatnonzero(blank.to_numpy())[0]) + 1
            raise UserError(
                f"Row {row} of {name} has no value in column '{c}'; fill it (train, validation or test) or remove the column."
            )
        out["split"] = (
            df[c]
            .astype(str)
            .str.strip()
            .str.lower()
            .replace({"dev": "validation", "valid": "validation", "val": "validation", "eval": "test"})
        )
    for col, values in ((text_col, out["text"]), (label_col, out["label"])):
        nested = values.map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray)))
        if nested.any():
            row = int(np.flatnonzero(nested.to_numpy())[0]) + 1
            raise UserError(
                f"Row {row} of {name} holds a list or object in column '{col}' ({str(values[nested].iloc[0])[:40]}), "
                "not a single text or label; flatten that column first."
            )
    missing_label = out["label"].isna() | (out["label"].astype(str).str.strip() == "")
    if missing_label.all():
        raise UserError(f"Every row of {name} is missing its label in column '{label_col}'.")
    if missing_label.any():
        notes.append(f"Dropped {int(missing_label.sum())} rows with no label.")
    out = out[~missing_label]
    labels = out["label"]
    if pd.api.types.is_float_dtype(labels) and (labels == labels.round()).all():
        labels = labels.astype(int)
    out["label"] = labels.astype(str).str.strip()
    # line ends as the CSV reader leaves them (a bare \r from JSONL, Parquet or the Hub would split a row in a job's CSV copy)
    out["text"] = out["text"].fillna("").astype(str).str.replace("\r\n", "\n").str.replace("\r", "\n").str.strip()
    empty = out["text"] == ""
    if empty.all():
        raise UserError(f"Every text in column '{text_col}' of {name} is empty.")
    if empty.any():
        notes.append(f"Dropped {int(empty.sum())} rows with empty text.")
    out = out[~empty]
    longest = out["label"].str.len().max()
    if longest > MAX_LABEL_CHARS:
        raise UserError(
            f"A label in column '{label_col}' is {longest} characters long; that looks like text, not a label, "
            "so pick the label column with --label-col."
        )
    dup = out.duplicated(subset=["text", "label"])
    if dup.any():
        notes.append(f"Dropped {int(dup.sum())} exact duplicate rows.")
    out = out[~dup]
    conflicting = out.duplicated(subset=["text"], keep=False)
    if conflicting.any():
        notes.append(f"{int(conflicting.sum())} rows share a text with a different label (kept).")
    return out.reset_index(drop=True), notes


def label_order(labels: pd.Series) -> list[str]:
    """Label names sorted numerically when they are all integers, else alphabetically."""
    values = sorted(set(labels))
    if all(v.lstrip("-").isdigit() for v in values):
        return sorted(values, key=int)
    return values


def check_classes(labels: list[str], name: str, label_col: str, min_classes: int = 2) -> list[str]:
    """labels, unless there are fewer than min_classes or more than MAX_CLASSES of them (then one sentence)."""
    if len(labels) < min_classes:
        raise UserError(f"{name} has only one class ('{labels[0]}'); classification needs at least two.")
    if len(labels) > MAX_CLASSES:
        raise UserError(
            f"{name} has {len(labels)} distinct labels in column '{label_col}'; the limit is {MAX_CLASSES}, "
            "so it is probably not a label column."
        )
    return labels


def combined_labels(train_ds: Dataset, eval_ds: Dataset) -> list[str]:
    """The training labels, then any only the evaluation data has; a run needs at least two of them in all."""
    labels = list(train_ds.label_names) + [lab for lab in eval_ds.label_names if lab not in train_ds.label_names]
    return check_classes(labels, f"{train_ds.name} and {eval_ds.name} together", eval_ds.label_col)


def stratified_split(df: pd.DataFrame, fractions: dict[str, float], seed: int = 0) -> dict[str, pd.DataFrame]:
    """Split rows so every split keeps the label proportions (seeded); each class gets a row in each split when it can."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {s: [] for s in fractions}
    names = list(fractions)
    for _, idx in df.groupby("label", sort=True).groups.items():
        idx = rng.permutation(np.asarray(idx))
        n = len(idx)
        counts = [int(round(n * fractions[s])) for s in names[1:]]
        if n >= len(names):
            counts = [max(1, c) for c in counts]
        counts = [min(c, n - sum(counts[:i])) for i, c in enumerate(counts)]
        start = n - sum(counts)
        parts[names[0]] += idx[:start].tolist()
        for s, c in zip(names[1:], counts):
            parts[s] += idx[start : start + c].tolist()
            start += c
    return {s: df.loc[sorted(ix)].reset_index(drop=True) for s, ix in parts.items()}


def from_frame(
    df: pd.DataFrame, name: str, source: str, text_col: str | None = None, label_col: str | None = None, seed: int = 0
) -> Dataset:
    """Build a Dataset from one table: detect columns, clean, and split it unless it has a split column."""
    columns = list(df.columns)
    text_col = detect_column(columns, TEXT_COLUMNS, "text", text_col)
    label_col = detect_column(columns, LABEL_COLUMNS, "label", label_col)
    if text_col == label_col:
        raise UserError(f"The text and label columns are both '{text_col}'; name them with --text-col and --label-col.")
    rows, notes = clean(df, text_col, label_col, name)
    labels = check_classes(label_order(rows["label"]), name, label_col)
    if "split" in rows:
        splits = {s: g.drop(columns="split").reset_index(drop=True) for s, g in rows.groupby("split", sort=False)}
    else:
        if len(rows) < 10:
            raise UserError(f"{name} has {len(rows)} usable rows; at least 10 are needed to make train and test splits.")
        splits = stratified_split(rows, {"train": 0.7, "validation": 0.15, "test": 0.15}, seed)
        if any(frame.empty for frame in splits.values()):  # e.g. 10 rows over 5 labels: no class is big enough to lend a row
            raise UserError(
                f"{name} has too few rows per label ({len(rows)} rows, {len(labels)} labels) "
                "to make validation and test splits; add rows or a split column."
            )
        notes.append(f"Made train/validation/test splits (70/15/15, stratified, seed {seed}).")
    return finish(name, source, splits, labels, text_col, label_col, notes)


def finish(name, source, splits, labels, text_col, label_col, notes) -> Dataset:
    """Add stable ids and wrap the splits in a Dataset."""
    for s, frame in splits.items():
        frame.insert(0, "id", [f"{s}-{i}" for i in range(len(frame))])
    return Dataset(
        name=name, source=source, splits=splits, label_names=labels, text_col=text_col, label_col=label_col, notes=notes
    )


def load_sample(name: str) -> Dataset:
    """One of the bundled sample datasets, with its own train/validation/test files."""
    folder = SAMPLE_DIR / name
    if name not in list_samples():
        raise UserError(f"There is no sample dataset '{name}'; the samples are: {', '.join(list_samples())}.")
    frames = []
    for s in SPLITS:
        if (folder / f"{s}.csv").exists():
            frames.append(read_file(folder / f"{s}.csv").assign(split=s))
    return from_frame(pd.concat(frames, ignore_index=True), name, name)


def load_upload(data: bytes, filename: str, text_col: str | None = None, label_col: str | None = None, seed: int = 0) -> Dataset:
    """A Dataset from an uploaded file's bytes."""
    return from_frame(read_table(data, filename), filename, filename, text_col, label_col, seed)


HUB_DATASET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?\Z")  # 'imdb', 'owner/name'


# datasets' own loaders (csv, json, text, ...): as a dataset name they read the working folder, recursively
PACKAGED_BUILDERS = (
    "arrow",
    "audiofolder",
    "csv",
    "generator",
    "imagefolder",
    "json",
    "pandas",
    "parquet",
    "spark",
    "sql",
    "text",
    "videofolder",
    "webdataset",
    "xml",
    "cache",
    "folder_based_builder",
)


def packaged_builders() -> set[str]:
    """The names datasets.load_dataset takes for its packaged loaders (those of the installed version too)."""
    try:
        from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES as installed
    except ImportError:
        installed = {}
    return {*PACKAGED_BUILDERS, *(str(k).lower() for k in installed)}


def load_hub(name: str, text_col: str | None = None, label_col: str | None = None, seed: int = 0) -> Dataset:
    """A Dataset from the Hugging Face hub (needs network or the local datasets cache); a hub id only, never a local path
    (datasets.load_dataset would read any server folder or file, past the upload limit)."""
    from core.models import hub_reachable

    if not HUB_DATASET_ID.match(name) or ".." in name or Path(name).expanduser().exists() or name.lower() in packaged_builders():
        raise UserError(
            f"'{name[:80]}' is not a Hugging Face dataset id (like imdb or owner/name); load a file with the File source."
        )
    try:
        import datasets

        if not hub_reachable():
            os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        dd = datasets.load_dataset(name)
    except Exception as e:
        raise UserError(
            f"Could not load the Hugging Face dataset '{name}' "
            "(not cached here, and the Hub cannot be reached, or the name is wrong)."
        ) from e
    frames = []
    label_names: list[str] | None = None
    for split, ds in dd.items():
        df = ds.to_pandas()
        col = label_col or next((c for c in df.columns if c.lower() in LABEL_COLUMNS), None)
        feature = ds.features.get(col) if col else None
        if hasattr(feature, "names"):
            label_names = list(feature.names)
            df[col] = [label_names[i] if i >= 0 else None for i in df[col]]
        frames.append(df.assign(split={"dev": "validation", "valid": "validation"}.get(split, split)))
    return from_frame(pd.concat(frames, ignore_index=True), name, name, text_col, label_col, seed)


TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet", ".txt")


def load(source: str, text_col: str | None = None, label_col: str | None = None, seed: int = 0) -> Dataset:
    """A sample name, a file path, or (failing both) a Hugging Face dataset name."""
    if source in list_samples():
        return load_sample(source)
    path = Path(source).expanduser()
    if path.suffix.lower() in TABLE_SUFFIXES:
        return from_frame(read_file(path), path.name, str(path), text_col, label_col, seed)
    if path.exists():  # never read as a table (nor quoted in an error): /etc/passwd, a key, a folder
        raise UserError(f"{path.name} is not a table file; give a .csv, .tsv, .txt, .jsonl, .json or .parquet file.")
    if "/" in source or source.replace("_", "").replace("-", "").isalnum():
        return load_hub(source, text_col, label_col, seed)
    raise UserError(f"'{source}' is not a sample name ({', '.join(list_samples())}), a file, or a dataset name.")


def load_train_eval(
    train: str, eval_source: str, text_col: str | None = None, label_col: str | None = None
) -> tuple[Dataset, str, Dataset, str]:
    """--train and --eval: each Dataset and the split used. When both name one file without a split column, it is
    split once, 70/15/15 as the app splits an upload of it, and its 'train' and 'test' splits are used: read whole
    for both, every evaluation row would also be a training row (and the runs would match no split the app shows)."""
    one = train == eval_source and train.partition(":")[0] not in list_samples()
    train_ds, train_split = load_split(train, "train", text_col, label_col, split_whole=one)
    eval_ds, eval_split = load_split(eval_source, "test", text_col, label_col, split_whole=one)
    return train_ds, train_split, eval_ds, eval_split


def load_split(
    source: str, default_split: str, text_col: str | None = None, label_col: str | None = None, split_whole: bool = False
) -> tuple[Dataset, str]:
    """For the CLI's --train/--eval: 'reviews', 'reviews:validation' or a file; returns the Dataset and the split used.

    A file without split column counts as one whole split (it is not re-split), so --train a.csv --eval b.csv work;
    split_whole: it is split as the app splits an upload (load_train_eval, for one file named by both)."""
    name, _, split = source.partition(":") if source.partition(":")[0] in list_samples() else (source, "", "")
    if name in list_samples():
        ds = load_sample(name)
        split = split or default_split
    else:
        path = Path(source).expanduser()
        df = read_file(path)
        columns = list(df.columns)
        if split_whole or any(c.lower() in SPLIT_COLUMNS for c in columns):
            ds = from_frame(df, path.name, str(path), text_col, label_col)
            split = default_split
        else:
            tc = detect_column(columns, TEXT_COLUMNS, "text", text_col)
            lc = detect_column(columns, LABEL_COLUMNS, "label", label_col)
            rows, notes = clean(df, tc, lc, path.name)
            # one class is fine for an evaluation file (combined_labels checks the run's label set), never for training
            labels = check_classes(label_order(rows["label"]), path.name, lc, 2 if default_split == "train" else 1)
            ds = finish(path.name, str(path), {default_split: rows}, labels, tc, lc, notes)
            split = default_split
    if split not in ds.splits:
        raise UserError(f"{ds.name} has no '{split}' split; it has: {', '.join(ds.split_names())}.")
    if default_split == "train":
        check_classes(label_order(ds.splits[split]["label"]), f"The '{split}' split of {ds.name}", ds.label_col)
    return ds, split


def save_splits(ds: Dataset, folder: Path) -> dict[str, Path]:
    """Write each split as text,label CSV (atomically) so a CLI job can read exactly what the app loaded."""
    from core.runs import not_a_link, write_atomic

    for part in (folder.parent, folder):  # runs/_data and its fingerprint folder: never a link leading out of the runs folder
        not_a_link(part)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for s, frame in ds.splits.items():
        path = folder / f"{s}.csv"
        write_atomic(path, frame[["text", "label"]].to_csv(index=False))
        paths[s] = path
    write_atomic(folder / "labels.json", json.dumps(ds.label_names))
    return paths


def summary(ds: Dataset) -> pd.DataFrame:
    """Rows per split and label (a long table: split, label, count)."""
    rows = [(s, lab, int(n)) for s in ds.split_names() for lab, n in ds.splits[s]["label"].value_counts().items()]
    return pd.DataFrame(rows, columns=["split", "label", "count"])


NEAR_DUPLICATE_THRESHOLD = 0.8  # word 3-gram Jaccard at or above which two texts count as near-duplicates
MAX_DUPLICATE_PAIRS = 1000  # pair rows a duplicate report keeps (counts cover every pair)
MINHASH_BANDS, MINHASH_ROWS = 20, 3  # LSH: 60 MinHash values; texts agreeing on all 3 of any band are candidates
MAX_CANDIDATE_PAIRS = 200_000  # near-duplicate candidates checked at most (bounds time and memory)


def class_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per label, most frequent first: rows in each split, in all, and the label's share of all rows
    (summary: split, label, count)."""
    table = summary.pivot_table(index="label", columns="split", values="count", aggfunc="sum", fill_value=0)
    table = table[[s for s in SPLITS if s in table] + [s for s in table if s not in SPLITS]]
    table["total"] = table.sum(axis=1)
    table["share"] = (table["total"] / max(int(table["total"].sum()), 1)).round(4)
    table.columns.name = None
    return table.sort_values("total", ascending=False, kind="stable").reset_index()


def _shingles(text: str, n: int = 3) -> set[str]:
    words = text.lower().split()
    return {" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b| (0 for two empty sets)."""
    return len(a & b) / len(a | b) if a or b else 0.0


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-mixed 64-bit hash of uint64 values (multiplication wraps mod 2**64)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def minhash_signatures(shingle_sets: list[set[str]], num_perm: int = MINHASH_BANDS * MINHASH_ROWS, seed: int = 0) -> np.ndarray:
    """(N, num_perm) MinHash signatures: for each of num_perm seeded 64-bit hash functions of a stable 32-bit hash of
    each shingle, the smallest value over the text's shingles. Two texts agree on one value with probability equal to
    their Jaccard similarity (texts without shingles get all zeros)."""
    import zlib

    seeds = np.random.default_rng(seed).integers(0, 2**63, size=num_perm, dtype=np.uint64)
    sizes = np.array([len(sh) for sh in shingle_sets], dtype=np.int64)
    hashed = np.fromiter((zlib.crc32(g.encode()) for sh in shingle_sets for g in sh), dtype=np.uint64, count=int(sizes.sum()))
    out = np.zeros((len(shingle_sets), num_perm), dtype=np.uint64)
    nonempty = np.flatnonzero(sizes)
    if not len(nonempty):
        return out
    starts = (np.cumsum(sizes) - sizes)[nonempty]
    with np.errstate(over="ignore"):
        for k in range(num_perm):
            out[nonempty, k] = np.minimum.reduceat(_mix(hashed ^ seeds[k]), starts)
    return out


def lsh_candidates(
    signatures: np.ndarray, bands: int = MINHASH_BANDS, budget: int = MAX_CANDIDATE_PAIRS
) -> tuple[np.ndarray, bool]:
    """(M, 2) index pairs i < j whose signatures agree on every row of at least one band; small buckets first, at most
    budget pairs. Also whether the budget cut the list short."""
    n, per = len(signatures), signatures.shape[1] // bands
    buckets = []
    for band in range(bands):
        keys = np.ascontiguousarray(signatures[:, band * per : (band + 1) * per]).view(f"V{8 * per}").ravel()
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        members = np.argsort(inverse, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(counts)])
        buckets += [members[bounds[g] : bounds[g + 1]] for g in np.flatnonzero(counts > 1)]
    buckets.sort(key=len)
    seen: set[int] = set()
    capped = False
    for bucket in buckets:
        i, j = np.triu_indices(len(bucket), 1)
        codes = np.minimum(bucket[i], bucket[j]).astype(np.int64) * n + np.maximum(bucket[i], bucket[j])
        seen.update(codes[: budget - len(seen)].tolist())
        if len(seen) >= budget:
            capped = len(codes) > 0
            break
    codes = np.array(sorted(seen), dtype=np.int64)
    return np.stack([codes // n, codes % n], axis=1) if len(codes) else np.zeros((0, 2), dtype=np.int64), capped


PAIR_COLUMNS = ["split_a", "id_a", "split_b", "id_b", "kind", "similarity", "text_a", "text_b"]


@dataclass
class DuplicateReport:
    """Duplicate pairs within and across splits: counts of every pair, and a bounded list of example pairs."""

    pairs: pd.DataFrame  # split_a, id_a, split_b, id_b, kind, similarity, text_a, text_b; at most max_pairs rows
    summary: pd.DataFrame  # splits ("within train", "test / train"), exact, near: pair counts
    total_pairs: int  # pairs counted in summary (pairs lists at most max_pairs of them)
    capped: bool  # near-duplicate candidates were cut at MAX_CANDIDATE_PAIRS: near counts are a lower bound


def _split_key(a: str, b: str) -> str:
    return f"within {a}" if a == b else " / ".join(sorted((a, b)))


@dataclass
class DuplicateScan:
    """What the duplicate scan found before a near-duplicate threshold is applied (cache it; report() is cheap)."""

    splits: list[str]
    group_counts: np.ndarray  # (exact groups, splits): rows of each group in each split
    reps: pd.DataFrame  # split, id, text of the first row of each exact group, in group order
    exact_pairs: pd.DataFrame  # PAIR_COLUMNS, each later row of a group paired with its first, at most max_pairs
    candidates: np.ndarray  # (M, 2) group pairs proposed by LSH
    similarity: np.ndarray  # (M,) their word 3-gram Jaccard
    capped: bool  # candidates were cut at MAX_CANDIDATE_PAIRS

    def report(self, threshold: float = NEAR_DUPLICATE_THRESHOLD, max_pairs: int = MAX_DUPLICATE_PAIRS) -> DuplicateReport:
        """Pair counts per split pair and up to max_pairs example pairs (exact first, then the most similar near)."""
        if not 0 < threshold <= 1:
            raise UserError(f"The near-duplicate threshold must be above 0 and at most 1, not {threshold}.")
        c, counts = self.group_counts, {"exact": {}, "near": {}}

        def add(kind: str, a: str, b: str, n: int) -> None:
            if n:
                key = _split_key(a, b)
                counts[kind][key] = counts[kind].get(key, 0) + int(n)

        keep = np.flatnonzero(self.similarity >= threshold)
        between = c[self.candidates[keep, 0]].T @ c[self.candidates[keep, 1]]  # (splits, splits): member pairs of near groups
        for x, a in enumerate(self.splits):
            add("exact", a, a, (c[:, x] * (c[:, x] - 1) // 2).sum())
            for y, b in enumerate(self.splits):
                add("exact", a, b, (c[:, x] * c[:, y]).sum() if x < y else 0)
                add("near", a, b, between[x, y])
        examples = self.exact_pairs.head(max_pairs)
        best = keep[np.argsort(-self.similarity[keep], kind="stable")][: max(0, max_pairs - len(examples))]
        ra, rb = self.reps.iloc[self.candidates[best, 0]], self.reps.iloc[self.candidates[best, 1]]
        near = pd.DataFrame(
            {
                "split_a": ra["split"].to_numpy(),
                "id_a": ra["id"].to_numpy(),
                "split_b": rb["split"].to_numpy(),
                "id_b": rb["id"].to_numpy(),
                "kind": "near",
                "similarity": self.similarity[best].round(3),
                "text_a": ra["text"].to_numpy(),
                "text_b": rb["text"].to_numpy(),
            },
            columns=PAIR_COLUMNS,
        )
        keys = sorted(set(counts["exact"]) | set(counts["near"]))
        summary = pd.DataFrame(
            {"splits": keys, "exact": [counts["exact"].get(k, 0) for k in keys], "near": [counts["near"].get(k, 0) for k in keys]}
        )
        pairs = pd.concat([examples, near], ignore_index=True) if len(near) else examples.reset_index(drop=True)
        return DuplicateReport(pairs, summary, int(summary[["exact", "near"]].to_numpy().sum()), self.capped)


def duplicate_scan(ds: Dataset, max_pairs: int = MAX_DUPLICATE_PAIRS) -> DuplicateScan:
    """Exact duplicates (same text up to case and spacing, grouped by hash) and near-duplicate candidates (MinHash/LSH
    among one text per exact group, each candidate's word 3-gram Jaccard computed exactly).

    Memory and time grow with the number of texts, not pairs: exact pairs are counted from group sizes, near
    candidates are capped, and only max_pairs exact example pairs are kept."""
    frames = [(s, f) for s in ds.split_names() for f in [ds.splits[s]] if len(f)]
    rows = pd.concat(
        [pd.DataFrame({"split": s, "id": f["id"].astype(str), "text": f["text"].astype(str)}) for s, f in frames]
        or [pd.DataFrame(columns=["split", "id", "text"])],
        ignore_index=True,
    )
    rows["group"] = pd.factorize(rows["text"].str.lower().str.split().str.join(" "))[0]
    split_codes, split_names = pd.factorize(rows["split"], sort=True)
    n_groups, n_splits = int(rows["group"].max()) + 1 if len(rows) else 0, len(split_names)
    per_split = np.bincount(rows["group"].to_numpy() * n_splits + split_codes, minlength=n_groups * n_splits).reshape(
        n_groups, n_splits
    )
    reps = rows.drop_duplicates("group").set_index("group").sort_index()  # one text per exact group, in group order
    later = rows[rows.duplicated("group")].sort_values("group", kind="stable").head(max_pairs)  # each paired with its first
    first = reps.loc[later["group"]]
    exact = pd.DataFrame(
        {
            "split_a": first["split"].to_numpy(),
            "id_a": first["id"].to_numpy(),
            "split_b": later["split"].to_numpy(),
            "id_b": later["id"].to_numpy(),
            "kind": "exact",
            "similarity": 1.0,
            "text_a": first["text"].to_numpy(),
            "text_b": later["text"].to_numpy(),
        },
        columns=PAIR_COLUMNS,
    )
    shingles = [_shingles(t) for t in reps["text"]]
    candidates, capped = lsh_candidates(minhash_signatures(shingles))
    sims = np.array([jaccard(shingles[i], shingles[j]) for i, j in candidates], dtype=float)
    return DuplicateScan(
        list(split_names), per_split.astype(np.int64), reps.reset_index(drop=True), exact, candidates, sims, capped
    )


def duplicate_report(
    ds: Dataset, threshold: float = NEAR_DUPLICATE_THRESHOLD, max_pairs: int = MAX_DUPLICATE_PAIRS
) -> DuplicateReport:
    """Exact and near-duplicate pairs within and across splits at one threshold (duplicate_scan, then its report)."""
    if not 0 < threshold <= 1:
        raise UserError(f"The near-duplicate threshold must be above 0 and at most 1, not {threshold}.")
    return duplicate_scan(ds, max_pairs).report(threshold, max_pairs)
