"""Continual learning: fine-tune one encoder on a sequence of tasks and measure what each step forgets.

After every training step i the model is evaluated on every task j, giving the accuracy matrix R (R[i][j] =
accuracy on task j after training on tasks 1..i). Strategies: naive (plain sequential fine-tuning), replay
(a seeded share of earlier tasks' training rows mixed in), lora-per-task (one LoRA adapter and head per task over
a frozen body, picked by task at evaluation) and ewc (elastic weight consolidation, Kirkpatrick et al. 2017).

Label space: when every task has the same label names the tasks share one head; otherwise each task gets its own
output units ("task:label") and its predictions are restricted to them (task-incremental, the task is known).
Training uses the HF Trainer with the full and lora methods' model building, encoding and saving (core.training.classifier)
and the methods' shared progress callback and TrainingArguments (core.training.base).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import data, models
from core.comparison import evaluate
from core.errors import UserError
from core.runs import RunDir, finish_with_metrics
from core.settings import check_fields, number, same_as, setting
from core.training import classifier, finetune
from core.training.base import (
    METHODS,
    FinetuneConfig,
    count_parameters,
    make_progress_callback,
    predict_probs,
    rate_text,
    training_arguments,
)

STRATEGY_METHOD = {"naive": "full", "replay": "full", "lora-per-task": "lora", "ewc": "full"}  # what trains each step
STRATEGIES = tuple(STRATEGY_METHOD)
STRATEGY_CAPTIONS = {
    "naive": "plain sequential fine-tuning",
    "replay": "mix in earlier rows",
    "lora-per-task": "one adapter per task",
    "ewc": "Fisher penalty",
}
DEFAULT_LR = {strategy: METHODS[method].default_lr for strategy, method in STRATEGY_METHOD.items()}
DEFAULT_TRAIN = ("reviews", "finance_news")  # same labels, new domain: the sequence the page and README start from
DEFAULT_EVAL = ("reviews:test", "finance_news:test")


F = FinetuneConfig  # the settings continual shares with fine-tuning are declared there, once


@dataclass
class ContinualConfig:
    """Everything a continual run depends on; the page form and the CLI flags both fill it."""

    strategy: str = setting("naive", "--strategy", type=str.lower, choices=STRATEGIES, help="naive, replay, lora-per-task or ewc")
    model: str = same_as(F, "model", help="bundled encoder, Hugging Face id or local folder")
    epochs: float = same_as(F, "epochs", help="passes over each task's training rows")
    lr: float | None = same_as(
        F,
        "lr",
        help=f"peak learning rate (default: {rate_text(DEFAULT_LR['naive'])}, lora-per-task "
        f"{rate_text(DEFAULT_LR['lora-per-task'])})",
    )
    batch_size: int = same_as(F, "batch_size", help="examples per step")
    max_train_examples: int = same_as(F, "max_train_examples", help="at most N training rows per task, a seeded sample (0: all)")
    max_length: int = same_as(F, "max_length")
    replay_share: float = setting(
        0.3,
        "--replay-share",
        type=number(float, 0, 1, above=True),
        help="replay: share of every earlier task's training rows mixed into each later step",
    )
    # ewc: on the default sequence (MiniLM) 1e5 barely changed forgetting (reviews 0.818 -> 0.838 after step 2) and 1e6 kept
    # reviews at 0.879 of 0.889 while finance_news still rose 0.53 -> 0.84 (naive 0.89)
    ewc_lambda: float = setting(1e6, "--ewc-lambda", type=number(float, 0, 1e9), help="ewc: strength of the Fisher penalty")
    fisher_examples: int = setting(
        256, type=number(int, 1, 100_000)
    )  # ewc: training rows of a finished task used to estimate its Fisher information
    lora_r: int = same_as(F, "lora_r", help="LoRA rank (lora-per-task)")
    lora_alpha: float = same_as(F, "lora_alpha", help="LoRA scaling numerator (lora-per-task)")
    seed: int = same_as(F, "seed")
    device: str = same_as(F, "device")

    def __post_init__(self):
        self.strategy = str(self.strategy).lower()
        check_fields(self)

    @property
    def learning_rate(self) -> float:
        return float(self.lr) if self.lr is not None else DEFAULT_LR[self.strategy]

    def finetune_config(self) -> FinetuneConfig:
        """The fine-tuning settings of one step (lora for lora-per-task, full otherwise; no dev set, fixed epochs)."""
        return FinetuneConfig(
            model=self.model,
            method=STRATEGY_METHOD[self.strategy],
            epochs=self.epochs,
            lr=self.learning_rate,
            batch_size=self.batch_size,
            max_length=self.max_length,
            dev="none",
            early_stopping_patience=0,
            lora_r=self.lora_r,
            lora_alpha=self.lora_alpha,
            seed=self.seed,
            device=self.device,
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "lr": self.learning_rate}


@dataclass
class Task:
    """One step of the sequence: its training rows, evaluation rows and label names."""

    name: str  # e.g. reviews, or a file name
    train_source: str
    eval_source: str
    train: pd.DataFrame
    eval: pd.DataFrame
    labels: list[str]
    eval_split: str

    def describe(self) -> dict:
        return {
            "name": self.name,
            "train": self.train_source,
            "eval": self.eval_source,
            "eval_split": self.eval_split,
            "labels": self.labels,
            "n_train": len(self.train),
            "n_eval": len(self.eval),
            "train_sha256": data.fingerprint(self.train),
            "eval_sha256": data.fingerprint(self.eval),
        }


def load_tasks(
    train_sources: list[str],
    eval_sources: list[str],
    text_col: str | None = None,
    label_col: str | None = None,
    max_train_examples: int = 0,
    seed: int = 42,
) -> list[Task]:
    """The tasks of a sequence (--train T1 T2 ... paired with --eval E1 E2 ...), refusing what cannot be learnt in order."""
    if len(train_sources) < 2:
        raise UserError("Continual learning needs at least two tasks: give two or more --train sources.")
    if len(train_sources) != len(eval_sources):
        raise UserError(
            f"Give one --eval source per --train source (got {len(train_sources)} to train and {len(eval_sources)} to evaluate)."
        )
    tasks = []
    for k, (tr, ev) in enumerate(zip(train_sources, eval_sources, strict=True), start=1):
        train_ds, train_split, eval_ds, eval_split = data.load_train_eval(tr, ev, text_col, label_col)
        train = finetune.cap_rows(train_ds.splits[train_split], max_train_examples, seed)
        labels = [lab for lab in train_ds.label_names if lab in set(train["label"])]
        unknown = sorted(set(eval_ds.splits[eval_split]["label"]) - set(labels))
        if unknown:
            raise UserError(
                f"Task {k} ({train_ds.name}): the evaluation label(s) {', '.join(repr(u) for u in unknown[:5])} "
                f"never occur in its training rows, so they cannot be mapped to an output."
            )
        if len(labels) < 2:
            raise UserError(
                f"Task {k} ({train_ds.name}) has a single label in its training rows; a classifier needs two or more."
            )
        tasks.append(Task(train_ds.name, tr, ev, train, eval_ds.splits[eval_split], labels, eval_split))
    return distinct_names(tasks)


def distinct_names(tasks: list[Task]) -> list[Task]:
    """Tasks renamed apart where names repeat (two files called train.csv): the file's folder first, then the task number;
    the matrix, its charts and each step's task_accuracy are keyed by these names."""
    names = [t.name for t in tasks]
    clash = {n for n in names if names.count(n) > 1}
    for t in tasks:
        if t.name in clash and Path(t.train_source).parent.name:
            t.name = f"{Path(t.train_source).parent.name}/{t.name}"
    seen = set()
    for k, t in enumerate(tasks, start=1):
        if t.name in seen:
            t.name = f"{t.name} ({k})"
        seen.add(t.name)
    return tasks


