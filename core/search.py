"""Hyperparameter search with Optuna: every trial is an ordinary run (`python -m core finetune|prompt` as a subprocess,
named NAME.trialK) trained on 80% of the training rows and scored on the other 20% (stratified, seeded: the dev split;
the evaluation split is never seen by a trial). TPE (seeded) proposes settings from the method's SEARCH_SPACE; the median
pruner stops a fine-tune whose dev macro-F1 curve (the history.jsonl lines the page's live curve draws) falls below the
median of earlier trials at the same step. The study lives in runs/NAME/study.db (SQLite; or --storage URL, shared by
several processes or machines), so a search resumes where it stopped. The best trial's settings are then re-trained
on all training rows and evaluated on the evaluation split as the run NAME, whose metrics.json records the search's
cost (search_trials, search_seconds)."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.errors import UserError
from core.progress import Reporter
from core.runs import RESERVATION, RunDir, read_json, reserved_for_this_process, resolve_out, write_atomic, write_json

DEV_SHARE = 0.2  # of the training rows, stratified and seeded: what every trial is scored on
EVALS_PER_EPOCH = 2  # dev evaluations per epoch in a fine-tune trial: the points the pruner compares
POLL_SECONDS = 0.5
STUDY_FILE = "study.db"
CODE_ROOT = Path(__file__).resolve().parent.parent  # where `python -m core` runs a trial (its paths are all absolute)
BACKENDS = ("optuna", "ray")


class TrialFailed(Exception):
    """A trial's run ended without metrics (its process failed): the trial is FAIL and the search goes on."""


@dataclass
class Search:
    """One search: what is tuned, on which data, for how many trials and seconds, and where it is stored."""

    method: str
    train: str
    eval: str
    trials: int
    budget: float
    out: str
    seed: int = 0
    model: str | None = None
    space: dict = field(default_factory=dict)  # overrides of the method's space (same keys)
    enqueue: list = field(default_factory=list)  # settings tried first (default: the method's defaults)
    jobs: int = 1
    storage: str | None = None
    max_train_examples: int = 0
    text_col: str | None = None
    label_col: str | None = None
    folder: Path = None

    def __post_init__(self):
        from core.training import finetune

        if self.method != "prompt" and self.method not in finetune.METHODS:
            raise UserError(f"Unknown method '{self.method}'; choose prompt or one of: {', '.join(finetune.METHODS)}.")
        if int(self.trials) < 1:
            raise UserError(f"--trials must be at least 1 (got {self.trials}).")
        if not (float(self.budget) > 0 and math.isfinite(float(self.budget))):
            raise UserError(f"--budget must be a positive number of seconds (got {self.budget}).")
        if int(self.jobs) < 1:
            raise UserError(f"--jobs must be at least 1 (got {self.jobs}).")
        self.space = space_for(self.method, self.space)
        if self.model and Path(self.model).exists():  # a model folder, named from wherever the trials run
            self.model = str(Path(self.model).resolve())
        if not isinstance(self.enqueue, list) or not all(isinstance(e, dict) for e in self.enqueue):
            raise UserError('--enqueue must be a JSON list of objects of settings, such as [{"lr": 0.001}].')
        for settings in self.enqueue:
            if unknown := sorted(set(settings) - set(self.space)):
                raise UserError(
                    f"--enqueue names {', '.join(unknown)}, which the {self.method} space does not have "
                    f"(it has: {', '.join(self.space)})."
                )
        self.folder = resolve_out(self.out)

    @property
    def kind(self) -> str:
        return "prompt" if self.method == "prompt" else "finetune"

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.folder / STUDY_FILE}"

    @property
    def study_name(self) -> str:
        return self.folder.name


# ---- the space --------------------------------------------------------------------------------


def method_space(method: str) -> dict:
    """The declared space of a method (finetune.SEARCH_SPACE, or prompting.SEARCH_SPACE for 'prompt')."""
    if method == "prompt":
        from core.prompting import SEARCH_SPACE
    else:
        from core.training.finetune import SEARCH_SPACE
    return SEARCH_SPACE.get(method, {}) if method != "prompt" else SEARCH_SPACE


