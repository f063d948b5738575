"""The run-directory contract (config/status/history/metrics/predictions) and the run registry over it."""

from __future__ import annotations

import csv
import glob
import json
import os
import re
import shlex
import shutil
import sqlite3
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from core.errors import UserError

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = ("succeeded", "failed", "cancelled")
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")  # \Z, not $: "$" also matches before a trailing newline


def runs_root() -> Path:
    """Where runs live: PFT_RUNS_DIR, else ./runs."""
    return Path(os.environ.get("PFT_RUNS_DIR", "runs")).resolve()


def write_atomic(path: Path, text: str) -> None:
    """Write text to path via a temp file and rename, so readers never see a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    """Atomic JSON write (indent 2, NaN refused)."""
    write_atomic(path, json.dumps(obj, indent=2, allow_nan=False, default=str) + "\n")


def read_json(path: Path) -> dict | None:
    """A JSON file's object, or None when missing or corrupt."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
        return obj if isinstance(obj, dict) else None
    except (OSError, ValueError):
        return None


def check_run_name(name: str) -> str:
    """A run name that is safe as one folder name (no '..', separators, NUL, or leading dot)."""
    if not isinstance(name, str) or not RUN_NAME.match(name) or ".." in name:
        raise UserError(
            f"'{str(name)[:60]}' is not a valid run name: "
            "use up to 100 letters, digits, '.', '_' or '-', starting with a letter or digit."
        )
    return name


def resolve_out(out: str | Path, root: Path | None = None) -> Path:
    """The run directory for --out: a plain name goes under the runs root; a path must lie inside it."""
    root = (root or runs_root()).resolve()
    out_s = str(out)
    if "\x00" in out_s:
        raise UserError("The output path contains a NUL byte.")
    p = Path(out_s)
    if len(p.parts) == 1:
        return not_a_link(root / check_run_name(out_s))
    if not p.is_absolute() and len(p.parts) == 2 and p.parts[0] == "runs":  # the documented `--out runs/NAME`
        return not_a_link(root / check_run_name(p.parts[1]))
    resolved = (Path.cwd() / p.parent).resolve() / p.name  # the folder resolved, the name itself not followed
    if resolved.parent != root:
        raise UserError(f"Runs are saved directly inside {root}; '{out_s}' is outside it (give a plain run name instead).")
    return not_a_link(root / check_run_name(resolved.name))


def not_a_link(path: Path) -> Path:
    """The path, refused when it is a symbolic link (dangling or not): nothing is ever written through one."""
    if path.is_symlink():
        raise UserError(
            f"'{path.name}' in the runs folder is a symbolic link, and nothing is written through links; "
            "remove it or choose another name."
        )
    return path