@dataclass
class LabelSpace:
    """Output units of the classifier and which of them each task may predict."""

    units: list[str]  # unit names: the label names (shared head) or "k:label" (one head per task, k = task number)
    task_units: list[list[int]]  # per task: the unit index of each of its labels, in the task's label order
    shared: bool

    def unit_of(self, task: int, label: str, labels: list[str]) -> str:
        return self.units[self.task_units[task][labels.index(label)]]

    def sentence(self) -> str:
        if self.shared:
            return f"shared label space: one head over {len(self.units)} labels for every task"
        return (
            f"one head per task ({len(self.task_units)} heads, {len(self.units)} output units; "
            "each task predicts only its own labels)"
        )


def label_space(tasks: list[Task]) -> LabelSpace:
    """A shared head when every task has the same label names, otherwise one head (block of units) per task."""
    if all(set(t.labels) == set(tasks[0].labels) for t in tasks):
        units = list(tasks[0].labels)
        return LabelSpace(units, [[units.index(lab) for lab in t.labels] for t in tasks], shared=True)
    units, task_units = [], []
    for k, t in enumerate(tasks, start=1):
        task_units.append(list(range(len(units), len(units) + len(t.labels))))
        units += [f"{k}:{lab}" for lab in t.labels]
    return LabelSpace(units, task_units, shared=False)