def space_for(method: str, overrides: dict) -> dict:
    """The method's space with --space overrides (a key the method does not have, or a malformed range, is one sentence)."""
    base = method_space(method)
    if not base:
        raise UserError(
            f"Method '{method}' has no settings to search (its constants are not settings); train it once with "
            f"python -m core finetune --method {method}."
        )
    if not isinstance(overrides, dict):
        raise UserError('--space must be a JSON object, such as {"lr": {"low": 1e-4, "high": 1e-2, "log": true}}.')
    if unknown := sorted(set(overrides) - set(base)):
        raise UserError(f"The {method} space has no setting {', '.join(map(repr, unknown))}; it has: {', '.join(base)}.")
    for key, spec in overrides.items():
        check_spec(key, spec)
    return {**base, **overrides}


def check_spec(key: str, spec) -> None:
    """A list of choices, or {"low", "high"[, "log", "int"]} with low <= high (and low > 0 when log)."""
    if isinstance(spec, list):
        if not spec or not all(v is None or isinstance(v, (bool, int, float, str)) for v in spec):
            raise UserError(f"The space of '{key}' must list at least one value (numbers or text).")
        return
    ok = isinstance(spec, dict) and set(spec) <= {"low", "high", "log", "int"} and {"low", "high"} <= set(spec)
    ok = ok and all(isinstance(spec[k], (int, float)) and not isinstance(spec[k], bool) for k in ("low", "high"))
    if not ok or spec["low"] > spec["high"] or (spec.get("log") and spec["low"] <= 0):
        raise UserError(
            f'The space of \'{key}\' must be a list of values or {{"low": L, "high": H}} with L <= H '
            '(and L > 0 with "log": true).'
        )


