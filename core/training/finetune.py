"""Fine-tuning (full, head-only, BitFit, LoRA) on the HF Trainer, with a callback that writes history.jsonl and status.json."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import data, distributed, models
from core.comparison import evaluate
from core.errors import UserError
from core.prompting import parse_label_words
from core.runs import RunDir
from core.settings import SEED, device_name, number, setting, split_list

METHODS = ("full", "head", "bitfit", "lora", "adapter", "logreg", "knn", "setfit", "prompt-tuning", "lora-lm")
ENCODER_ONLY = ("adapter", "logreg", "knn", "setfit")  # mean-pooled sentence embeddings: need an encoder
DECODER_ONLY = ("prompt-tuning", "lora-lm")  # trained to say the label word after the prompt: need a causal LM
SHARDED_METHODS = ("full", "head", "bitfit", "lora", "adapter")  # trained by the Trainer's DDP, evaluated through the classifier: torchrun-able
FROZEN_METHODS = ("logreg", "knn")  # no gradient training: no learning rate, epochs or batches
# best of sweeps on SST-2 with MiniLM (bench/methods.py); lora: 5,000 rows, 3 epochs, mean-pooled head: 5e-4 0.866, 1e-3 0.875
DEFAULT_LR = {"full": 1e-4, "head": 3e-2, "bitfit": 3e-3, "lora": 1e-3, "adapter": 1e-3,
              "setfit": 2e-5,  # SetFit's own default body learning rate
              "prompt-tuning": 3e-2, "lora-lm": 5e-4}  # peft's prompt-tuning examples; LoRA's rate for the LM loss
# What `python -m core search` (core/search.py) tunes per method, keyed by FinetuneConfig field: a list is one of its
# values ("query+value": several modules), {"low", "high"} a range ("log": log-uniform, "int": whole numbers).
# logreg's C and SetFit's iterations are constants, not settings, so they are not searched; knn has nothing to tune.
EPOCHS_SPACE = {"low": 1, "high": 4, "int": True}
BATCH_SPACE = [8, 16, 32]
SEARCH_SPACE = {
    "full": {"lr": {"low": 1e-5, "high": 3e-4, "log": True}, "epochs": EPOCHS_SPACE, "batch_size": BATCH_SPACE},
    "head": {"lr": {"low": 1e-3, "high": 1e-1, "log": True}, "epochs": EPOCHS_SPACE, "batch_size": BATCH_SPACE},
    "bitfit": {"lr": {"low": 3e-4, "high": 3e-2, "log": True}, "epochs": EPOCHS_SPACE, "batch_size": BATCH_SPACE},
    "lora": {"lr": {"low": 1e-4, "high": 5e-3, "log": True}, "epochs": EPOCHS_SPACE, "batch_size": BATCH_SPACE,
             "lora_r": [4, 8, 16, 32], "lora_alpha": [8, 16, 32],
             "lora_target_modules": ["query+value", "query+key+value", "query+key+value+dense"]},
    "adapter": {"lr": {"low": 1e-4, "high": 5e-3, "log": True}, "epochs": EPOCHS_SPACE, "batch_size": BATCH_SPACE,
                "adapter_reduction": [8, 16, 32, 64]},
    "logreg": {},
    "knn": {},
    "setfit": {"lr": {"low": 5e-6, "high": 1e-4, "log": True}, "epochs": {"low": 1, "high": 3, "int": True}, "batch_size": BATCH_SPACE},
    "prompt-tuning": {"lr": {"low": 3e-3, "high": 1e-1, "log": True}, "epochs": {"low": 1, "high": 3, "int": True},
                      "virtual_tokens": [10, 20, 40]},
    "lora-lm": {"lr": {"low": 1e-4, "high": 2e-3, "log": True}, "epochs": {"low": 1, "high": 3, "int": True},
                "lora_r": [4, 8, 16], "lora_alpha": [8, 16, 32]},
}
MIXED_PRECISION_MIN_PARAMS = 100_000_000  # below this, autocast costs more than it saves (MiniLM on an H200: 4x slower)
DEV_CHOICES = ("auto", "holdout", "eval", "none")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
# The Fine-tune page's default time budget. The default run (MiniLM, full, 3 epochs) takes 340-362 CPU-seconds on each
# bundled sample, about 3-4 minutes on a 2-core laptop; 600 s lets all three finish with room to spare.
PAGE_TIME_BUDGET_SECONDS = 600
POOLINGS = ("auto", "mean", "cls")  # auto: mean for sentence-transformer encoders (how they were trained), else the model's own head


REPORT_TO = ("none", "tensorboard", "mlflow")  # Trainer integrations a run may log to (optional packages)
STEPS_OR_EPOCH = "evaluate the dev set every 'epoch' or every N steps (a number)"


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
    method: str = setting("full", "--method", choices=METHODS,
                          help="what is trained: full, head (linear probe), bitfit, lora, adapter (Houlsby bottlenecks); logreg / knn on frozen "
                               "mean-pooled embeddings (scikit-learn, seconds); setfit (contrastive body + logreg head; --epochs counts passes "
                               "over 40 pairs per example); on a decoder: prompt-tuning (soft prompt) and lora-lm (LoRA), both trained with "
                               "the LM loss on the label word after the zero-shot prompt")
    epochs: float = setting(3.0, "--epochs", type=number(float, 0, 100), help="passes over the training rows (fractions allowed)")
    lr: float | None = setting(None, "--lr", type=number(float),
                               help="peak learning rate (default: full 1e-4, head 3e-2, bitfit 3e-3, lora 1e-3, adapter 1e-3, setfit 2e-5, "
                                    "prompt-tuning 3e-2, lora-lm 5e-4; logreg/knn: none)")
    batch_size: int = setting(16, "--batch-size", type=number(int, 1, 4096), help="examples per step, per device")
    weight_decay: float = setting(0.01, "--weight-decay", type=number(float), help="AdamW decoupled decay (Trainer skips biases and norms)")
    warmup_ratio: float = setting(0.1, "--warmup-ratio", type=number(float), help="share of steps with linear warm-up")
    eval_strategy: str = setting("epoch", "--eval-every", type=eval_every, help=STEPS_OR_EPOCH)  # "epoch", or "steps" (every eval_steps)
    eval_steps: int = setting(50, type=number(int, 1))  # set by --eval-every N, or by a --config file
    early_stopping_patience: int = setting(2, "--patience", type=number(int), help="early stopping patience on dev macro-F1 (0: off)")
    max_train_examples: int = setting(0, "--max-train-examples", type=number(int), help="use at most N training rows, a seeded sample (0: all)")
    max_train_seconds: float = setting(0.0, "--max-train-seconds", type=number(float), help="stop training after S seconds (0: no limit)")
    max_length: int = setting(128, "--max-length", type=number(int, 8, 8192), help="tokens per text; longer texts are truncated")
    dev: str = setting("auto", "--dev", choices=DEV_CHOICES,
                       help="in-training eval set: auto = a sample's validation split, else 10%% of train; holdout = 10%% of train; "
                            "eval = the eval split; none")
    lora_r: int = setting(8, "--lora-r", type=number(int, 1), help="LoRA rank")
    lora_alpha: float = setting(16.0, "--lora-alpha", type=number(float), help="LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = setting(0.1, "--lora-dropout", type=number(float), help="LoRA dropout")
    lora_target_modules: list[str] = setting([], "--lora-targets", nargs="+", metavar="MODULE",
                                             help="module names, e.g. query value (default: peft's choice for the model)")
    virtual_tokens: int = setting(20, "--virtual-tokens", type=number(int, 1, 512), help="prompt-tuning: soft-prompt length in tokens")
    label_words: dict[str, str] = setting({}, "--label-words", nargs="+", action="extend", metavar="LABEL=WORD",
                                          help="prompt-tuning and lora-lm: the word the model learns to answer for a label (others say their name)")
    adapter_reduction: int = setting(16, "--adapter-reduction", type=number(int, 1, 1024),
                                     help="adapter method: hidden size / bottleneck size (16 on MiniLM: 384 -> 24 -> 384)")
    pooling: str = setting("auto", "--pooling", choices=POOLINGS,
                           help="classify from mean-pooled token states (auto: for sentence-transformer encoders such as minilm) "
                                "or the model's own head (cls)")
    seed: int = setting(42, "--seed", type=SEED)
    precision: str = setting("auto", "--precision", choices=PRECISIONS,
                             help="auto: bf16 (or fp16) on CUDA for models of 100M+ parameters, else fp32")
    device: str = setting("auto", "--device", type=device_name, help="auto, cpu, cuda or mps")
    report_to: str = setting("none", "--report-to", choices=REPORT_TO,
                             help="also log training to TensorBoard or MLflow (optional packages; without them training goes on without it)")

    def __post_init__(self):
        self.method = str(self.method).lower()
        every = eval_every(self.eval_strategy)  # --eval-every N: every N steps
        self.eval_strategy, self.eval_steps = ("steps", int(every)) if every.isdigit() else (every, self.eval_steps)
        self.lora_target_modules = split_list(self.lora_target_modules)  # the older comma form (query,value) too
        self.label_words = parse_label_words(self.label_words)
        if self.label_words and self.method not in DECODER_ONLY:
            raise UserError(f"Label words are what prompt-tuning and lora-lm learn to answer; {self.method} trains a classifier and takes none.")
        if self.method not in METHODS:
            raise UserError(f"Unknown method '{self.method}'; choose one of: {', '.join(METHODS)}.")
        if not (0 < float(self.epochs) <= 100):
            raise UserError(f"--epochs must be above 0 and at most 100 (got {self.epochs}).")
        if self.lr is not None and not (0 < float(self.lr) < 1):
            raise UserError(f"--lr must be a positive number below 1 (got {self.lr}).")
        if not (1 <= int(self.batch_size) <= 4096):
            raise UserError(f"--batch-size must be between 1 and 4096 (got {self.batch_size}).")
        if not (0 <= self.weight_decay < 1) or not (0 <= self.warmup_ratio < 1):
            raise UserError("Weight decay and warm-up ratio must each be at least 0 and below 1.")
        if self.eval_strategy not in ("epoch", "steps") or int(self.eval_steps) < 1:
            raise UserError("Evaluation runs every 'epoch' or every N 'steps' (N at least 1).")
        if self.early_stopping_patience < 0 or self.max_train_examples < 0 or self.max_train_seconds < 0:
            raise UserError("Patience, --max-train-examples and --max-train-seconds cannot be negative.")
        if not (8 <= int(self.max_length) <= 8192):
            raise UserError(f"--max-length must be between 8 and 8192 tokens (got {self.max_length}).")
        if self.dev not in DEV_CHOICES:
            raise UserError(f"Unknown dev set '{self.dev}'; choose one of: {', '.join(DEV_CHOICES)}.")
        if self.lora_r < 1 or self.lora_alpha <= 0 or not (0 <= self.lora_dropout < 1):
            raise UserError("LoRA needs a rank of at least 1, a positive alpha, and a dropout in [0, 1).")
        if not (1 <= int(self.virtual_tokens) <= 512):
            raise UserError(f"--virtual-tokens must be between 1 and 512 (got {self.virtual_tokens}).")
        if not (1 <= int(self.adapter_reduction) <= 1024):
            raise UserError(f"--adapter-reduction must be between 1 and 1024 (got {self.adapter_reduction}).")
        if self.pooling not in POOLINGS:
            raise UserError(f"Unknown pooling '{self.pooling}'; choose one of: {', '.join(POOLINGS)}.")
        if self.precision not in PRECISIONS:
            raise UserError(f"Unknown precision '{self.precision}'; choose one of: {', '.join(PRECISIONS)}.")
        if self.report_to not in REPORT_TO:
            raise UserError(f"Unknown --report-to '{self.report_to}'; choose one of: {', '.join(REPORT_TO)}.")

    @property
    def learning_rate(self) -> float | None:
        """The peak learning rate actually used (None for methods without gradient training)."""
        if self.method in FROZEN_METHODS:
            return None
        return float(self.lr) if self.lr is not None else DEFAULT_LR[self.method]

    def to_dict(self) -> dict:
        """Hyperparameters for config.json (the learning rate resolved)."""
        return {**asdict(self), "lr": self.learning_rate}


def integration(config: FinetuneConfig, run: RunDir | None = None) -> str:
    """What the Trainer reports to: config.report_to when its package is installed (TensorBoard logs go into the run
    folder), else 'none', said in one sentence; training never fails for want of a logger."""
    if config.report_to == "none":
        return "none"
    if importlib.util.find_spec(config.report_to) is None:
        print(f"note: {config.report_to} is not installed; training goes on without it (pip install {config.report_to}).", flush=True)
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


# ---- models and methods ----------------------------------------------------------------------


def method_fits(method: str, role: str) -> bool:
    """Whether a method can train a model of this role ("encoder" | "decoder")."""
    return method not in (DECODER_ONLY if role == "encoder" else ENCODER_ONLY)


def check_method_fits(config: FinetuneConfig) -> None:
    """Refuse, in one sentence, a method that cannot train config.model (e.g. SetFit on a decoder)."""
    role = models.describe(config.model).role
    if not method_fits(config.method, role):
        needs = "a decoder (a causal language model such as smollm2)" if role == "encoder" else "an encoder (a sentence encoder such as minilm)"
        article = "an" if role == "encoder" else "a"
        raise UserError(f"Method '{config.method}' needs {needs}, and {config.model} is {article} {role}.")
    models.check_max_length(config.model, config.max_length)
    if config.method in FROZEN_METHODS and (config.device not in ("auto", "cpu") or config.precision not in ("auto", "fp32")):
        raise UserError(f"{config.method} embeds on the CPU in full precision; leave --device and --precision at auto (got "
                        f"{config.device} and {config.precision}).")


def head_parameter_names(model) -> set[str]:
    """Names of the task head's parameters: everything outside the pretrained body (classifier/score, BERT's pooler is body)."""
    prefix = getattr(model, "base_model_prefix", "") + "."
    return {n for n, _ in model.named_parameters() if not n.startswith(prefix)}


def with_lora(model, config: FinetuneConfig, task_type: str):
    """model wrapped in peft LoRA adapters from the config's rank, alpha, dropout and target modules (task_type: peft's
    TaskType name, SEQ_CLS or CAUSAL_LM); a model peft cannot adapt is one sentence."""
    from peft import LoraConfig, TaskType, get_peft_model

    targets = config.lora_target_modules or None
    lora = LoraConfig(task_type=TaskType[task_type], r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=targets)
    try:
        return get_peft_model(model, lora)
    except ValueError as e:
        raise UserError(f"LoRA could not be applied to this model: {str(e).splitlines()[0][:200]}") from e


def apply_method(model, config: FinetuneConfig):
    """Freeze what the method leaves fixed (or wrap in LoRA); returns the model to train."""
    if config.method == "lora":
        return with_lora(model, config, "SEQ_CLS")
    if config.method == "adapter":
        from core.training import adapters

        if not adapters.add_adapters(model.body, config.adapter_reduction):
            raise UserError(f"No attention or feed-forward output projections were found in {config.model} to put adapters after.")
        adapters.mark_trainable(model, model.base_model_prefix)
        return model
    if config.method in ("full", "setfit"):
        for p in model.parameters():
            p.requires_grad = True
        return model
    head = head_parameter_names(model) if config.method != "knn" else set()  # logreg trains what "head" trains
    for name, p in model.named_parameters():
        p.requires_grad = name in head or (config.method == "bitfit" and name.endswith(".bias"))
    return model


def count_parameters(model) -> ParameterCount:
    """Trainable and total parameters (shared tensors counted once)."""
    seen: dict[int, tuple[int, bool]] = {}
    for p in model.parameters():
        seen[id(p)] = (p.numel(), p.requires_grad)
    return ParameterCount(trainable=sum(n for n, g in seen.values() if g), total=sum(n for n, _ in seen.values()))


def uses_mean_pooling(config: FinetuneConfig) -> bool:
    """Whether the classifier reads mean-pooled token states (core.training.pooled) rather than the model's own classification head."""
    from core.training import pooled

    if config.method == "adapter":  # adapters live in core.training.pooled's classifier, whatever the encoder
        return True
    return config.pooling == "mean" or (config.pooling == "auto" and pooled.is_sentence_transformer(config.model))