# ---- the metrics ---------------------------------------------------------------------------------


def transfer_metrics(matrix: list[list[float]], initial: list[float]) -> dict:
    """Average accuracy, backward and forward transfer of an accuracy matrix (Lopez-Paz & Ranzato 2017, GEM).

    With T tasks, R[i][j] the accuracy on task j after training step i (0-based) and b[j] the accuracy on task j of
    the model before any training (the seeded initial model):

        average_accuracy = 1/T       * sum_{j=0..T-1} R[T-1][j]
        bwt              = 1/(T-1)   * sum_{j=0..T-2} (R[T-1][j] - R[j][j])      negative = forgetting
        fwt              = 1/(T-1)   * sum_{j=1..T-1} (R[j-1][j] - b[j])          positive = earlier tasks helped
    """
    r = np.asarray(matrix, dtype=float)
    b = np.asarray(initial, dtype=float)
    t = r.shape[0]
    if r.shape != (t, t) or b.shape != (t,) or t < 2:
        raise ValueError("matrix must be T x T and initial of length T, with T >= 2")
    return {
        "average_accuracy": float(r[-1].mean()),
        "bwt": float(np.mean([r[-1, j] - r[j, j] for j in range(t - 1)])),
        "fwt": float(np.mean([r[j - 1, j] - b[j] for j in range(1, t)])),
    }


# ---- training ------------------------------------------------------------------------------------


class TaskTexts(classifier.EncodedTexts):
    """Encoded texts with the task number of every row (the loss restricts each row to its task's units)."""

    def __init__(self, encoded: classifier.EncodedTexts, task_ids: list[int]):
        super().__init__(encoded.encodings, encoded.labels)
        self.task_ids = task_ids

    def __getitem__(self, i: int) -> dict:
        return {**super().__getitem__(i), "task_id": self.task_ids[i]}


def encode_rows(tokenizer, frame: pd.DataFrame, space: LabelSpace, tasks: list[Task], max_length: int) -> TaskTexts:
    """Tokenize rows that carry a `task` column (0-based) with their labels mapped to output units."""
    units = [space.unit_of(int(k), lab, tasks[int(k)].labels) for k, lab in zip(frame["task"], frame["label"], strict=True)]
    encoded = classifier.encode(tokenizer, frame.assign(label=units), space.units, max_length)
    return TaskTexts(encoded, [int(k) for k in frame["task"]])


class TaskRun(RunDir):
    """The run folder, with the current task number added to every history line."""

    task: int = 0

    def append_history(self, record: dict) -> None:
        super().append_history({"task": self.task, **record})


