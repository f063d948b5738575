"""Label an unlabelled file with a finished run (`python -m core predict`, the Apply page, the Playground).

Any finished run predicts: a prompt run re-creates its exact prompt from config.json (template, label words,
demonstrations, calibration) and scores through core.prompting.score_texts; a fine-tuned run loads its classifier
(every method, continual step runs with a shared head) or, for prompt-tuning and lora-lm, its decoder and adapter.

The input is read in chunks (pandas chunked CSV/JSONL, parquet row groups) and the output written chunk by chunk to a
temp file beside --out that replaces it only when every row is done, so memory stays flat and nothing is written half.
Empty texts are skipped and counted (the output's `row` column says which input rows each prediction belongs to).

The surge alert: per day (or week), a label's share of the rows is compared with the mean share of the `window`
periods before it; a period with at least `min_rows` rows whose share exceeds that trailing mean by more than the
threshold (in percentage points) is flagged (see flag_surges)."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import data, distributed
from core.errors import UserError
from core.runs import RunDir, open_run

CHUNK_ROWS = 4096  # rows read, scored and written at a time
FORMATS = (".csv", ".jsonl", ".parquet")
READ_FORMATS = (".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".parquet")
ALERT_WINDOW = 7  # trailing periods the surge rule compares with
ALERT_MIN_ROWS = 5  # periods with fewer rows are never flagged (one row is a 100% share)
OUTPUT_COLUMNS = ("row", "label", "confidence")


@dataclass
class Predictor:
    """A finished run ready to label texts: score(texts) -> (N, C) probabilities over label_names."""

    name: str
    kind: str  # prompt, classifier, prompt-learning
    label_names: list[str]
    score: Callable[[list[str]], np.ndarray]
    has_saliency: bool = False  # an encoder classifier, which core.attention.saliency can explain
    probabilities: bool = True  # False: an endpoint's generate mode, whose rows mark the label answered (NaN: none named)


def _check_finished(run: RunDir) -> dict:
    state = run.status.get("state")
    if state in ("queued", "running"):
        raise UserError(f"Run {run.name} is still {state}; wait for it to finish (or cancel it) before predicting with it.")
    if state != "succeeded":
        raise UserError(f"Run {run.name} is {state}, not finished; only a run that succeeded can label new data.")
    config = run.config
    if config.get("kind") not in ("prompt", "finetune", "continual-step"):
        raise UserError(f"{run.name} is a {config.get('kind', 'unknown')} run, which has no model to predict with.")
    return config


def _labels(config: dict, run: RunDir) -> list[str]:
    labels = [str(lab) for lab in config.get("labels") or []]
    if not labels:
        raise UserError(f"The run {run.name} does not record its labels, so it cannot label new data.")
    return labels


def _prompt_train(config: dict, run: RunDir) -> pd.DataFrame:
    """The training split a prompt run drew its demonstrations from, read again and checked against its fingerprint."""
    dataset = config.get("dataset") if isinstance(config.get("dataset"), dict) else {}
    if not config.get("shots"):
        return pd.DataFrame({"id": [], "text": [], "label": []})
    try:
        ds, split = data.load_split(str(dataset.get("train", "")), dataset.get("train_split") or "train")
        train = ds.splits[split]
    except UserError as e:
        raise UserError(
            f"The training data of {run.name} ({dataset.get('train', '?')}) cannot be read any more, so its "
            f"demonstrations cannot be rebuilt ({str(e).rstrip('.')})."
        ) from None
    if data.fingerprint(train) != dataset.get("train_sha256"):
        raise UserError(
            f"The training data of {run.name} ({dataset.get('train', '?')}) has changed since the run, so its "
            "demonstrations cannot be rebuilt."
        )
    return train


def _prompt_predictor(run: RunDir, config: dict) -> Predictor:
    from core import prompting

    names = {f.name for f in dataclasses.fields(prompting.PromptConfig)}
    prompt_config = prompting.PromptConfig(**{k: v for k, v in config.items() if k in names})
    mode = (run.metrics or {}).get("scoring_mode")
    if mode:  # an endpoint run: score the way it did, without probing the server again
        prompt_config = dataclasses.replace(prompt_config, scoring_mode=mode)
    labels, train = _labels(config, run), _prompt_train(config, run)
    return Predictor(
        run.name,
        "prompt",
        labels,
        lambda texts: prompting.score_texts(prompt_config, train, texts, labels),
        probabilities=mode != "generate",
    )


def _sharded(score: Callable[[list[str]], np.ndarray], n_labels: int) -> Callable[[list[str]], np.ndarray]:
    """Under torchrun every process scores every world-th text; the zero-filled tables summed give each the whole."""

    def run(texts: list[str]) -> np.ndarray:
        rank, world = distributed.shard()
        if world == 1:
            return score(texts)
        whole = np.zeros((len(texts), n_labels))
        if texts[rank::world]:
            whole[rank::world] = score(texts[rank::world])
        return distributed.all_sum(whole)

    return run


def _prompt_learning_predictor(run: RunDir, config: dict, model_dir: Path, device: str) -> Predictor:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core import models
    from core.training import prompt_learning
    from core.training.finetune import FinetuneConfig

    names = {f.name for f in dataclasses.fields(FinetuneConfig)}
    fconfig = FinetuneConfig(**{k: v for k, v in config.items() if k in names})
    labels = [str(lab) for lab in json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))]
    tokenizer = models.load_tokenizer(fconfig.model)
    lm = models._from_pretrained(AutoModelForCausalLM, models._converted(models.resolve(fconfig.model)), use_safetensors=True)
    with models.LOAD_LOCK:
        model = PeftModel.from_pretrained(lm.to(device), str(model_dir)).eval()
    prompted = prompt_learning.Prompted(fconfig, tokenizer, labels)
    soft = fconfig.method == "prompt-tuning"
    if not soft:  # lora-lm: merged once here, not per chunk as prompt_learning.predict would
        model = model.merge_and_unload().eval()

    def score(texts: list[str]) -> np.ndarray:
        import torch

        batch = max(8, fconfig.batch_size)
        with torch.no_grad():
            if soft:
                prompt = model.get_prompt_embedding_to_save(adapter_name="default").detach()
                return prompt_learning.score(
                    model.get_base_model(), prompted, texts, fconfig.max_length, batch, soft_prompt=prompt
                )
            return prompt_learning.score(model, prompted, texts, fconfig.max_length, batch)

    return Predictor(run.name, "prompt-learning", labels, _sharded(score, len(labels)))


def _classifier_predictor(run: RunDir, config: dict, model_dir: Path, device: str) -> Predictor:
    from core.training import base, finetune

    model, tokenizer = finetune.load_run_model(run.path, device, model_dir)
    labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    if hasattr(model, "set_attn_implementation"):  # loaded eager for attention views; sdpa is the faster kernel for inference
        try:
            model.set_attn_implementation("sdpa")
        except (ValueError, ImportError):
            pass
    max_length = int(config.get("max_length") or 128)
    batch = max(int(config.get("batch_size") or 32), 32)  # the evaluation batch finetune.train scored with

    def score(texts: list[str]) -> np.ndarray:
        return base.predict_probs(model, tokenizer, texts, batch, max_length)

    return Predictor(run.name, "classifier", labels, _sharded(score, len(labels)), has_saliency=True)


def load_predictor(run_ref: str | Path, device: str = "auto") -> Predictor:
    """A finished run, ready to label texts; one sentence (UserError) for an unknown, unfinished or model-less run."""
    from core import models

    run = open_run(run_ref)
    config = _check_finished(run)
    device = models.choose_device(device)
    if config["kind"] == "prompt":
        return _prompt_predictor(run, config)
    if config["kind"] == "continual-step":
        if config.get("strategy") == "lora-per-task":
            raise UserError(
                f"{run.name} scores each task with its own adapter, so it has no single model to label new data with."
            )
        model_dir = Path(str(config.get("model_path") or ""))
    else:
        model_dir = run.path / "model"
    if not (model_dir / "labels.json").is_file():
        raise UserError(f"The model folder of run {run.name} is missing (deleted?), so it cannot label new data.")
    if (model_dir / "prompt_learning.json").exists():
        return _prompt_learning_predictor(run, config, model_dir, device)
    predictor = _classifier_predictor(run, config, model_dir, device)
    if config["kind"] == "continual-step":
        known = [c.removeprefix("prob_") for c in run.predictions().columns if c.startswith("prob_")]
        if known != predictor.label_names:
            raise UserError(f"{run.name} has one head per task, so it has no single label set to label new data with.")
    return predictor


def finished_runs(root: Path | None = None) -> pd.DataFrame:
    """Runs that can predict (succeeded prompt, fine-tune and continual step runs), newest first."""
    from core.runs import RunRegistry

    table = RunRegistry(root).list()
    if table.empty:
        return table
    table = table[(table["state"] == "succeeded") & table["kind"].isin(["prompt", "finetune", "continual-step"])]
    return table.sort_values("created", ascending=False).reset_index(drop=True)


# ---- reading the input in chunks ---------------------------------------------------------------------------------


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in READ_FORMATS:
        raise UserError(f"{path.name}: unsupported file type '{suffix}'; use CSV, TSV, JSONL or Parquet.")
    return suffix


def count_rows(path: str | Path) -> int | None:
    """Rows of the file, for the ETA: parquet's metadata, else its line count (less a CSV header; an upper bound when
    texts hold line breaks)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception:
            return None
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"
    return max(0, lines - (suffix not in (".jsonl", ".ndjson")))