def new_run_name(kind: str, detail: str) -> str:
    """A readable unique run name such as prompt-8shot-20261128-153001."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{kind}-{detail}").strip("-")[:70]
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"


def command_line(argv: list[str]) -> str:
    """The shell command that reproduces a CLI invocation."""
    return "python -m core " + " ".join(shlex.quote(a) for a in argv)


@dataclass
class RunRecord:
    """What a run records in config.json beside its settings: what ran, on what, from which command. These keys set
    nothing, so a config.json used as --config skips them (RECORD_KEYS); a field left None is not written."""

    kind: str  # prompt, finetune, continual, predict
    dataset: dict | None = None  # name, train/eval sources and splits, their sha256 fingerprints
    labels: list | None = None
    command: str | None = None  # the shell command that reproduces the run
    method: str | None = None  # where the settings have no method of their own (prompting's, continual's strategy)
    n_train_examples: int | None = None
    dev_set: str | None = None
    n_dev_examples: int | None = None
    world_size: int | None = None
    grid: list | None = None  # the runs of a prompt grid
    auto: dict | None = None  # prompting's --calibrate/--template auto choice
    endpoint: dict | None = None
    tasks: list | None = None  # continual
    label_space: str | None = None  # continual

    def config(self, settings: dict) -> dict:
        """config.json: the kind, the settings, then the record (which wins where a name is in both)."""
        record = {k: v for k, v in asdict(self).items() if v is not None}
        return {"kind": self.kind, **settings, **record}


RECORD_KEYS = frozenset(f.name for f in fields(RunRecord))


@dataclass
class RunDir:
    """One run directory and its files, as the contract in DESIGN.md names them."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def create(self, config: dict) -> RunDir:
        """Make the folder (refusing to overwrite another run) and write config.json and a queued status."""
        made = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not (reserved_for_this_process(self.path) and not (self.path / "config.json").exists()):
                self.path.mkdir()
                made = True
        except FileExistsError:
            raise UserError(f"A run named '{self.name}' already exists; choose another name.") from None
        except OSError as e:
            raise UserError(f"Could not create the run folder {self.path}: {e.strerror}.") from None
        try:
            self.write("config.json", config)
            self.set_status("queued")
        except UserError:
            if made:  # no half-made run left behind (a folder reserved by jobs.launch keeps its log for the error)
                shutil.rmtree(self.path, ignore_errors=True)
            raise
        return self

    def write(self, filename: str, obj) -> None:
        """Write one JSON file of the run atomically."""
        try:
            write_json(self.path / filename, obj)
        except OSError as e:
            raise UserError(f"Could not save {filename} in {self.path}: {e.strerror}.") from None

    def read(self, filename: str) -> dict | None:
        return read_json(self.path / filename)

    @property
    def config(self) -> dict:
        return self.read("config.json") or {}

    @property
    def status(self) -> dict:
        return self.read("status.json") or {"state": "broken", "error": "status.json is missing or corrupt"}

    @property
    def metrics(self) -> dict | None:
        return self.read("metrics.json")

    def set_status(self, state: str, **fields) -> dict:
        """Update status.json (state, timestamps, progress, error) atomically."""
        assert state in STATES, state
        status = self.read("status.json") or {"created": time.time()}
        status.update(fields, state=state, updated=time.time())
        if state == "running":
            status.setdefault("started", time.time())
        if state in FINAL_STATES:
            status["finished"] = time.time()
        try:
            self.write("status.json", status)
        except UserError:
            if state not in FINAL_STATES:
                raise
            try:  # a full disk has no room for a temp file: a run's final state matters more than an atomic write
                (self.path / "status.json").write_text(json.dumps(status, indent=2, default=str) + "\n", encoding="utf-8")
            except OSError:
                raise UserError(f"Could not save status.json in {self.path}: the disk is full or read-only.") from None
        return status

    def append_history(self, record: dict) -> None:
        """Append one line to history.jsonl (appends of one short line are atomic enough for readers that skip bad lines)."""
        with open(self.path / "history.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=float) + "\n")

    def history(self) -> pd.DataFrame:
        """history.jsonl as a DataFrame (a partly written last line is skipped)."""
        rows = []
        try:
            for line in (self.path / "history.jsonl").read_text(encoding="utf-8").splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
        except OSError:
            pass
        return pd.DataFrame(rows)

    def write_predictions(self, df: pd.DataFrame) -> None:
        """predictions.csv: id, text, label, pred, confidence, prob_<label>... (atomic)."""
        try:
            # text cells always quoted: pandas 3 leaves a lone \r unquoted, and readers end the row there
            write_atomic(self.path / "predictions.csv", df.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC))
        except OSError as e:  # disk full or read-only: one sentence, like write()
            raise UserError(f"Could not save predictions.csv in {self.path}: {e.strerror}.") from None

    def predictions(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "predictions.csv", dtype={"id": str, "label": str, "pred": str}, keep_default_na=False)


SEARCH_FILE = "search.json"  # what a search (core/search.py) tunes: its folder holds it from the start
RESERVATION = ".reserved"  # written by jobs.launch into the folder it reserves for the job it starts


def reservation(path: Path) -> dict:
    """The reservation jobs.launch left in a run folder ({"token", "pid"}), or {}."""
    return read_json(Path(path) / RESERVATION) or {}


def reserved_for_this_process(path: Path) -> bool:
    """True when jobs.launch reserved this folder for the job now running (token passed in PFT_RUN_TOKEN)."""
    token = os.environ.get("PFT_RUN_TOKEN")
    return bool(token) and reservation(path).get("token") == token


def open_run(path_or_name: str | Path) -> RunDir:
    """A RunDir for a run folder path, a run name under the runs root, or runs/NAME (as --out takes it)."""
    p = Path(path_or_name)
    if not p.is_dir() and len(p.parts) == 1:
        p = runs_root() / check_run_name(str(path_or_name))
    elif not p.is_dir() and not p.is_absolute() and len(p.parts) == 2 and p.parts[0] == "runs":
        p = runs_root() / check_run_name(p.parts[1])
    if not p.is_dir():
        raise UserError(f"There is no run folder at {path_or_name}.")
    return RunDir(p.resolve())