def suggest(trial, space: dict) -> dict:
    """One value per setting of the space, proposed by the study's sampler."""
    params = {}
    for key, spec in space.items():
        if isinstance(spec, list):
            params[key] = trial.suggest_categorical(key, spec)
        elif spec.get("int"):
            params[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            params[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return params


def default_params(search: Search) -> dict:
    """The method's default settings, for the keys of the space whose defaults the space can hold (tried first, so a
    search never ends below the default on the dev split)."""
    if search.method == "prompt":
        from core.prompting import AUTO_CALIBRATIONS, SELECTIONS

        defaults = {"template": "category", "calibration": AUTO_CALIBRATIONS[0], "shots": 0, "selection": SELECTIONS[1]}
    else:
        from core.training.finetune import FinetuneConfig

        config = FinetuneConfig(method=search.method)
        defaults = {**config.to_dict(), "lora_target_modules": "query+value"}
    out = {}
    for key, spec in search.space.items():
        value = defaults.get(key)
        if isinstance(spec, list) and value in spec:
            out[key] = value
        elif isinstance(spec, dict) and isinstance(value, (int, float)) and spec["low"] <= value <= spec["high"]:
            out[key] = value
    return out


def run_settings(search: Search, params: dict) -> dict:
    """The --config settings of a run with these searched values (field names, as a run's config.json has them)."""
    base = {"method": search.method, "seed": [search.seed] if search.kind == "prompt" else search.seed}
    if search.model:
        base["model"] = search.model
    if search.text_col:
        base.update(text_col=search.text_col, label_col=search.label_col)
    if search.kind == "prompt":
        from core.prompting import TEMPLATES

        params = dict(params)
        base.update(TEMPLATES[params.pop("template", "category")], template="custom")
        base.pop("method")
        if "shots" in params:
            params["shots"] = [params["shots"]]
        return {**base, **params}
    params = dict(params)
    if "lora_target_modules" in params:
        params["lora_target_modules"] = str(params["lora_target_modules"]).split("+")
    if search.max_train_examples:
        base["max_train_examples"] = search.max_train_examples
    return {**base, **params}


# ---- data -------------------------------------------------------------------------------------


def carve(search: Search) -> tuple[Path, Path, str]:
    """Write the trials' training rows and dev rows (a stratified, seeded DEV_SHARE of the training data) into the
    search's folder once; returns their paths and a description."""
    from core import data
    from core.training.finetune import cap_rows

    folder = search.folder / "data"
    train_path, dev_path = folder / "train.csv", folder / "dev.csv"
    if not (train_path.exists() and dev_path.exists()):
        ds, split, _, _ = data.load_train_eval(search.train, search.eval, search.text_col, search.label_col)
        rows = cap_rows(ds.splits[split], search.max_train_examples, search.seed)
        parts = data.stratified_split(rows, {"train": 1 - DEV_SHARE, "dev": DEV_SHARE}, search.seed)
        if len(parts["dev"]) < 2 or parts["train"]["label"].nunique() < 2:
            raise UserError(
                f"The training data has {len(rows)} rows, too few to hold {DEV_SHARE:.0%} out as a dev split for the search."
            )
        folder.mkdir(parents=True, exist_ok=True)
        for path, part in ((train_path, parts["train"]), (dev_path, parts["dev"])):
            write_atomic(path, part[["text", "label"]].to_csv(index=False))
    n_train, n_dev = (sum(1 for _ in open(p, encoding="utf-8")) - 1 for p in (train_path, dev_path))
    return (
        train_path,
        dev_path,
        (
            f"{DEV_SHARE:.0%} of the training rows, stratified, seed {search.seed} "
            f"({n_train} rows train each trial, {n_dev} score it)"
        ),
    )


# ---- one trial --------------------------------------------------------------------------------


def child_env() -> dict:
    """The environment of a trial's process: this one's, without the job token (a trial's folder is not reserved)."""
    return {k: v for k, v in os.environ.items() if k != "PFT_RUN_TOKEN"} | {"PYTHONUNBUFFERED": "1"}


def dev_curve(run_path: Path) -> list[tuple[int, float]]:
    """(step, dev macro-F1) of every dev evaluation so far: the eval_macro_f1 lines of history.jsonl (the live curve's)."""
    points = []
    try:
        lines = (run_path / "history.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return points
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line being written
        if isinstance(record, dict) and "eval_macro_f1" in record:
            points.append((int(record.get("step", 0)), float(record["eval_macro_f1"])))
    return points


def eval_steps(search: Search, n_train: int, batch_size: int) -> str:
    """--eval-every for a fine-tune trial: EVALS_PER_EPOCH dev evaluations per epoch (the pruner's points)."""
    return str(max(1, math.ceil(n_train / int(batch_size) / EVALS_PER_EPOCH)))


def objective(search: Search, train_path: Path, dev_path: Path, n_train: int):
    """The Optuna objective: one trial = one run NAME.trialK in a subprocess; returns its dev macro-F1."""
    import optuna

    def run_trial(trial) -> float:
        params = suggest(trial, search.space)
        settings = run_settings(search, params)
        if search.kind == "finetune":
            settings.update(dev="eval", eval_strategy=eval_steps(search, n_train, settings.get("batch_size", 16)))
        name = f"{search.folder.name}.trial{trial.number}"
        trial.set_user_attr("run", name)
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        trials_dir = search.folder / "trials"
        trials_dir.mkdir(exist_ok=True)
        write_json(trials_dir / f"{trial.number}.json", settings)
        argv = [
            sys.executable,
            "-m",
            "core",
            search.kind,
            "--config",
            str(trials_dir / f"{trial.number}.json"),
            "--train",
            str(train_path),
            "--eval",
            str(dev_path),
            "--out",
            name,
        ]
        run_path = search.folder.parent / name
        started = time.time()
        with open(trials_dir / f"{trial.number}.log", "ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env(), cwd=CODE_ROOT
            )
        reported, pruned_at, cpu = 0, None, 0.0
        try:
            while pruned_at is None:
                finished = proc.poll() is not None
                cpu = cpu_seconds(proc.pid, cpu) if not finished else cpu
                curve = dev_curve(run_path)
                for step, value in curve[reported:]:
                    trial.report(value, step)
                    reported += 1
                    if trial.should_prune():
                        pruned_at = step
                        break
                if finished:
                    break
                time.sleep(POLL_SECONDS)
            if pruned_at is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # the run stops at its next step and marks itself cancelled
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            trial.set_user_attr("seconds", round(time.time() - started, 3))
            trial.set_user_attr("cpu_seconds", round(cpu, 1))
        if pruned_at is not None:
            run = RunDir(run_path)
            if run.path.is_dir():
                run.set_status(
                    run.status.get("state", "cancelled"),
                    pruned=True,
                    error=f"Pruned by the search {search.folder.name} at step {pruned_at}: its dev macro-F1 was below "
                    "the median of earlier trials there.",
                )
            raise optuna.TrialPruned(f"pruned at step {pruned_at}")
        metrics = RunDir(run_path).metrics if run_path.is_dir() else None
        if proc.returncode != 0 or not metrics:
            raise TrialFailed(last_error(trials_dir / f"{trial.number}.log") or f"exit status {proc.returncode}")
        return float(metrics["macro_f1"])

    return run_trial


def cpu_seconds(pid: int, last: float) -> float:
    """CPU seconds (user + system, all threads) a trial's process has used so far, sampled while it runs (the last
    POLL_SECONDS are missed): what a trial costs whatever else the machine runs; last when it has just ended."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return last
    return times.user + times.system + times.children_user + times.children_system


def last_error(log: Path) -> str | None:
    """The last `error: ...` line of a trial's log."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return next((line[7:] for line in reversed(lines) if line.startswith("error: ")), None)


# ---- the study --------------------------------------------------------------------------------


FINISHED = ("COMPLETE", "PRUNED")


def load_study(search: Search, create: bool = True):
    """The Optuna study in its storage (TPE seeded with --seed, median pruner), created when missing."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    try:
        storage = storage_for(search.storage_url)
        seed = search.seed
        if any(s.study_name == search.study_name for s in optuna.get_all_study_summaries(storage)):
            trials = optuna.load_study(study_name=search.study_name, storage=storage).get_trials(deepcopy=False)
            # a resumed search continues the sequence; a process joining one that others run draws its own settings
            seed += len(trials) + (os.getpid() if any(t.state.name == "RUNNING" for t in trials) else 0)
        sampler = optuna.samplers.TPESampler(
            seed=seed % 2**32, n_startup_trials=min(10, max(2, search.trials // 2)), constant_liar=True
        )
        if create:
            return optuna.create_study(
                study_name=search.study_name,
                storage=storage,
                sampler=sampler,
                pruner=pruner,
                direction="maximize",
                load_if_exists=True,
            )
        return optuna.load_study(study_name=search.study_name, storage=storage, sampler=sampler, pruner=pruner)
    except (ImportError, ValueError, KeyError) as e:
        raise UserError(f"Could not open the study storage {search.storage_url}: {str(e).splitlines()[0][:200]}") from None


def storage_for(url: str):
    """An Optuna storage: a database URL (sqlite:///..., postgresql://...), or a journal file (journal:PATH, for file
    systems where SQLite's locks are unreliable, such as NFS)."""
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None)


def count(study, states=FINISHED) -> int:
    import optuna

    wanted = tuple(getattr(optuna.trial.TrialState, s) for s in states)
    return len(study.get_trials(deepcopy=False, states=wanted))


def fail_orphans(study, trials_dir: Path) -> int:
    """Mark FAIL the trials left RUNNING by a process of this machine that is gone (kill -9, power loss), so a resumed
    search does not wait on them, with the seconds they ran (until their log was last written) counted as spent;
    trials of other machines (shared storage) are left alone."""
    import optuna
    import psutil

    host, failed = socket.gethostname(), 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and pid and (pid == os.getpid() or not psutil.pid_exists(pid)):
            log = trials_dir / f"{t.number}.log"
            ended = log.stat().st_mtime if log.exists() else time.time()
            study._storage.set_trial_user_attr(t._trial_id, "seconds", round(max(0.0, ended - t.datetime_start.timestamp()), 3))
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
            failed += 1
    return failed


def spent_seconds(study) -> float:
    """Seconds all trials so far ran (each trial's own process time, summed: the search's compute)."""
    return round(sum(float(t.user_attrs.get("seconds", 0.0)) for t in study.get_trials(deepcopy=False)), 3)


def trials_frame(study) -> pd.DataFrame:
    """One row per trial: number, state, dev macro-F1, seconds (wall, and CPU), run, and its settings."""
    rows = [
        {
            "trial": t.number,
            "state": t.state.name,
            "dev_macro_f1": t.value,
            "seconds": t.user_attrs.get("seconds"),
            "cpu_seconds": t.user_attrs.get("cpu_seconds"),
            "run": t.user_attrs.get("run"),
            "pruned_at": max(t.intermediate_values) if t.state.name == "PRUNED" and t.intermediate_values else None,
            **{f"param_{k}": v for k, v in t.params.items()},
        }
        for t in study.get_trials(deepcopy=False)
    ]
    return pd.DataFrame(rows)


def importances(study) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA) over the complete trials; {} with fewer than 2 of them or constant settings."""
    import optuna

    if count(study, ("COMPLETE",)) < 2:
        return {}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study, evaluator=evaluator)
        return {k: round(float(v), 4) for k, v in found.items() if math.isfinite(float(v))}
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}


def write_results(search: Search, study) -> pd.DataFrame:
    """trials.csv, curves.csv (every trial's dev curve) and importance.json in the search's folder: the charts' data."""
    frame = trials_frame(study)
    write_atomic(search.folder / "trials.csv", frame.to_csv(index=False))
    curves = [
        {"trial": t.number, "step": step, "dev_macro_f1": value}
        for t in study.get_trials(deepcopy=False)
        for step, value in sorted(t.intermediate_values.items())
    ]
    write_atomic(
        search.folder / "curves.csv", pd.DataFrame(curves, columns=["trial", "step", "dev_macro_f1"]).to_csv(index=False)
    )
    write_json(search.folder / "importance.json", importances(study))
    return frame


# ---- the whole search -------------------------------------------------------------------------


def prepare(search: Search) -> None:
    """Create (or reopen) the search's folder: reserved for the result run, its status running under this process."""
    from filelock import FileLock

    search.folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(search.folder.parent / f".{search.folder.name}.search.lock"):
        if (search.folder / "config.json").exists():
            raise UserError(f"The search '{search.folder.name}' has finished (its result run exists); choose another --out.")
        if (
            search.folder.exists()
            and not (search.folder / "search.json").exists()
            and not reserved_for_this_process(search.folder)
        ):
            raise UserError(f"A run named '{search.folder.name}' already exists; choose another name.")
        search.folder.mkdir(exist_ok=True)
        if not reserved_for_this_process(search.folder):  # a CLI search reserves its folder itself (a page's job already has)
            token = uuid.uuid4().hex
            write_json(search.folder / RESERVATION, {"token": token, "pid": os.getpid()})
            os.environ["PFT_RUN_TOKEN"] = token
        saved = read_json(search.folder / "search.json") or {}
        settings = {
            "method": search.method,
            "train": search.train,
            "eval": search.eval,
            "trials": search.trials,
            "budget": search.budget,
            "seed": search.seed,
            "model": search.model,
            "space": search.space,
            "storage": search.storage_url,
            "max_train_examples": search.max_train_examples,
        }
        if saved and (saved.get("method"), saved.get("train")) != (search.method, search.train):
            raise UserError(
                f"The search '{search.folder.name}' tunes {saved.get('method')} on {saved.get('train')}; "
                "resume it with the same --method and --train, or choose another --out."
            )
        write_json(search.folder / "search.json", {**saved, **settings})
        RunDir(search.folder).set_status("running", pid=os.getpid(), progress=0.0, done=0, total=search.trials, error=None)
        carve(search)
        load_study(search)  # the storage's tables and the study made by one process at a time (two at once clash in SQLite)


def serialize_asks(study, lock_path: Path) -> None:
    """One study.ask at a time across this machine's threads and processes: in SQLite, taking a waiting trial (the
    enqueued defaults) is not atomic, and two --jobs threads took trial 0 together (both ran as NAME.trial0)."""
    import threading

    from filelock import FileLock

    ask, local, machine = study.ask, threading.Lock(), FileLock(lock_path)

    def locked_ask(*args, **kwargs):
        with local, machine:
            return ask(*args, **kwargs)

    study.ask = locked_ask


def optimize(search: Search, log=print) -> object:
    """Run trials until the study holds search.trials finished ones or the budget is spent; returns the study."""

    train_path, dev_path, described = carve(search)
    n_train = sum(1 for _ in open(train_path, encoding="utf-8")) - 1
    study = load_study(search)
    if orphans := fail_orphans(study, search.folder / "trials"):
        log(f"resuming: {orphans} trial{'s' if orphans > 1 else ''} left running by a stopped search marked failed")
    done = count(study)
    if done:
        log(f"resuming: {done} of {search.trials} trials already finished")
    if not study.get_trials(deepcopy=False):
        for settings in search.enqueue or [default_params(search)]:
            study.enqueue_trial(settings, skip_if_exists=True)
    log(f"dev split: {described}; study: {search.storage_url}")
    left = (search.budget - spent_seconds(study)) / search.jobs  # wall seconds in which --jobs trials at once spend what is left
    report = Reporter(RunDir(search.folder), budget_seconds=left, done_before=done)  # status.json: trials finished, ETA

    def after_trial(study, trial) -> None:
        finished = count(study)
        value = "" if trial.value is None else f", dev macro-F1 {trial.value:.4f}"
        log(
            f"trial {trial.number}: {trial.state.name.lower()}{value} ({trial.user_attrs.get('seconds', 0):.0f} s) {trial.params}"
        )
        if not (search.folder / "config.json").exists():  # another process of this search may be re-training the best already
            report(min(finished, search.trials), search.trials)
        write_results(search, study)
        if finished >= search.trials:
            study.stop()

    serialize_asks(study, search.folder.parent / f".{search.folder.name}.ask.lock")
    if done < search.trials and left > 0:
        study.optimize(
            objective(search, train_path, dev_path, n_train),
            n_trials=search.trials - done,
            timeout=left,
            n_jobs=search.jobs,
            catch=(TrialFailed,),
            callbacks=[after_trial],
            gc_after_trial=False,
        )
    elif left <= 0:
        log(f"the budget of {search.budget:.0f} s is spent; no more trials start")
    write_results(search, study)
    return study


def retrain(search: Search, study, log=print) -> int:
    """Train the best trial's settings on all training rows and evaluate them on the evaluation split as the run NAME
    (once: another process of the same search that finishes later finds it done); record the search's cost."""
    from filelock import FileLock

    if count(study, ("COMPLETE",)) == 0:
        raise UserError(f"No trial of the search '{search.folder.name}' finished (see runs/{search.folder.name}/trials/*.log).")
    with FileLock(search.folder.parent / f".{search.folder.name}.result.lock"):
        if (search.folder / "metrics.json").exists():
            log(f"the result run {search.folder.name} was already trained by another process of this search")
            return 0
        best = study.best_trial
        settings = run_settings(search, best.params)
        write_json(search.folder / "best.json", settings)
        if not reserved_for_this_process(search.folder):
            token = uuid.uuid4().hex
            write_json(search.folder / RESERVATION, {"token": token, "pid": os.getpid()})
            os.environ["PFT_RUN_TOKEN"] = token
        log(f"best: trial {best.number}, dev macro-F1 {best.value:.4f}, {best.params}; re-training on all training rows")
        argv = [
            sys.executable,
            "-m",
            "core",
            search.kind,
            "--config",
            str(search.folder / "best.json"),
            "--train",
            search.train,
            "--eval",
            search.eval,
            "--out",
            search.folder.name,
        ]
        code = subprocess.run(argv, env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
        run = RunDir(search.folder)
        if code != 0 or not run.metrics:
            return code or 1
        trials = count(study, ("COMPLETE", "PRUNED", "FAIL"))
        run.write(
            "metrics.json",
            {
                **run.metrics,
                "search_trials": trials,
                "search_seconds": spent_seconds(study),
                "search_best_trial": best.number,
                "search_dev_macro_f1": round(float(best.value), 4),
            },
        )
        log(f"'{search.folder.name}' was chosen by a {trials}-trial search costing {spent_seconds(study):,.0f} s")
    return 0