def continual_trainer_class():
    """A Trainer whose loss is cross-entropy over each row's task units, plus the EWC penalty when one is set."""
    import torch

    OrderedEvalTrainer = classifier.ordered_eval_trainer_class()

    class ContinualTrainer(OrderedEvalTrainer):
        def __init__(self, *args, unit_mask=None, ewc_terms=(), ewc_lambda: float = 0.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.unit_mask = unit_mask  # (tasks, units) bool
            self.ewc_terms = ewc_terms  # per finished task: {name: (fisher, anchor)}
            self.ewc_lambda = ewc_lambda

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = dict(inputs)
            labels, task_id = inputs.pop("labels"), inputs.pop("task_id")
            outputs = model(**inputs)
            loss = torch.nn.functional.cross_entropy(masked_logits(outputs.logits, self.unit_mask, task_id), labels)
            if self.ewc_terms and self.ewc_lambda:
                loss = loss + self.ewc_lambda / 2 * ewc_penalty(model, self.ewc_terms)
            return (loss, outputs) if return_outputs else loss

    return ContinualTrainer


def masked_logits(logits, unit_mask, task_id):
    """Logits with every unit outside the row's task set to the lowest value (so softmax gives it no mass)."""
    allowed = unit_mask.to(logits.device)[task_id.to(logits.device)]
    return logits.masked_fill(~allowed, float(np.finfo(np.float32).min))


def ewc_penalty(model, terms):
    """sum over finished tasks k and parameters p of F_k[p] * (theta[p] - theta*_k[p])^2 (times lambda/2 in the loss)."""
    params = dict(model.named_parameters())
    total = 0.0
    for term in terms:
        for name, (fisher, anchor) in term.items():
            p = params[name]
            total = total + (fisher.to(p.device) * (p - anchor.to(p.device)) ** 2).sum()
    return total


def consolidate(total: dict | None, term: dict) -> dict:
    """One EWC term {name: (F, anchor)} with the same gradient as the terms total and term together, so memory stays two
    tensors per parameter however many tasks finish: sum_k F_k (theta - a_k)^2 = F (theta - a)^2 + a constant, with
    F = sum_k F_k and a the F-weighted mean of the anchors (the constant moves the loss, not its gradient)."""
    if total is None:
        return term
    merged = {}
    for name, (fisher, anchor) in term.items():
        f_total, a_total = total[name]
        f_sum = f_total + fisher
        weighted = (f_total * a_total + fisher * anchor) / f_sum.clamp_min(1e-30)
        merged[name] = (f_sum, weighted.where(f_sum > 0, anchor))
    return merged


def fisher_diagonal(model, dataset: TaskTexts, collator, unit_mask, n_examples: int, seed: int) -> dict:
    """{parameter name: (diagonal empirical Fisher, the parameter's current value)} from a seeded sample of the task's rows.

    F[p] = mean over the sampled rows of (d log p(y|x) / d theta_p)^2, y the row's label: one gradient per row, as in
    Kirkpatrick et al. 2017. (Squaring the gradient of a mini-batch's mean loss instead gives about 1/batch-size of
    that, since the rows' gradients mostly cancel in the mean; on the default sequence it was 23 times smaller.)"""
    import torch

    rows = np.random.default_rng(seed).permutation(len(dataset))[:n_examples]
    device = next(model.parameters()).device
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    model.eval()
    for i in rows:
        batch = {k: v.to(device) for k, v in collator([dataset[int(i)]]).items()}
        labels, task_id = batch.pop("labels"), batch.pop("task_id")
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(masked_logits(model(**batch).logits, unit_mask, task_id), labels).backward()
        for n, p in params.items():
            if p.grad is not None:
                fisher[n] += p.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    return {n: (fisher[n] / max(len(rows), 1), p.detach().clone()) for n, p in params.items()}


@dataclass
class ContinualResult:
    """The accuracy matrix and what goes into continual.json, metrics.json and predictions.csv."""

    tasks: list[Task]
    space: LabelSpace
    initial: list[float]
    matrix: list[list[float]] = field(default_factory=list)
    step_predictions: list[pd.DataFrame] = field(default_factory=list)  # per step: predictions on every task's eval rows
    cancelled: bool = False

    def summary(self, config: ContinualConfig) -> dict:
        """continual.json: tasks, the matrix so far, and (once complete) the transfer metrics."""
        out = {
            "strategy": config.strategy,
            "label_space": self.space.sentence(),
            "shared_head": self.space.shared,
            "tasks": [t.name for t in self.tasks],
            "task_details": [t.describe() for t in self.tasks],
            "initial": self.initial,
            "matrix": self.matrix,
            "steps_done": len(self.matrix),
            "average_accuracy": None,
            "bwt": None,
            "fwt": None,
        }
        if len(self.matrix) == len(self.tasks):
            out.update(transfer_metrics(self.matrix, self.initial))
        return out


def union_fingerprint(tasks: list[Task]) -> str:
    """The fingerprint of all tasks' evaluation rows in order (every step's predictions cover exactly these)."""
    return data.fingerprint(pd.concat([t.eval[["text", "label"]] for t in tasks], ignore_index=True))


def evaluate_tasks(
    task_models: list, tokenizer, tasks: list[Task], space: LabelSpace, max_length: int
) -> tuple[list[float], pd.DataFrame]:
    """(accuracy per task, predictions over every task's evaluation rows), task j scored by task_models[j]."""
    names = [lab for t in tasks for lab in t.labels]
    all_labels = list(dict.fromkeys(names))
    accuracies, frames = [], []
    for j, task in enumerate(tasks):
        model = task_models[j]
        model.eval()
        probs = predict_probs(model, tokenizer, list(task.eval["text"]), max_length=max_length)[:, space.task_units[j]]
        probs = probs / probs.sum(axis=1, keepdims=True)  # softmax over the task's own units
        frame = evaluate.predictions_frame(
            [f"{j + 1}:{i}" for i in task.eval["id"]], task.eval["text"], task.eval["label"], probs, task.labels
        )
        accuracies.append(float((frame["pred"] == frame["label"]).mean()))
        for lab in all_labels:
            if f"prob_{lab}" not in frame:
                frame[f"prob_{lab}"] = 0.0
        frames.append(
            frame.assign(task=task.name)[
                ["id", "text", "label", "pred", "confidence", "task"] + [f"prob_{lab}" for lab in all_labels]
            ]
        )
    return accuracies, pd.concat(frames, ignore_index=True)


def run_sequence(
    config: ContinualConfig, tasks: list[Task], run: TaskRun | None = None, stop: threading.Event | None = None, on_step=None
) -> ContinualResult:
    """Train on the tasks in order with the strategy, evaluating every task after every step.

    on_step(result, step, trainer, model) is called after each step (the CLI saves the step's model and runs there)."""
    import torch
    from transformers import DataCollatorWithPadding, PrinterCallback
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    stop = stop or threading.Event()
    fconfig = config.finetune_config()
    device = models.choose_device(config.device)
    tokenizer = models.load_tokenizer(config.model)
    collator = DataCollatorWithPadding(tokenizer)
    space = label_space(tasks)
    unit_mask = torch.zeros(len(tasks), len(space.units), dtype=torch.bool)
    for k, units in enumerate(space.task_units):
        unit_mask[k, units] = True

    initial_model = finetune.build_model(fconfig, space.units, "cpu")  # seeded: every strategy starts from the same weights
    initial, _ = evaluate_tasks([initial_model] * len(tasks), tokenizer, tasks, space, config.max_length)
    result = ContinualResult(tasks, space, initial)
    lora = config.strategy == "lora-per-task"
    task_models: list = []  # lora-per-task: the model (adapter and head) of each task trained so far
    ewc_terms: list[dict] = []
    model = initial_model
    trainer_class = continual_trainer_class()
    rng = np.random.default_rng(config.seed)
    for i, task in enumerate(tasks):
        if stop.is_set():
            result.cancelled = True
            return result
        rows = task.train.assign(task=i)
        if config.strategy == "replay" and i:
            earlier = [t.train.assign(task=k) for k, t in enumerate(tasks[:i])]
            rows = pd.concat(
                [rows]
                + [e.iloc[np.sort(rng.permutation(len(e))[: max(1, round(config.replay_share * len(e)))])] for e in earlier],
                ignore_index=True,
            )
        if lora:  # a fresh adapter and head on the frozen body (the initial model stays untouched for tasks not yet trained)
            model = finetune.build_model(fconfig, space.units, "cpu")
        train_set = encode_rows(tokenizer, rows, space, tasks, config.max_length)
        if run is not None:
            run.task = i + 1
            run.set_status("running", task=i + 1, tasks=len(tasks), train_rows=len(rows))
        callback = make_progress_callback(run, stop, 0.0, False, desc=f"task {i + 1} of {len(tasks)} ({task.name})")
        workdir = tempfile.mkdtemp(prefix="pft-continual-")
        try:
            args = training_arguments(
                fconfig, workdir, len(train_set), device, count_parameters(model).total, remove_unused_columns=False
            )  # keeps task_id, which the model's forward does not take
            trainer = trainer_class(
                model=model,
                args=args,
                data_collator=collator,
                train_dataset=train_set,
                processing_class=tokenizer,
                callbacks=[callback],
                unit_mask=unit_mask,
                ewc_terms=list(ewc_terms) if config.strategy == "ewc" else (),
                ewc_lambda=config.ewc_lambda,
            )
            trainer.remove_callback(PrinterCallback)
            trainer.train()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if callback.stopped_by == "cancelled" or stop.is_set():
            result.cancelled = True
            return result
        model = trainer.model
        if lora:
            task_models.append(model)
        if config.strategy == "ewc" and i < len(tasks) - 1:
            fisher = fisher_diagonal(
                model,
                encode_rows(tokenizer, task.train.assign(task=i), space, tasks, config.max_length),
                collator,
                unit_mask,
                config.fisher_examples,
                config.seed + i,
            )
            ewc_terms = [consolidate(ewc_terms[0] if ewc_terms else None, fisher)]  # one term, not one per finished task
        # lora-per-task: each task's own adapter; for tasks not trained yet, an untrained adapter (LoRA B = 0),
        # i.e. the initial model
        scorers = task_models + [initial_model] * (len(tasks) - i - 1) if lora else [model] * len(tasks)
        accuracies, predictions = evaluate_tasks(scorers, tokenizer, tasks, space, config.max_length)
        result.matrix.append(accuracies)
        result.step_predictions.append(predictions)
        if on_step is not None:
            on_step(result, i, trainer, model)
    return result


# ---- the run folder ------------------------------------------------------------------------------


def step_run_name(name: str, step: int) -> str:
    """The sibling run that holds step `step` (1-based) as an ordinary run Compare can load."""
    return f"{name}.step{step}"


def step_metrics(result: ContinualResult, step: int) -> dict:
    """metrics.json of a step (0-based): accuracy and macro-F1 over every task's evaluation rows, plus the per-task row."""
    preds = result.step_predictions[step]
    labels = list(dict.fromkeys(lab for t in result.tasks for lab in t.labels))
    m = evaluate.classification_metrics(list(preds["label"]), list(preds["pred"]), labels)
    m.update(step=step + 1, task_accuracy=dict(zip([t.name for t in result.tasks], result.matrix[step], strict=True)))
    return m


def save_step(run: RunDir, config: ContinualConfig, run_config: dict, result: ContinualResult, step: int, trainer) -> None:
    """After step `step` (0-based): its model into steps/<step+1>/model, a sibling run with its predictions, continual.json."""
    classifier.save_model(
        trainer,
        trainer.processing_class,
        result.space.units,
        config.finetune_config(),
        run.path / "steps" / str(step + 1) / "model",
    )
    sibling = RunDir(run.path.parent / step_run_name(run.name, step + 1))
    sibling.create(
        {
            **run_config,
            "kind": "continual-step",
            "continual_run": run.name,
            "step": step + 1,
            "model_path": str(run.path / "steps" / str(step + 1) / "model"),
        }
    )
    finish_with_metrics(sibling, step_metrics(result, step), result.step_predictions[step])
    run.write("continual.json", result.summary(config))


def load_summary(path: str | Path) -> dict | None:
    """continual.json of a run folder, or None."""
    try:
        obj = json.loads((Path(path) / "continual.json").read_text(encoding="utf-8"))
        return obj if isinstance(obj, dict) else None
    except (OSError, ValueError):
        return None


def matrix_frame(summary: dict) -> pd.DataFrame:
    """The accuracy matrix in long form: step (1-based, 0 = before training), task, accuracy."""
    tasks = summary["tasks"]
    rows = [
        {"step": 0, "after": "initial", "task": f"{j + 1}. {t}", "accuracy": a}
        for j, (t, a) in enumerate(zip(tasks, summary["initial"], strict=True))
    ]
    for i, row in enumerate(summary["matrix"]):
        rows += [
            {"step": i + 1, "after": f"{i + 1}. {tasks[i]}", "task": f"{j + 1}. {t}", "accuracy": a}
            for j, (t, a) in enumerate(zip(tasks, row, strict=True))
        ]
    return pd.DataFrame(rows)


def sequence_key(summary: dict) -> str:
    """What makes two continual runs comparable: the same training and evaluation rows, task by task, in order."""
    return "|".join(f"{t.get('train_sha256', '')[:12]}/{t.get('eval_sha256', '')[:12]}" for t in summary.get("task_details", []))


def strategies_frame(run_paths: list[str | Path]) -> pd.DataFrame:
    """One row per finished continual run: run, strategy, tasks, average accuracy, BWT, FWT and final accuracy per task."""
    rows = []
    for p in run_paths:
        s = load_summary(p)
        if not s or s.get("average_accuracy") is None:
            continue
        rows.append(
            {
                "run": Path(p).name,
                "strategy": s["strategy"],
                "sequence": " → ".join(s["tasks"]),
                "sequence_key": sequence_key(s),
                "average_accuracy": s["average_accuracy"],
                "bwt": s["bwt"],
                "fwt": s["fwt"],
                **{f"{j + 1}. {t}": a for j, (t, a) in enumerate(zip(s["tasks"], s["matrix"][-1], strict=True))},
            }
        )
    return pd.DataFrame(rows)