def reached(status: dict, kind: str) -> str:
    """How far a run got, from its status: 'step 40 of 100' (fine-tuning, a continual run's current task), 'trial 3 of
    20' (a search) or 'row 24 of 60' (prompting, labelling); '' if unknown."""
    if not status.get("total"):
        return ""
    unit = {"finetune": "step", "continual": "step", "search": "trial"}.get(kind, "row")
    return f"{unit} {status.get('done') or 0} of {status['total']}"


def parts_phrase(name: str, steps: list[str], trials: list[str], joiner: str) -> str:
    """The runs that go with run NAME, as the Runs page and `runs --prune` say it: ' and its step runs A.step1, A.step2'
    and/or ' and its 3 trial runs NAME.trial*' (joiner: 'and' or 'with'); '' when there are none."""
    out = f" {joiner} its step runs {', '.join(steps)}" if steps else ""
    return out + (f" {joiner} its {len(trials)} trial runs {name}.trial*" if trials else "")


def state_label(state: str, path: str | Path, kind: str) -> str:
    """A state for people: a cancelled or failed run says how far it got, e.g. 'cancelled at step 40 of 100'."""
    if state not in ("cancelled", "failed"):
        return state
    where = reached(RunDir(Path(path)).status, kind)
    return f"{state} at {where}" if where else state