def read_chunks(path: str | Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The file's rows, chunk_rows at a time, as DataFrames (CSV/TSV cells as strings); one sentence when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"There is no file at {path}.")
    suffix = _suffix(path)
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
            return
        if suffix in (".jsonl", ".ndjson"):
            yield from pd.read_json(path, lines=True, dtype=False, chunksize=chunk_rows, encoding="utf-8")
            return
        with open(path, encoding="utf-8-sig") as f:
            header = f.readline()
        yield from pd.read_csv(
            path,
            sep=data.delimiter(header, suffix),
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            chunksize=chunk_rows,
            encoding="utf-8-sig",
            on_bad_lines="error",
        )
    except UserError:
        raise
    except UnicodeDecodeError:
        raise UserError(f"{path.name} is not UTF-8 text; save it as UTF-8 and try again.") from None
    except Exception as e:  # pandas/pyarrow raise many types for malformed files
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"{path.name} could not be read as {suffix.lstrip('.')}: {first}") from None


def clean_texts(values: pd.Series) -> pd.Series:
    """Texts as core.data.clean leaves them (line ends normalised, stripped), so a run's own split scores the same."""
    return (
        values.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
        .str.replace("\r\n", "\n")
        .str.replace("\r", "\n")
        .str.strip()
    )


# ---- writing the output atomically -------------------------------------------------------------------------------


