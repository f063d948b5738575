"""What every fine-tuning method shares: the config, the result, the method record and registry, the progress callback,
and one TrainingArguments builder (core.training.finetune dispatches to the methods; the method modules import this one)."""

from __future__ import annotations

import importlib.util
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from core import distributed, models
from core.errors import UserError
from core.prompting import parse_label_words
from core.runs import RunDir
from core.settings import SEED, check_fields, device_name, number, setting, split_list

MIXED_PRECISION_MIN_PARAMS = 100_000_000  # below this, autocast costs more than it saves (MiniLM on an H200: 4x slower)
DEV_CHOICES = ("auto", "holdout", "eval", "none")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
POOLINGS = (
    "auto",
    "mean",
    "cls",
)  # auto: mean for sentence-transformer encoders (how they were trained), else the model's own head

REPORT_TO = ("none", "tensorboard", "mlflow")  # Trainer integrations a run may log to (optional packages)
STEPS_OR_EPOCH = "evaluate the dev set every 'epoch' or every N steps (a number)"


@dataclass(frozen=True)
class Method:
    """One fine-tuning method: what it can train, how, and how the CLI, the pages and search present it.

    train(config, train_frame, dev_frame, eval_frame, label_names, run=None, stop=None, work_dir=None, on_model_ready=None)
    returns a FinetuneResult; a method without an in-training dev set ignores dev_frame (work_dir: the checkpoint folder)."""

    name: str
    train: Callable[..., FinetuneResult]
    caption: str  # one line under its name on the Fine-tune page
    fits: str = "any"  # the models it trains: "encoder", "decoder" or "any"
    frozen: bool = False  # no gradient training: no learning rate, epochs or batches
    shardable: bool = False  # runs under torchrun (the Trainer's DDP, evaluated through the classifier)
    default_lr: float | None = None  # the peak rate when --lr is not given (None: frozen)
    # What `python -m core search` (core/search.py) tunes, keyed by FinetuneConfig field: a list is one of its values
    # ("query+value": several modules), {"low", "high"} a range ("log": log-uniform, "int": whole numbers); empty: nothing
    search_space: dict = field(default_factory=dict)

    def fits_role(self, role: str) -> bool:
        """Whether it can train a model of this role ("encoder" | "decoder")."""
        return self.fits in ("any", role)


def rate_text(lr: float) -> str:
    """A learning rate as help texts write it: 1e-4, 5e-4, 2e-5."""
    return f"{lr:.0e}".replace("e-0", "e-")


# Every method by name: the one list the config, CLI, pages, search, efficiency and continual read. core.training.finetune
# fills it (a method's record sits there, its code in a module of its own); this module cannot: the methods import it.
METHODS: dict[str, Method] = {}


def eval_every(text: str) -> str:
    """--eval-every: 'epoch' or a whole number of steps (kept as text; the config turns N into eval_strategy 'steps')."""
    every = str(text).strip().lower()
    if every not in ("epoch", "steps") and not (every.isdigit() and int(every) >= 1):
        raise UserError(f"--eval-every must be 'epoch' or a number of steps (got '{str(text)[:30]}').")
    return every