def peak_memory_mb() -> float | None:
    """Peak resident memory of this process so far, in MB (None where the system does not report it)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 1024, 1)


def finish_with_metrics(run: RunDir, metrics: dict, predictions: pd.DataFrame) -> None:
    """Write predictions and metrics (with the process's peak memory unless given), then mark the run succeeded (in that
    order, so success means complete)."""
    run.write_predictions(predictions)
    run.write("metrics.json", {"peak_memory_mb": peak_memory_mb(), **metrics})
    run.set_status("succeeded", progress=1.0)


class RunRegistry:
    """SQLite index over run directories (runs/index.sqlite); the directories are the truth, the index is rebuildable."""

    COLUMNS = ("name", "kind", "model", "method", "dataset", "eval_sha256", "state", "accuracy", "macro_f1", "created", "path")
    VERSION = 2  # PRAGMA user_version of the index; an index of another version or schema is rebuilt from the folders
    LOCK_WAIT_S = 2.0  # how long to wait for a locked index before reading the folders directly

    def __init__(self, root: Path | None = None):
        self.root = (root or runs_root()).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = self.root / "index.sqlite"
        for suffix in ("", "-wal", "-shm"):  # sqlite writes through links: the index and its journals must be files of ours
            not_a_link(Path(f"{self.db}{suffix}"))
        try:
            self._create_table()
        except sqlite3.OperationalError:  # locked by another process: list() reads the folders until it is free
            pass
        except sqlite3.DatabaseError:  # a corrupt index is only a cache of the run folders: start it afresh
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.db}{suffix}").unlink(missing_ok=True)
            self._create_table()

    def _create_table(self) -> None:
        with closing(self._connect()) as con, con:
            columns = tuple(row[1] for row in con.execute("PRAGMA table_info(runs)"))
            if columns and (columns != self.COLUMNS or con.execute("PRAGMA user_version").fetchone()[0] != self.VERSION):
                con.execute("DROP TABLE runs")  # written by another version of this app: sync() fills it again
            con.execute(
                "CREATE TABLE IF NOT EXISTS runs (name TEXT PRIMARY KEY, kind TEXT, model TEXT, method TEXT, dataset TEXT,"
                " eval_sha256 TEXT, state TEXT, accuracy REAL, macro_f1 REAL, created REAL, path TEXT)"
            )
            con.execute(f"PRAGMA user_version = {self.VERSION}")

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.db, timeout=self.LOCK_WAIT_S)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def _row(self, run: RunDir) -> tuple:
        try:
            return self._read_row(run)
        except Exception:  # any unreadable run is listed as broken rather than breaking the list
            return (run.name, "?", "?", "", "?", "", "broken", None, None, _mtime(run.path), str(run.path))

    def _read_row(self, run: RunDir) -> tuple:
        c, s, m = run.config, run.status, run.metrics or {}
        if not c and (run.path / SEARCH_FILE).is_file():  # a search before its result run writes config.json: what it tunes
            c = {"kind": "search", "method": (read_json(run.path / SEARCH_FILE) or {}).get("method", "")}
        if not isinstance(m.get("accuracy", 0.0), (int, float)) or not isinstance(m.get("macro_f1", 0.0), (int, float)):
            m, s = {}, {**s, "state": "broken"}
        if not c and reservation(run.path) and s.get("state") in STATES:
            pass  # a job started by jobs.launch that has not written its config (yet, or ever: it failed first)
        elif not c:
            s = {"state": "broken", "created": run.path.stat().st_mtime}
        elif s.get("state") == "succeeded" and not m:
            s = {**s, "state": "broken"}
        return (
            run.name,
            c.get("kind", "?"),
            c.get("model", "?"),
            c.get("method", c.get("selection", "")),
            c.get("dataset", {}).get("name", "?") if isinstance(c.get("dataset"), dict) else "?",
            eval_split(c),
            s.get("state", "broken"),
            m.get("accuracy"),
            m.get("macro_f1"),
            s.get("created", run.path.stat().st_mtime),
            str(run.path),
        )

    def rebuild(self) -> None:
        """Throw the index away and rebuild it from the run directories (after a crash or a corrupt index)."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db}{suffix}").unlink(missing_ok=True)
        self.__init__(self.root)
        self.sync()

    def search(self, text: str = "", kind: str | None = None, state: str | None = None) -> pd.DataFrame:
        """Runs whose name, model, method or dataset contains text (case-insensitive), optionally of one kind/state."""
        df = self.list(kind, state)
        if text:
            hay = df[["name", "model", "method", "dataset"]].astype(str).agg(" ".join, axis=1).str.lower()
            df = df[hay.str.contains(text.lower(), regex=False)]
        return df.reset_index(drop=True)

    def _rows(self) -> list[tuple]:
        return [self._row(RunDir(p)) for p in sorted(self.root.iterdir()) if p.is_dir() and RUN_NAME.match(p.name)]

    def sync(self) -> None:
        """Re-read every run directory into the index and drop entries whose directory is gone."""
        rows = self._rows()
        try:
            self._create_table()  # another process may have replaced the index since
            with closing(self._connect()) as con, con:
                con.execute("DELETE FROM runs")
                con.executemany(f"INSERT INTO runs VALUES ({','.join('?' * len(self.COLUMNS))})", rows)
        except sqlite3.OperationalError:  # locked past LOCK_WAIT_S: the index stays stale until the next sync
            pass

    def list(self, kind: str | None = None, state: str | None = None) -> pd.DataFrame:
        """All runs (index refreshed from the directories first), newest first; read from the folders if the index is locked."""
        self.sync()
        try:
            with closing(self._connect()) as con:
                df = pd.read_sql_query("SELECT * FROM runs ORDER BY created DESC", con)
        except (sqlite3.OperationalError, pd.errors.DatabaseError):
            df = pd.DataFrame(self._rows(), columns=list(self.COLUMNS)).sort_values("created", ascending=False)
        if kind:
            df = df[df["kind"] == kind]
        if state:
            df = df[df["state"] == state]
        return df.reset_index(drop=True)

    def rename(self, name: str, new_name: str) -> None:
        """Rename a finished run's folder, and a continual run's step runs NAME.stepK to NEW.stepK with it (each step's
        config then names its new continual run, so Compare and a later delete still find them)."""
        src, dst = self.root / check_run_name(name), self.root / check_run_name(new_name)
        if not src.is_dir():
            raise UserError(f"There is no run named '{name}'.")
        if RunDir(src).status.get("state") in ("queued", "running"):
            raise UserError(f"Run '{name}' is still {RunDir(src).status['state']}; rename it when it has finished.")
        steps = {step: new_name + step[len(name) :] for step in self.step_runs(name)}
        for taken in [new_name, *steps.values()]:
            if os.path.lexists(self.root / check_run_name(taken)):  # a dangling link too: rename would fail on it
                raise UserError(f"A run named '{taken}' already exists.")
        for old, new in steps.items():
            os.rename(self.root / old, self.root / new)
            RunDir(self.root / new).write("config.json", {**RunDir(self.root / new).config, "continual_run": new_name})
        os.rename(src, dst)
        self.sync()

    def step_runs(self, name: str) -> list[str]:
        """The runs NAME.stepK that a continual run NAME made of its steps (their config names it as continual_run)."""
        return sorted(
            p.name
            for p in self.root.glob(f"{glob.escape(name)}.step*")
            if p.is_dir() and RunDir(p).config.get("continual_run") == name
        )

    def trial_runs(self, name: str) -> list[str]:
        """The runs NAME.trialK that a search NAME (a folder with search.json) made of its trials."""
        if not (self.root / name / SEARCH_FILE).is_file():
            return []
        trial = re.compile(rf"{re.escape(name)}\.trial\d+")
        return sorted(
            (p.name for p in self.root.glob(f"{glob.escape(name)}.trial*") if p.is_dir() and trial.fullmatch(p.name)),
            key=lambda n: int(n.rsplit("trial", 1)[1]),
        )

    def delete(self, name: str) -> None:
        """Delete a finished run's folder, with a continual run's step runs and a search's trial runs (each moved aside
        first, so a crash never leaves half a run)."""
        src = self.root / check_run_name(name)
        if not src.is_dir():
            raise UserError(f"There is no run named '{name}'.")
        parts = [*self.step_runs(name), *self.trial_runs(name)]
        for run in [name, *parts]:
            if (state := RunDir(self.root / run).status.get("state")) in ("queued", "running"):
                raise UserError(f"Run '{run}' is still {state}; cancel it before deleting {'it' if run == name else name}.")
        for doomed in [name, *parts]:
            if (self.root / doomed).is_symlink():  # a linked run: the link goes, never what it points to
                (self.root / doomed).unlink()
                continue
            trash = self.root / f".deleted-{doomed}-{time.time_ns()}"
            os.rename(self.root / doomed, trash)
            shutil.rmtree(trash, ignore_errors=True)
            shutil.rmtree(checkpoint_dir(self.root / doomed), ignore_errors=True)
        self.sync()