def build_model(config: FinetuneConfig, label_names: list[str], device: str = "cpu"):
    """A fresh classification model for config.model with the method applied (seeded head)."""
    from transformers import set_seed

    set_seed(config.seed)
    if config.method in DECODER_ONLY:
        from core.training import prompt_learning

        return prompt_learning.build(config, models.load_tokenizer(config.model), device)
    if uses_mean_pooling(config):
        from core.training import pooled

        # unit-length features cap the logits of a freshly initialised head, so gradient-trained heads read the raw mean
        model = pooled.build(config.model, label_names, device, attention="sdpa", normalize=False)
    else:
        model = models.load_for_classification(config.model, label_names, device)
    return apply_method(model, config)


def parameter_counts(config: FinetuneConfig, n_labels: int) -> ParameterCount:
    """Trainable vs total parameters for a config, without training (loads the model on CPU)."""
    return count_parameters(build_model(config, [f"label{i}" for i in range(max(2, n_labels))], "cpu"))


# ---- data ------------------------------------------------------------------------------------


class EncodedTexts:
    """Tokenized texts (no padding; the collator pads each batch) and label ids, as a map-style torch dataset."""

    def __init__(self, encodings: dict[str, list[list[int]]], labels: list[int]):
        self.encodings, self.labels = encodings, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {**{k: v[i] for k, v in self.encodings.items()}, "labels": self.labels[i]}