@dataclass
class FinetuneConfig:
    """Everything a fine-tuning run depends on; its fields' metadata make the CLI flags and the page form's defaults."""

    model: str = setting(models.ENCODER, "--model", help="bundled model (minilm, smollm2), Hugging Face id or local folder")
    method: str = setting(
        "full",
        "--method",
        choices=METHODS,
        help="what is trained: full, head (linear probe), bitfit, lora, adapter (Houlsby bottlenecks); logreg / knn on frozen "
        "mean-pooled embeddings (scikit-learn, seconds); setfit (contrastive body + logreg head; --epochs counts passes "
        "over 40 pairs per example); on a decoder: prompt-tuning (soft prompt) and lora-lm (LoRA), both trained with "
        "the LM loss on the label word after the zero-shot prompt",
    )
    epochs: float = setting(
        3.0, "--epochs", type=number(float, 0, 100, above=True), help="passes over the training rows (fractions allowed)"
    )
    lr: float | None = setting(
        None, "--lr", type=number(float, 0, 1, above=True, below=True), help="peak learning rate (default: the method's own)"
    )
    batch_size: int = setting(16, "--batch-size", type=number(int, 1, 4096), help="examples per step, per device")
    weight_decay: float = setting(
        0.01,
        "--weight-decay",
        type=number(float, 0, 1, below=True),
        help="AdamW decoupled decay (Trainer skips biases and norms)",
    )
    warmup_ratio: float = setting(
        0.1, "--warmup-ratio", type=number(float, 0, 1, below=True), help="share of steps with linear warm-up"
    )
    eval_strategy: str = setting(
        "epoch", "--eval-every", type=eval_every, help=STEPS_OR_EPOCH
    )  # "epoch", or "steps" (every eval_steps)
    eval_steps: int = setting(50, type=number(int, 1))  # set by --eval-every N, or by a --config file
    early_stopping_patience: int = setting(
        2, "--patience", type=number(int), help="early stopping patience on dev macro-F1 (0: off)"
    )
    max_train_examples: int = setting(
        0, "--max-train-examples", type=number(int), help="use at most N training rows, a seeded sample (0: all)"
    )
    max_train_seconds: float = setting(
        0.0, "--max-train-seconds", type=number(float), help="stop training after S seconds (0: no limit)"
    )
    max_length: int = setting(128, "--max-length", type=number(int, 8, 8192), help="tokens per text; longer texts are truncated")
    dev: str = setting(
        "auto",
        "--dev",
        choices=DEV_CHOICES,
        help="in-training eval set: auto = a sample's validation split, else 10%% of train; holdout = 10%% of train; "
        "eval = the eval split; none",
    )
    lora_r: int = setting(8, "--lora-r", type=number(int, 1), help="LoRA rank")
    lora_alpha: float = setting(
        16.0, "--lora-alpha", type=number(float, 0, above=True), help="LoRA scaling numerator (scale = alpha / r)"
    )
    lora_dropout: float = setting(0.1, "--lora-dropout", type=number(float, 0, 1, below=True), help="LoRA dropout")
    lora_target_modules: list[str] = setting(
        [],
        "--lora-targets",
        nargs="+",
        metavar="MODULE",
        help="module names, e.g. query value (default: peft's choice for the model)",
    )
    virtual_tokens: int = setting(
        20, "--virtual-tokens", type=number(int, 1, 512), help="prompt-tuning: soft-prompt length in tokens"
    )
    label_words: dict[str, str] = setting(
        {},
        "--label-words",
        nargs="+",
        action="extend",
        metavar="LABEL=WORD",
        help="prompt-tuning and lora-lm: the word the model learns to answer for a label (others say their name)",
    )
    adapter_reduction: int = setting(
        16,
        "--adapter-reduction",
        type=number(int, 1, 1024),
        help="adapter method: hidden size / bottleneck size (16 on MiniLM: 384 -> 24 -> 384)",
    )
    pooling: str = setting(
        "auto",
        "--pooling",
        choices=POOLINGS,
        help="classify from mean-pooled token states (auto: for sentence-transformer encoders such as minilm) "
        "or the model's own head (cls)",
    )
    seed: int = setting(42, "--seed", type=SEED)
    precision: str = setting(
        "auto", "--precision", choices=PRECISIONS, help="auto: bf16 (or fp16) on CUDA for models of 100M+ parameters, else fp32"
    )
    device: str = setting("auto", "--device", type=device_name, help="auto, cpu, cuda or mps")
    report_to: str = setting(
        "none",
        "--report-to",
        choices=REPORT_TO,
        help="also log training to TensorBoard or MLflow (optional packages; without them training goes on without it)",
    )

    def __post_init__(self):
        self.method = str(self.method).lower()
        every = eval_every(self.eval_strategy)  # --eval-every N: every N steps
        self.eval_strategy, self.eval_steps = ("steps", int(every)) if every.isdigit() else (every, self.eval_steps)
        self.lora_target_modules = split_list(self.lora_target_modules)  # the older comma form (query,value) too
        self.label_words = parse_label_words(self.label_words)
        check_fields(self)
        if self.label_words and METHODS[self.method].fits != "decoder":
            raise UserError(
                f"Label words are what prompt-tuning and lora-lm learn to answer; "
                f"{self.method} trains a classifier and takes none."
            )

    @property
    def learning_rate(self) -> float | None:
        """The peak learning rate actually used (None for methods without gradient training)."""
        method = METHODS[self.method]
        if method.frozen:
            return None
        return float(self.lr) if self.lr is not None else method.default_lr

    def to_dict(self) -> dict:
        """Hyperparameters for config.json (the learning rate resolved)."""
        return {**asdict(self), "lr": self.learning_rate}