class AtomicWriter:
    """Chunks appended to a temp file beside the target, renamed over it by commit(); discard() leaves the target as it was."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.suffix = self.out.suffix.lower()
        if self.suffix not in FORMATS:
            raise UserError(f"--out must end in {', '.join(FORMATS)} (got '{self.out.name}').")
        if not self.out.parent.is_dir():
            raise UserError(f"The folder {self.out.parent} does not exist; create it or write elsewhere.")
        try:
            fd, self.tmp = tempfile.mkstemp(dir=self.out.parent, prefix=f".{self.out.name}.", suffix=".tmp")
        except OSError as e:
            raise UserError(f"Could not write in {self.out.parent}: {e.strerror}.") from None
        os.close(fd)
        self.file = None if self.suffix == ".parquet" else open(self.tmp, "w", encoding="utf-8", newline="")
        self.parquet = None
        self.first = True

    def write(self, frame: pd.DataFrame) -> None:
        try:
            if self.suffix == ".csv":
                from core.comparison.report import export_csv

                text = export_csv(frame)  # formula-like cells neutralised, as every CSV handed to people
                self.file.write(text if self.first else text.split("\n", 1)[1])
            elif self.suffix == ".jsonl":
                text = frame.to_json(orient="records", lines=True, force_ascii=False, date_format="iso") if len(frame) else ""
                self.file.write(text if not text or text.endswith("\n") else text + "\n")
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                if self.parquet is None:
                    self.schema = pa.Schema.from_pandas(frame, preserve_index=False)
                    self.schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in self.schema])
                    self.parquet = pq.ParquetWriter(self.tmp, self.schema)
                self.parquet.write_table(pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False))
        except OSError as e:
            self.discard()
            raise UserError(f"Could not write {self.out.name}: {e.strerror}.") from None
        self.first = False

    def _close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.parquet is not None:
            self.parquet.close()

    def commit(self) -> None:
        self._close()
        os.replace(self.tmp, self.out)

    def discard(self) -> None:
        try:
            self._close()
        except Exception:
            pass
        Path(self.tmp).unlink(missing_ok=True)


# ---- predicting a file -------------------------------------------------------------------------------------------


@dataclass
class PredictSummary:
    """What predict did: rows labelled, empty texts skipped, time, label counts, and counts per day given a time column."""

    rows: int = 0
    skipped: int = 0
    skipped_rows: list[int] = field(default_factory=list)  # the first few skipped rows (0-based data rows)
    seconds: float = 0.0
    label_counts: dict[str, int] = field(default_factory=dict)
    daily: pd.DataFrame | None = None  # day, label, count
    bad_times: int = 0  # rows whose time could not be read (left out of the daily counts)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "skipped_empty": self.skipped,
            "skipped_rows_first": self.skipped_rows,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 2),
            "label_counts": self.label_counts,
            "bad_times": self.bad_times,
        }


def labels_of(probs: np.ndarray, label_names: list[str]) -> list[str]:
    """The most probable label of each row; endpoints.UNPARSED for a row without scores (a generated answer that named
    no label), never a label it did not give."""
    from core.endpoints import UNPARSED

    known = ~np.isnan(probs).all(axis=1)
    best = np.where(np.isnan(probs), -np.inf, probs).argmax(axis=1)
    return [label_names[i] if k else UNPARSED for i, k in zip(best, known, strict=True)]


def output_frame(
    chunk: pd.DataFrame, rows: np.ndarray, probs: np.ndarray, label_names: list[str], probabilities: bool = True
) -> pd.DataFrame:
    """row, the input's columns (a name the output uses gets an input_ prefix), label, confidence, prob_<label> (empty
    when the run gives no probabilities)."""
    taken = set(OUTPUT_COLUMNS) | {f"prob_{lab}" for lab in label_names}
    out = pd.DataFrame({"row": rows})
    for c in chunk.columns:
        out[f"input_{c}" if str(c) in taken else str(c)] = chunk[c].to_numpy()
    out["label"] = labels_of(probs, label_names)
    shown = probs if probabilities else np.full(probs.shape, np.nan)
    out["confidence"] = np.nanmax(np.where(np.isnan(shown), -np.inf, shown), axis=1).round(6) if len(probs) else []
    out["confidence"] = out["confidence"].replace(-np.inf, np.nan)
    for j, lab in enumerate(label_names):
        out[f"prob_{lab}"] = shown[:, j].round(6)
    return out


def _check_label_column(chunk: pd.DataFrame, text_col: str, label_names: list[str], name: str) -> None:
    """A label column whose labels the run never saw: the file is not what the run was trained for."""
    candidates = [c for c in chunk.columns if str(c).lower() in data.LABEL_COLUMNS and c != text_col]
    if not candidates:
        return
    values = chunk[candidates[0]].dropna().astype(str).str.strip()
    if len(values) and values.str.len().max() > data.MAX_LABEL_CHARS:  # a column of texts that happens to be called 'output'
        return
    unseen = sorted(set(values[values != ""]) - set(label_names))
    if unseen:
        raise UserError(
            f"Column '{candidates[0]}' of {name} holds labels the run never saw ({', '.join(unseen[:5])}); "
            "drop that column or use a run trained on those labels."
        )


def predict_file(
    predictor: Predictor,
    src: str | Path,
    out: str | Path | None,
    text_col: str | None = None,
    time_col: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int, int | None], None] | None = None,
) -> PredictSummary:
    """Label every non-empty text of src into out (written atomically; None under torchrun ranks other than 0)."""
    src = Path(src)
    if out is not None and Path(out).resolve() == src.resolve():
        raise UserError("--out is the input file; write the predictions to another file.")
    chunks = read_chunks(src, chunk_rows)
    try:
        first = next(chunks)
    except StopIteration:
        raise UserError(f"{src.name} has no rows.") from None
    columns = [str(c) for c in first.columns]
    first.columns = columns
    text_col = data.detect_column(columns, data.TEXT_COLUMNS, "text", text_col)
    if time_col and time_col not in columns:
        raise UserError(f"There is no time column '{time_col}'; the columns are: {', '.join(columns)}.")
    total = count_rows(src)
    writer = AtomicWriter(out) if out is not None else None
    summary, started, done, daily = PredictSummary(), time.perf_counter(), 0, []
    counts = dict.fromkeys(predictor.label_names, 0)

    def all_chunks():
        yield first
        yield from chunks

    try:
        for chunk in all_chunks():
            chunk.columns = [str(c) for c in chunk.columns]
            if text_col not in chunk.columns:
                chunk[text_col] = None
            _check_label_column(chunk, text_col, predictor.label_names, src.name)
            texts = clean_texts(chunk[text_col])
            keep = (texts != "").to_numpy()
            rows = np.arange(done, done + len(chunk))
            if (~keep).any():
                summary.skipped += int((~keep).sum())
                summary.skipped_rows += rows[~keep][: max(0, 10 - len(summary.skipped_rows))].tolist()
            kept = chunk[keep]
            probs = predictor.score(texts[keep].tolist()) if keep.any() else np.zeros((0, len(predictor.label_names)))
            frame = output_frame(kept, rows[keep], probs, predictor.label_names, predictor.probabilities)
            for lab, n in frame["label"].value_counts().items():
                counts[lab] = counts.get(lab, 0) + int(n)  # (unparsed) too, for a generated answer
            if time_col:
                day, bad = day_counts(kept[time_col], frame["label"])
                daily.append(day)
                summary.bad_times += bad
            if writer is not None:
                writer.write(frame)
            done += len(chunk)
            summary.rows += int(keep.sum())
            if progress:
                progress(done, max(total or 0, done))
        if summary.rows == 0:
            raise UserError(f"Every text in column '{text_col}' of {src.name} is empty, so there is nothing to label.")
        if writer is not None:
            writer.commit()
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    summary.seconds = time.perf_counter() - started
    summary.label_counts = counts
    if time_col:
        summary.daily = (
            pd.concat(daily).groupby(["day", "label"], as_index=False)["count"].sum()
            if daily
            else pd.DataFrame(columns=["day", "label", "count"])
        )
    return summary


# ---- label share over time and the surge alert -------------------------------------------------------------------


def day_counts(times: pd.Series, labels: pd.Series) -> tuple[pd.DataFrame, int]:
    """(day, label, count) of one chunk, and how many rows had no readable time."""
    when = pd.to_datetime(times.reset_index(drop=True), errors="coerce", utc=True, format="mixed")
    ok = when.notna().to_numpy()
    frame = pd.DataFrame({"day": when[ok].dt.tz_localize(None).dt.floor("D").to_numpy(), "label": labels.to_numpy()[ok]})
    return frame.groupby(["day", "label"], as_index=False).size().rename(columns={"size": "count"}), int((~ok).sum())


def choose_period(daily: pd.DataFrame) -> str:
    """'D' (per day) for a span up to 90 days, else 'W' (per week)."""
    if daily is None or daily.empty:
        return "D"
    span = (daily["day"].max() - daily["day"].min()).days
    return "D" if span <= 90 else "W"


def label_share(daily: pd.DataFrame, label_names: list[str], period: str = "D") -> pd.DataFrame:
    """period (start), label, count, total, share (0-1) for every period from the first to the last, every label."""
    if daily is None or daily.empty:
        return pd.DataFrame(columns=["period", "label", "count", "total", "share"])
    key = daily["day"] if period == "D" else daily["day"].dt.to_period("W-SUN").dt.start_time
    table = daily.assign(period=key).pivot_table(index="period", columns="label", values="count", aggfunc="sum", fill_value=0)
    full = pd.date_range(table.index.min(), table.index.max(), freq="D" if period == "D" else "7D")
    table = table.reindex(index=full, columns=label_names, fill_value=0)
    table.index.name = "period"
    total = table.sum(axis=1)
    long = table.stack().rename("count").reset_index()
    long["total"] = long["period"].map(total)
    long["share"] = np.where(long["total"] > 0, long["count"] / long["total"].where(long["total"] > 0, 1), np.nan)
    return long


def flag_surges(
    share: pd.DataFrame, label: str, threshold_points: float, window: int = ALERT_WINDOW, min_rows: int = ALERT_MIN_ROWS
) -> pd.DataFrame:
    """Periods whose share of `label` exceeds the mean share of the `window` periods before it (those with rows) by more
    than threshold_points percentage points, among periods with at least min_rows rows; the first period, having no
    trailing mean, is never flagged. Columns: period, share, trailing_mean, jump (points), total, flagged."""
    one = share[share["label"] == label].sort_values("period").reset_index(drop=True)
    if one.empty:
        return pd.DataFrame(columns=["period", "share", "trailing_mean", "jump", "total", "flagged"])
    trailing = one["share"].shift(1).rolling(window, min_periods=1).mean()
    out = pd.DataFrame(
        {
            "period": one["period"],
            "share": one["share"],
            "trailing_mean": trailing,
            "jump": (one["share"] - trailing) * 100,
            "total": one["total"],
        }
    )
    out["flagged"] = (out["jump"] > threshold_points) & (out["total"] >= min_rows)
    return out


# ---- a background job (the Apply page) ---------------------------------------------------------------------------

JOB_OUTPUT = "labelled.csv"  # what a predict job writes into its folder
UPLOADS = ".uploads"  # folder of the runs root holding the files the Apply page was given


def start_job(
    raw: bytes, filename: str, run_name: str, text_col: str | None = None, time_col: str | None = None, root: Path | None = None
) -> Path:
    """Save an uploaded file under the runs root and start `python -m core predict --config JOB/job.json --job JOB` on it;
    returns the job's folder (its status.json, metrics.json, shares.csv and labelled.csv)."""
    from core import jobs, runs

    root = Path(root or runs.runs_root())
    suffix = _suffix(Path(filename))
    name = runs.new_run_name("predict", run_name)
    staged = root / UPLOADS / f"{name}{suffix}"
    try:
        staged.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=staged.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, staged)
    except OSError as e:
        raise UserError(f"Could not save the uploaded file in {staged.parent}: {e.strerror}.") from None
    settings = {
        "run": str(root / run_name),
        "file": str(staged),
        "out": str(root / name / JOB_OUTPUT),
        "text-col": text_col,
        "time-col": time_col,
    }
    try:
        jobs.launch(["predict", "--job", name], root / name, settings=settings)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return root / name