def encode(tokenizer, frame: pd.DataFrame, label_names: list[str], max_length: int) -> EncodedTexts:
    """Tokenize a split in one batched call (fast tokenizer), truncating to max_length."""
    index = {name: i for i, name in enumerate(label_names)}
    enc = tokenizer(list(frame["text"]), truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    return EncodedTexts({k: enc[k] for k in keys}, [index[lab] for lab in frame["label"]])


def cap_rows(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most n rows, a seeded sample in the original order (n = 0: all)."""
    if not n or n >= len(frame):
        return frame
    return frame.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def choose_dev(config: FinetuneConfig, train_ds: data.Dataset, train_split: str, eval_frame: pd.DataFrame
               ) -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
    """(training rows, in-training dev rows or None, a description of the dev set) for config.dev."""
    train = train_ds.splits[train_split]
    choice = config.dev
    if choice == "auto":
        is_sample = train_ds.source in data.list_samples()
        if is_sample and "validation" in train_ds.splits and train_split != "validation":
            return train, train_ds.splits["validation"], f"{train_ds.name}:validation"
        choice = "holdout" if len(train) >= 20 else "eval"
    if choice == "holdout":
        if len(train) < 10:
            raise UserError(f"The training split has {len(train)} rows, too few to hold 10% out for evaluation; use --dev eval.")
        parts = data.stratified_split(train, {"train": 0.9, "dev": 0.1}, config.seed)
        return parts["train"], parts["dev"], "10% of train held out (stratified)"
    if choice == "eval":
        return train, eval_frame, "the evaluation split (no separate dev set)"
    return train, None, "none"


# ---- training --------------------------------------------------------------------------------


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
                rows = len(train_dataloader.dataset) if train_dataloader is not None and hasattr(train_dataloader, "dataset") else None
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
            record.update({k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and k != "epoch" and math.isfinite(v)})
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
            self.reporter(int(state.global_step), max(int(state.max_steps or 0), 1),
                          shown=min(state.global_step * self.per_step, self.examples), force=force)

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


def ordered_eval_trainer_class():
    """A Trainer whose evaluation keeps the dataset's order (transformers 5 length-groups eval batches too, shuffling predictions)."""
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    class OrderedEvalTrainer(Trainer):
        def _get_eval_sampler(self, eval_dataset):
            return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

    return OrderedEvalTrainer


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


def compute_metrics_for(label_names: list[str]):
    """compute_metrics for the Trainer: accuracy and macro-F1 from logits (what early stopping watches)."""

    def compute(eval_pred) -> dict:
        logits, label_ids = eval_pred.predictions, eval_pred.label_ids
        logits = logits[0] if isinstance(logits, tuple) else logits
        pred = np.asarray(logits).argmax(axis=-1)
        m = evaluate.classification_metrics([label_names[i] for i in label_ids], [label_names[i] for i in pred], label_names)
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    return compute


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train(config: FinetuneConfig, train_frame: pd.DataFrame, dev_frame: pd.DataFrame | None, eval_frame: pd.DataFrame,
          label_names: list[str], run: RunDir | None = None, stop: threading.Event | None = None,
          work_dir: Path | None = None, on_model_ready=None) -> FinetuneResult:
    """Train with the HF Trainer, keep the best dev checkpoint, evaluate on eval_frame, save the model into run/model.

    logreg/knn/setfit train outside the Trainer (core.training.embeddings_clf) and ignore the dev set."""
    import tempfile

    if config.method in FROZEN_METHODS or config.method == "setfit":
        from core.training import embeddings_clf

        if config.report_to != "none":
            print(f"note: {config.method} trains outside the Trainer, so --report-to {config.report_to} logs nothing.", flush=True)
        fit = embeddings_clf.train_setfit if config.method == "setfit" else embeddings_clf.train_frozen
        return fit(config, train_frame, eval_frame, label_names, run, stop, on_model_ready)
    if config.method in DECODER_ONLY:
        from core.training import prompt_learning

        return prompt_learning.train(config, train_frame, eval_frame, label_names, run, stop, on_model_ready)

    import torch
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, PrinterCallback, TrainingArguments
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    stop = stop or threading.Event()
    device = models.choose_device(config.device)
    tokenizer = models.load_tokenizer(config.model)
    model = build_model(config, label_names, "cpu")  # the Trainer moves it to its device
    params = count_parameters(model)
    if on_model_ready is not None:
        on_model_ready(params)
    if stop.is_set():
        return FinetuneResult({}, pd.DataFrame(), "cancelled", cancelled=True)
    train_set = encode(tokenizer, train_frame, label_names, config.max_length)
    dev_set = encode(tokenizer, dev_frame, label_names, config.max_length) if dev_frame is not None and len(dev_frame) else None
    has_dev = dev_set is not None
    strategy = config.eval_strategy if has_dev else "no"
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    # under torchrun every rank must name the same checkpoint folder, so callers pass one
    checkpoints = Path(tempfile.mkdtemp(prefix="pft-ckpt-")) if work_dir is None else Path(work_dir)
    steps_per_epoch = math.ceil(len(train_set) / (config.batch_size * int(os.environ.get("WORLD_SIZE", "1"))))
    total_steps = max(1, math.ceil(steps_per_epoch * config.epochs))
    args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=max(config.batch_size, 32),
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        optim="adamw_torch",
        eval_strategy=strategy,
        eval_steps=config.eval_steps if strategy == "steps" else None,
        save_strategy=strategy,
        save_steps=config.eval_steps if strategy == "steps" else None,
        save_total_limit=1,
        save_only_model=True,  # no optimizer state: checkpoints exist only to keep the best weights
        load_best_model_at_end=has_dev,
        metric_for_best_model="macro_f1" if has_dev else None,
        greater_is_better=True if has_dev else None,
        logging_strategy="steps",
        logging_steps=max(1, min(50, total_steps // 25)),
        logging_first_step=True,
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=device == "cpu",
        ddp_backend="gloo" if ddp and device != "cuda" else None,
        report_to=integration(config, run),
        disable_tqdm=True,
        dataloader_num_workers=0,
        label_names=["labels"],
        **precision_flags(config, device, params.total),
        **version_flags(config),
    )
    OrderedEvalTrainer = ordered_eval_trainer_class()
    callback = make_progress_callback(run, stop, config.max_train_seconds, has_dev)
    callbacks = [callback]
    if has_dev and config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = OrderedEvalTrainer(model=model, args=args, data_collator=DataCollatorWithPadding(tokenizer), train_dataset=train_set,
                      eval_dataset=dev_set, processing_class=tokenizer, compute_metrics=compute_metrics_for(label_names),
                      callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # history.jsonl is the log; stdout stays readable
    try:
        started = time.time()
        train_out = trainer.train()
        train_seconds = time.time() - started
        if callback.stopped_by == "cancelled" or stop.is_set():
            return FinetuneResult({}, pd.DataFrame(), "cancelled", cancelled=True)
        stopped_by = callback.stopped_by
        if stopped_by == "epochs" and trainer.state.global_step < trainer.state.max_steps:
            stopped_by = "early_stopping"
        started = time.time()
        probs = predict_sharded(trainer, tokenizer, list(eval_frame["text"]), config.max_length)  # (N, C)
        eval_seconds = time.time() - started
        n_train_seen = int(train_out.global_step * config.batch_size * int(os.environ.get("WORLD_SIZE", "1")))
        metrics = evaluate.classification_metrics(
            list(eval_frame["label"]), [label_names[i] for i in probs.argmax(axis=1)], label_names)
        metrics.update(
            seconds=round(train_seconds + eval_seconds, 3),
            examples_per_second=round(len(eval_frame) / eval_seconds, 3) if eval_seconds else None,
            train_seconds=round(train_seconds, 3),
            train_examples_per_second=round(min(n_train_seen, len(train_set) * config.epochs) / train_seconds, 3) if train_seconds else None,
            eval_seconds=round(eval_seconds, 3),
            trainable_params=params.trainable,
            total_params=params.total,
            steps=int(train_out.global_step),
            epochs_done=round(float(trainer.state.epoch or 0), 4),
            best_dev_macro_f1=trainer.state.best_metric,
            stopped_by=stopped_by,
            device=device,
            world_size=int(os.environ.get("WORLD_SIZE", "1")),
        )
        predictions = evaluate.predictions_frame(eval_frame["id"], eval_frame["text"], eval_frame["label"], probs, label_names)
        if run is not None and trainer.is_world_process_zero():
            save_model(trainer, tokenizer, label_names, config, run.path / "model")
        if ddp and torch.distributed.is_initialized():
            torch.distributed.barrier()
        return FinetuneResult(metrics, predictions, stopped_by, model=trainer.model)
    finally:
        if distributed.is_main_process():  # checkpoints only served to keep the best weights until the end
            shutil.rmtree(checkpoints, ignore_errors=True)


def predict_sharded(trainer, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    """Class probabilities (N, C) of the trained model; under torchrun each process scores every world-th text and every
    process gets the whole table in the original order, equal to one process scoring them all."""
    rank, world = distributed.shard()
    model = trainer.model.eval()
    with trainer.autocast_smart_context_manager():  # the training's mixed precision, as Trainer.predict would
        part = predict_probs(model, tokenizer, texts[rank::world], trainer.args.per_device_eval_batch_size, max_length)
    if world == 1:
        return part
    whole = np.zeros((len(texts), part.shape[1]))
    whole[rank::world] = part
    return distributed.all_sum(whole)


def save_model(trainer, tokenizer, label_names: list[str], config: FinetuneConfig, path: Path) -> None:
    """Weights as safetensors (for LoRA: the adapter and the head), tokenizer, labels and the base model name."""
    from core.training import pooled

    model = trainer.model
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if isinstance(inner, pooled.PooledClassifier):  # mean-pooled head: body (LoRA merged into a copy) + head.safetensors
        from core.training import embeddings_clf

        if hasattr(model, "merge_and_unload"):
            import copy

            inner = copy.deepcopy(model).merge_and_unload()
        embeddings_clf.save(inner, tokenizer, label_names, config, path, save_body=True)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / "labels.json").write_text(json.dumps(label_names))
    (tmp / "base_model.json").write_text(json.dumps({"model": config.model, "method": config.method}))
    for junk in tmp.glob("training_args.bin"):  # a pickle: never kept beside the weights
        junk.unlink()
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


# ---- reloading a finished run ----------------------------------------------------------------


def load_run_model(run_path: str | Path, device: str = "cpu"):
    """(sequence-classification model in eval mode with eager attention, tokenizer) of a fine-tuned run; LoRA merged."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = Path(run_path) / "model"
    if not (model_dir / "labels.json").exists():
        raise UserError(f"The run at {run_path} has no saved model (only finished fine-tuning runs have one).")
    if (model_dir / "prompt_learning.json").exists():
        raise UserError(f"{Path(run_path).name} taught a decoder to answer with label words; it has no classifier to show "
                        "(open its base model instead).")
    try:
        label_names = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
        base = json.loads((model_dir / "base_model.json").read_text(encoding="utf-8"))["model"]
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"The saved model of {Path(run_path).name} is incomplete or corrupt ({type(e).__name__}).") from e
    labels = {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
              "label2id": {n: i for i, n in enumerate(label_names)}}
    try:
        with models.LOAD_LOCK:  # one model load at a time (see models.LOAD_LOCK)
            if (model_dir / "pooling.json").exists():  # a mean-pooled classifier (core.training.pooled)
                from core.training import pooled

                model = pooled.load(model_dir, base, label_names)
            elif (model_dir / "adapter_config.json").exists():
                from peft import PeftModel

                source = models._converted(models.resolve(base))
                model = models._from_pretrained(AutoModelForSequenceClassification, source, attn_implementation="eager",
                                                ignore_mismatched_sizes=True, use_safetensors=True, **labels)
                model.config.pad_token_id = tokenizer.pad_token_id
                model = PeftModel.from_pretrained(model, str(model_dir)).merge_and_unload()
            else:
                model = AutoModelForSequenceClassification.from_pretrained(
                    str(model_dir), attn_implementation="eager", use_safetensors=True, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, RuntimeError) as e:
        raise UserError(f"Could not load the saved model of {Path(run_path).name}: {str(e).splitlines()[0][:200]}") from e
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


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