def integration(config: FinetuneConfig, run: RunDir | None = None) -> str:
    """What the Trainer reports to: config.report_to when its package is installed (TensorBoard logs go into the run
    folder), else 'none', said in one sentence; training never fails for want of a logger."""
    if config.report_to == "none":
        return "none"
    if importlib.util.find_spec(config.report_to) is None:
        print(
            f"note: {config.report_to} is not installed; training goes on without it (pip install {config.report_to}).",
            flush=True,
        )
        return "none"
    if config.report_to == "tensorboard" and run is not None:
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(run.path / "tensorboard"))
    return config.report_to


@dataclass
class ParameterCount:
    """Trainable and total parameters of a model prepared for a method."""

    trainable: int
    total: int

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def sentence(self) -> str:
        return f"trainable parameters: {self.trainable:,} of {self.total:,} ({100 * self.share:.2f}%)"


@dataclass
class FinetuneResult:
    """What a finished (or stopped) training returns: metrics.json content, the predictions frame, and why it stopped."""

    metrics: dict
    predictions: pd.DataFrame
    stopped_by: str  # epochs | early_stopping | max_train_seconds | cancelled
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)
    model: object = None  # the trained model (best checkpoint), for callers that keep using it in-process


def with_lora(model, config: FinetuneConfig, task_type: str):
    """model wrapped in peft LoRA adapters from the config's rank, alpha, dropout and target modules (task_type: peft's
    TaskType name, SEQ_CLS or CAUSAL_LM); a model peft cannot adapt is one sentence."""
    from peft import LoraConfig, TaskType, get_peft_model

    targets = config.lora_target_modules or None
    lora = LoraConfig(
        task_type=TaskType[task_type],
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as e:
        raise UserError(f"LoRA could not be applied to this model: {str(e).splitlines()[0][:200]}") from e


def count_parameters(model) -> ParameterCount:
    """Trainable and total parameters (shared tensors counted once)."""
    seen: dict[int, tuple[int, bool]] = {}
    for p in model.parameters():
        seen[id(p)] = (p.numel(), p.requires_grad)
    return ParameterCount(trainable=sum(n for n, g in seen.values() if g), total=sum(n for n, _ in seen.values()))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict_probs(model, tokenizer, texts: list[str], batch_size: int = 32, max_length: int = 128) -> np.ndarray:
    """Class probabilities (N, C) for texts, batched by length with dynamic padding."""
    import torch

    order = np.argsort([len(t) for t in texts])
    probs = np.zeros((len(texts), model.config.num_labels))
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits  # (B, C)
            probs[idx] = softmax(logits.float().cpu().numpy())
    return probs


# ---- training ----


def _any_rank(flag: bool) -> bool:
    """True when flag is true on any process (so all DDP ranks stop at the same step)."""
    if distributed.shard()[1] == 1:
        return flag
    return bool(distributed.all_sum(np.array([1.0 if flag else 0.0]))[0] > 0)


def make_progress_callback(run: RunDir | None, stop: threading.Event, max_seconds: float, has_dev: bool, desc: str = "training"):
    """A TrainerCallback that logs history.jsonl and status.json (rank 0) and stops on cancel or time budget; on a
    terminal it also draws bars of the examples trained and evaluated (core.progress)."""
    from transformers import TrainerCallback

    from core import progress

    class RunProgressCallback(TrainerCallback):
        """Writes one history line per log, progress/ETA to status.json, and ends training on request."""

        def __init__(self):
            self.started = time.time()
            self.stopped_by = "epochs"
            self.reporter = progress.Reporter()  # made at on_train_begin: the bar counts examples, status.json steps
            self.eval_bar = None
            self.per_step = 1  # training examples per optimizer step, over all processes
            self.examples = 0

        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            self.started = time.time()
            if state.is_world_process_zero:
                self.per_step = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
                self.examples = state.max_steps * self.per_step
                rows = (
                    len(train_dataloader.dataset)
                    if train_dataloader is not None and hasattr(train_dataloader, "dataset")
                    else None
                )
                if rows and args.max_steps <= 0:  # epochs decide: the last batch of an epoch may be short
                    self.examples = min(self.examples, math.ceil(rows * args.num_train_epochs))
                self.reporter = progress.Reporter(run, desc, self.examples, budget_seconds=max_seconds, every_seconds=1.0)
            self._status(state, force=True)

        def on_train_end(self, args, state, control, **kwargs):
            self._status(state, force=True)
            self.reporter.close()

        def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
            if not state.is_world_process_zero or eval_dataloader is None:
                return
            if self.eval_bar is None:
                self.eval_bar, self.eval_steps = progress.bar("evaluating", len(eval_dataloader.dataset)), 0
            self.eval_steps += 1  # batches are full but the last
            progress.advance(self.eval_bar, min(self.eval_bar.total, self.eval_steps * args.eval_batch_size * args.world_size))

        def on_evaluate(self, args, state, control, **kwargs):
            if self.eval_bar is not None:
                self.eval_bar.close()
                self.eval_bar = None

        on_predict = on_evaluate

        def on_log(self, args, state, control, logs=None, **kwargs):
            if run is None or not state.is_world_process_zero or not logs:
                return
            record = {"step": state.global_step, "epoch": round(float(state.epoch or 0), 4)}
            record.update(
                {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and k != "epoch" and math.isfinite(v)}
            )
            run.append_history(record)

        def on_step_end(self, args, state, control, **kwargs):
            over_time = bool(max_seconds) and time.time() - self.started >= max_seconds
            if _any_rank(stop.is_set() or over_time):
                control.should_training_stop = True
                if stop.is_set() or not over_time:
                    self.stopped_by = "cancelled"
                else:
                    self.stopped_by = "max_train_seconds"
                    control.should_evaluate = control.should_save = has_dev  # a last checkpoint competes for "best"
            self._status(state)

        def _status(self, state, force: bool = False):
            """Optimizer steps done of all (status.json, at most once a second) and examples trained (the bar)."""
            self.reporter(
                int(state.global_step),
                max(int(state.max_steps or 0), 1),
                shown=min(state.global_step * self.per_step, self.examples),
                force=force,
            )

    return RunProgressCallback()


def version_flags(config: FinetuneConfig) -> dict:
    """TrainingArguments whose names changed across transformers 5.x: length-grouped batches and the warm-up ratio."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    flags: dict = {}
    if "train_sampling_strategy" in names:
        flags["train_sampling_strategy"] = "group_by_length"  # batches of similar length: little padding
    else:
        flags["group_by_length"] = True
    if "warmup_ratio" in names:
        flags["warmup_ratio"] = config.warmup_ratio
    else:
        flags["warmup_steps"] = float(config.warmup_ratio) if config.warmup_ratio else 0  # a float below 1 is a ratio
    return flags


def precision_flags(config: FinetuneConfig, device: str, n_params: int = 0) -> dict:
    """bf16/fp16 mixed precision flags for TrainingArguments (auto: on CUDA, for models of 100M parameters or more)."""
    import torch

    choice = config.precision
    if choice == "auto":
        if device != "cuda" or n_params < MIXED_PRECISION_MIN_PARAMS:
            return {}
        choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if choice in ("fp16", "bf16") and device != "cuda":
        raise UserError(f"{choice} training needs a CUDA GPU; this run is on {device}.")
    return {"bf16": choice == "bf16", "fp16": choice == "fp16"}


def training_arguments(
    config: FinetuneConfig,
    output_dir: str | os.PathLike,
    n_rows: int,
    device: str,
    n_params: int,
    run: RunDir | None = None,
    has_dev: bool = False,
    **extra,
):
    """The TrainingArguments of every Trainer-trained method: linear decay from the config's rate with AdamW, seeded, a
    history line about every 25th step, the dev set (if any) scored and checkpointed every epoch or N steps with the best
    macro-F1 kept, logging to config.report_to where installed; extra overrides (e.g. remove_unused_columns)."""
    from transformers import TrainingArguments

    world = distributed.world_size()
    total_steps = max(1, math.ceil(math.ceil(n_rows / (config.batch_size * world)) * config.epochs))
    strategy = config.eval_strategy if has_dev else "no"
    every = config.eval_steps if strategy == "steps" else None
    best = {"load_best_model_at_end": True, "metric_for_best_model": "macro_f1", "greater_is_better": True} if has_dev else {}
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=max(config.batch_size, 32),
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        optim="adamw_torch",
        eval_strategy=strategy,
        eval_steps=every,
        save_strategy=strategy,
        save_steps=every,
        save_total_limit=1,
        save_only_model=True,  # no optimizer state: checkpoints exist only to keep the best weights
        logging_strategy="steps",
        logging_steps=max(1, min(50, total_steps // 25)),
        logging_first_step=True,
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=device == "cpu",
        ddp_backend="gloo" if world > 1 and device != "cuda" else None,
        report_to=integration(config, run),
        disable_tqdm=True,
        dataloader_num_workers=0,
        label_names=["labels"],
        **best,
        **precision_flags(config, device, n_params),
        **version_flags(config),
        **extra,
    )