def eval_split(config: dict) -> str:
    """The fingerprint of the split a run was scored on (config.json's dataset.eval_sha256); '' when it records none."""
    dataset = config.get("dataset") if isinstance(config, dict) else None
    return str(dataset.get("eval_sha256") or "") if isinstance(dataset, dict) else ""


def evaluated_on(config: dict, fingerprints) -> bool:
    """Whether a run's config.json records an evaluation split among fingerprints (a dataset's data.fingerprint per split)."""
    return eval_split(config) in set(fingerprints)


def of_dataset(runs: pd.DataFrame, fingerprints, keep_unknown: bool = False) -> pd.DataFrame:
    """The rows of a RunRegistry listing whose runs were evaluated on one of a dataset's splits (see evaluated_on);
    keep_unknown also keeps runs that record no split (broken, or not started yet)."""
    keep = runs["eval_sha256"].isin(set(fingerprints)) | (keep_unknown & runs["eval_sha256"].fillna("").eq(""))
    return runs[keep].reset_index(drop=True)


def comparable(runs: pd.DataFrame, eval_sha256: str) -> pd.DataFrame:
    """The finished runs of a RunRegistry listing scored on this evaluation split: the only runs Compare (the page and
    `python -m core compare`) joins with a run on it, and those it charts for data efficiency."""
    keep = runs["state"].eq("succeeded") & runs["eval_sha256"].eq(eval_sha256) & bool(eval_sha256)
    return runs[keep].reset_index(drop=True)


def check_comparable(configs: dict[str, dict]) -> str:
    """The evaluation split that runs {name: config.json} share (the rule comparable() applies to a listing); refused in
    one sentence when one records none or they were scored on different splits."""
    splits = {name: eval_split(config) for name, config in configs.items()}
    blank = next((name for name, sha in splits.items() if not sha), None)
    if blank:
        raise UserError(
            f"Run '{blank}' does not record the fingerprint of its evaluation split (dataset.eval_sha256), "
            "so it cannot be compared."
        )
    first = next(iter(splits))
    other = next((name for name, sha in splits.items() if sha != splits[first]), None)
    if other:
        raise UserError(
            f"These runs were evaluated on different splits ('{first}' on {splits[first][:8]}, '{other}' on "
            f"{splits[other][:8]}); compare runs of one evaluation split only."
        )
    return splits[first]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def checkpoint_dir(run_path: Path) -> Path:
    """Hidden sibling folder where a fine-tuning run keeps its best checkpoint while training (the same on every rank)."""
    return Path(run_path).parent / f".ckpt-{Path(run_path).name}"
